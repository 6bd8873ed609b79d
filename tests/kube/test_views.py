"""Typed views: defaults for missing fields, clear errors for malformed objects."""

from __future__ import annotations

from typing import Any

import pytest

from openelb.kube.views import (
    Eip,
    EndpointSlice,
    Lease,
    Namespace,
    Node,
    Service,
    ViewError,
    parse_micro_time,
)


def _service(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "u1",
            "resourceVersion": "7",
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"},
            "finalizers": ["openelb.io/lb"],
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"hostname": "x"}]}},
    }


def test_service_view_reads_fields_and_defaults() -> None:
    svc = Service.from_raw(_service(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack"))
    assert svc.key == "default/web"
    assert svc.uid == "u1"
    assert svc.resource_version == "7"
    assert svc.ports[0].port == 80
    assert svc.ports[0].protocol == "TCP"
    assert svc.ingress_ips == ("192.0.2.10",)
    assert svc.ip_families == ("IPv4", "IPv6")
    assert svc.ip_family_policy == "RequireDualStack"
    assert svc.external_traffic_policy == "Cluster"
    assert svc.finalizers == ("openelb.io/lb",)
    assert not svc.deleting
    assert svc.opted_in


def test_service_opt_in_by_class_and_not_by_other_class() -> None:
    raw = _service(loadBalancerClass="openelb.io/openelb")
    raw["metadata"]["annotations"] = {}
    assert Service.from_raw(raw).opted_in
    assert not Service.from_raw(_service(loadBalancerClass="other.io/lb")).opted_in
    assert not Service.from_raw(_service(type="ClusterIP")).opted_in


def test_views_are_frozen() -> None:
    svc = Service.from_raw(_service())
    with pytest.raises(AttributeError):
        svc.type = "ClusterIP"  # type: ignore[misc]
    with pytest.raises(TypeError):
        svc.annotations["x"] = "y"  # type: ignore[index]


def test_malformed_objects_name_the_object_and_field() -> None:
    with pytest.raises(ViewError, match=r"metadata.name"):
        Service.from_raw({"metadata": {}})
    raw = _service()
    raw["spec"]["ports"] = [{"port": "eighty"}]
    with pytest.raises(ViewError, match=r"default/web.*eighty"):
        Service.from_raw(raw)
    raw = _service()
    raw["metadata"]["labels"] = ["a"]
    with pytest.raises(ViewError, match="labels"):
        Service.from_raw(raw)


def test_node_ready_labels_addresses() -> None:
    node = Node.from_raw(
        {
            "metadata": {
                "name": "n1",
                "labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""},
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [
                    {"type": "InternalIP", "address": "10.0.0.1"},
                    {"type": "Hostname", "address": "n1"},
                ],
            },
        }
    )
    assert node.ready
    assert node.excluded_from_load_balancers
    assert node.addresses_of("InternalIP") == ("10.0.0.1",)
    assert not Node.from_raw({"metadata": {"name": "n2"}}).ready


def test_endpointslice_ready_nodes() -> None:
    eps = EndpointSlice.from_raw(
        {
            "metadata": {
                "name": "web-abc",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.1.0.1"], "nodeName": "n1", "conditions": {"ready": True}},
                {"addresses": ["10.1.0.2"], "nodeName": "n2", "conditions": {"ready": False}},
                {"addresses": ["10.1.0.3"], "nodeName": "n3"},
            ],
        }
    )
    assert eps.service_key == "default/web"
    assert eps.ready_nodes() == frozenset({"n1", "n3"})


def test_lease_namespace_eip() -> None:
    lease = Lease.from_raw(
        {
            "metadata": {"name": "l", "namespace": "kube-system"},
            "spec": {
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "renewTime": "2026-01-01T00:00:00.000000Z",
            },
        }
    )
    assert lease.holder == "a"
    assert lease.duration_seconds == 15
    assert lease.renewed_at == parse_micro_time("2026-01-01T00:00:00Z")
    assert Namespace.from_raw({"metadata": {"name": "ns", "labels": {"a": "b"}}}).labels == {
        "a": "b"
    }
    eip = Eip.from_raw(
        {
            "metadata": {"name": "pool", "annotations": {"x": "y"}},
            "spec": {"address": "192.0.2.0/24"},
        }
    )
    assert eip.spec["address"] == "192.0.2.0/24"
    assert dict(eip.status) == {}
    assert parse_micro_time("garbage") is None
