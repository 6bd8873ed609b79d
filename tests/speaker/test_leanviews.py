"""The speaker's lean Service view plans exactly like the full one and still carries Events."""

from __future__ import annotations

from typing import Any

import pytest

from openelb.kube.events import _involved
from openelb.kube.views import Service, ViewError
from openelb.speaker.desired import desired_vips
from openelb.speaker.leanviews import lean_service, lean_slice
from tests.speaker.test_desired import RECORDS, eip, endpoints


def _raw(name: str, ips: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "42",
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb", "other": "x" * 500},
            "labels": {"app": name},
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def test_lean_services_plan_exactly_like_full_ones_and_keep_an_events_subject() -> None:
    raws = [
        _raw("a", ["10.0.0.1"]),
        _raw("b", ["10.0.0.2"], externalTrafficPolicy="Local"),
        _raw("c", ["10.0.0.3"], loadBalancerClass="other.io/lb"),
        {**_raw("d", ["10.0.0.4"]), "spec": {"type": "ClusterIP"}},
    ]
    raws[0]["metadata"]["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    eips = [eip("pool", "10.0.0.0/24")]
    slices = [endpoints("b", {"n1": True})]
    full = desired_vips(
        services=[Service.from_raw(r) for r in raws], eips=eips, slices=slices, records=RECORDS
    )
    lean = desired_vips(
        services=[lean_service(r) for r in raws], eips=eips, slices=slices, records=RECORDS
    )
    assert lean == full and set(full) == {"10.0.0.2"}
    svc = lean_service(raws[1])
    assert (svc.key, svc.opted_in, svc.deleting) == ("default/b", True, False)
    assert _involved(svc.raw) == {
        "kind": "Service",
        "apiVersion": "v1",
        "name": "b",
        "namespace": "default",
        "uid": "uid-b",
        "resourceVersion": "42",
    }
    assert "other" not in svc.annotations and svc.ports == ()
    assert lean_slice(slices[0].raw).ready_nodes() == frozenset({"n1"})


def test_a_malformed_service_is_refused_like_the_full_view() -> None:
    with pytest.raises(ViewError):
        lean_service({"metadata": {}})
