"""Embedded apiserver contract: create, read, update, patch, delete, through the real client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from openelb.lab.apiserver import ApiServer

EIP = ("network.kubesphere.io", "v1alpha2", "eips")


def _service(name: str = "web", **labels: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None),
        spec=client.V1ServiceSpec(type="LoadBalancer", ports=[client.V1ServicePort(port=80)]),
    )


def _eip(name: str = "pool", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "network.kubesphere.io/v1alpha2",
        "kind": "Eip",
        "metadata": {"name": name},
        "spec": {"address": "10.250.0.100-10.250.0.110", "protocol": "layer2", **spec},
    }


def _error(call: Any, *args: Any, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as info:
        call(*args, **kwargs)
    return info.value


def test_create_sets_uid_timestamp_generation_and_a_fresh_resource_version(
    kube_client: ApiClient, apiserver: ApiServer
) -> None:
    v1 = client.CoreV1Api(kube_client)
    before = apiserver.resource_version
    svc = v1.create_namespaced_service("default", _service())
    assert svc.metadata.uid
    assert svc.metadata.creation_timestamp is not None
    assert svc.metadata.generation == 1
    assert int(svc.metadata.resource_version) == before + 1
    assert svc.metadata.namespace == "default"
    # kube-apiserver defaults: a cluster IP, the port's protocol and target port.
    assert svc.spec.cluster_ip
    assert svc.spec.ports[0].protocol == "TCP"
    assert svc.spec.ip_families == ["IPv4"]


def test_resource_version_is_global_and_monotonic_across_types(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    leases = client.CoordinationV1Api(kube_client)
    a = int(v1.create_namespaced_service("default", _service("a")).metadata.resource_version)
    b = int(
        leases.create_namespaced_lease(
            "default", client.V1Lease(metadata=client.V1ObjectMeta(name="l"))
        ).metadata.resource_version
    )
    c = int(
        v1.create_node(
            client.V1Node(metadata=client.V1ObjectMeta(name="n1"))
        ).metadata.resource_version
    )
    assert a < b < c
    listed = v1.list_namespaced_service("default")
    assert int(listed.metadata.resource_version) == c


def test_create_twice_is_409_already_exists(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_service("default", _service())
    err = _error(v1.create_namespaced_service, "default", _service())
    assert err.status == 409
    assert '"reason":"AlreadyExists"' in err.body.replace(" ", "")


def test_generate_name_makes_unique_names(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    body = client.V1Service(metadata=client.V1ObjectMeta(generate_name="web-"))
    names = {v1.create_namespaced_service("default", body).metadata.name for _ in range(5)}
    assert len(names) == 5
    assert all(n.startswith("web-") and len(n) == len("web-") + 5 for n in names)


def test_missing_name_and_bad_names_are_422(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    assert _error(v1.create_namespaced_config_map, "default", client.V1ConfigMap()).status == 422
    bad = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_Valid"))
    assert _error(v1.create_namespaced_config_map, "default", bad).status == 422


def test_create_in_a_missing_namespace_is_404(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    err = _error(v1.create_namespaced_service, "nowhere", _service())
    assert err.status == 404
    assert 'namespaces \\"nowhere\\" not found' in err.body or "nowhere" in err.body


def test_get_missing_is_404_status_body(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    err = _error(v1.read_namespaced_service, "nope", "default")
    assert err.status == 404
    assert '"kind":"Status"' in err.body.replace(" ", "")
    assert '"reason":"NotFound"' in err.body.replace(" ", "")


def test_put_with_stale_resource_version_is_409_conflict(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    svc = v1.create_namespaced_service("default", _service())
    svc.metadata.labels = {"first": "yes"}
    updated = v1.replace_namespaced_service("web", "default", svc)
    assert int(updated.metadata.resource_version) > int(svc.metadata.resource_version)
    svc.metadata.labels = {"second": "yes"}  # still carries the old resourceVersion
    err = _error(v1.replace_namespaced_service, "web", "default", svc)
    assert err.status == 409
    assert '"reason":"Conflict"' in err.body.replace(" ", "")
    assert v1.read_namespaced_service("web", "default").metadata.labels == {"first": "yes"}


def test_put_without_resource_version_is_accepted_for_services_but_422_for_leases_and_crs(
    kube_client: ApiClient,
) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_service("default", _service())
    svc = _service()
    svc.metadata.labels = {"a": "b"}
    assert v1.replace_namespaced_service("web", "default", svc).metadata.labels == {"a": "b"}

    leases = client.CoordinationV1Api(kube_client)
    leases.create_namespaced_lease(
        "default", client.V1Lease(metadata=client.V1ObjectMeta(name="l"))
    )
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="l"), spec=client.V1LeaseSpec(holder_identity="me")
    )
    assert _error(leases.replace_namespaced_lease, "l", "default", lease).status == 422

    custom = client.CustomObjectsApi(kube_client)
    custom.create_cluster_custom_object(*EIP, _eip())
    assert _error(custom.replace_cluster_custom_object, *EIP, "pool", _eip()).status == 422


def test_a_no_op_write_changes_nothing(kube_client: ApiClient, apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(kube_client)
    svc = v1.create_namespaced_service("default", _service(app="x"))
    before = apiserver.resource_version
    same = v1.replace_namespaced_service("web", "default", svc)
    assert same.metadata.resource_version == svc.metadata.resource_version
    patched = v1.patch_namespaced_service("web", "default", {"metadata": {"labels": {"app": "x"}}})
    assert patched.metadata.resource_version == svc.metadata.resource_version
    assert apiserver.resource_version == before


def test_status_subresource_main_endpoint_ignores_status_and_status_ignores_spec(
    kube_client: ApiClient,
) -> None:
    v1 = client.CoreV1Api(kube_client)
    created = v1.create_namespaced_service("default", _service())
    assert created.status is None or not created.status.load_balancer
    ingress = {"status": {"loadBalancer": {"ingress": [{"ip": "10.250.0.100"}]}}}
    # Through the main endpoint the status change is dropped (nothing changes at all).
    main = v1.patch_namespaced_service("web", "default", ingress)
    assert main.metadata.resource_version == created.metadata.resource_version
    assert not (main.status and main.status.load_balancer and main.status.load_balancer.ingress)
    # Through /status it lands, and a spec change there is ignored.
    both = {**ingress, "spec": {"type": "NodePort"}}
    status = v1.patch_namespaced_service_status("web", "default", both)
    assert status.status.load_balancer.ingress[0].ip == "10.250.0.100"
    assert status.spec.type == "LoadBalancer"
    assert status.metadata.generation == 1


def test_generation_bumps_only_on_spec_changes(kube_client: ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_client)
    custom.create_cluster_custom_object(*EIP, _eip())
    labelled = custom.patch_cluster_custom_object(
        *EIP, "pool", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    status = custom.patch_cluster_custom_object_status(*EIP, "pool", {"status": {"usage": 3}})
    assert status["metadata"]["generation"] == 1
    assert status["status"]["usage"] == 3
    spec = custom.patch_cluster_custom_object(*EIP, "pool", {"spec": {"disable": True}})
    assert spec["metadata"]["generation"] == 2
    assert spec["status"]["usage"] == 3  # the main endpoint kept the status


def test_patch_merge_json_and_strategic(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_service("default", _service(a="1", b="2"))
    # A dict body from the typed API goes out as strategic merge patch: lists keyed by port merge.
    merged = v1.patch_namespaced_service(
        "web", "default", {"metadata": {"labels": {"b": None}}, "spec": {"ports": [{"port": 443}]}}
    )
    assert merged.metadata.labels == {"a": "1"}
    assert sorted(p.port for p in merged.spec.ports) == [80, 443]
    # A list body is a JSON patch.
    patched = v1.patch_namespaced_service(
        "web", "default", [{"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}}]
    )
    assert patched.metadata.annotations == {"x": "y"}
    # A failing JSON patch test is 422 and changes nothing.
    err = _error(
        v1.patch_namespaced_service,
        "web",
        "default",
        [{"op": "test", "path": "/metadata/labels/a", "value": "wrong"}],
    )
    assert err.status == 422
    # Custom resources take merge patches (lists replaced).
    custom = client.CustomObjectsApi(kube_client)
    custom.create_cluster_custom_object(*EIP, _eip(namespaces=["a", "b"]))
    eip = custom.patch_cluster_custom_object(*EIP, "pool", {"spec": {"namespaces": ["c"]}})
    assert eip["spec"]["namespaces"] == ["c"]


def test_strategic_merge_patch_on_a_custom_resource_is_415(
    kube_client: ApiClient, apiserver: ApiServer
) -> None:
    custom = client.CustomObjectsApi(kube_client)
    custom.create_cluster_custom_object(*EIP, _eip())
    err = _error(
        custom.patch_cluster_custom_object,
        *EIP,
        "pool",
        {"spec": {"disable": True}},
        _content_type="application/strategic-merge-patch+json",
    )
    assert err.status == 415


def test_patch_honours_a_resource_version_precondition(kube_client: ApiClient) -> None:
    leases = client.CoordinationV1Api(kube_client)
    lease = leases.create_namespaced_lease(
        "default", client.V1Lease(metadata=client.V1ObjectMeta(name="l"))
    )
    rv = lease.metadata.resource_version
    ok = leases.patch_namespaced_lease(
        "l",
        "default",
        {"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "a"}},
    )
    assert ok.spec.holder_identity == "a"
    err = _error(
        leases.patch_namespaced_lease,
        "l",
        "default",
        {"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "b"}},
    )
    assert err.status == 409
    assert leases.read_namespaced_lease("l", "default").spec.holder_identity == "a"


def test_custom_resources_are_pruned_and_type_checked_by_the_crd_schema(
    kube_client: ApiClient,
) -> None:
    custom = client.CustomObjectsApi(kube_client)
    eip = custom.create_cluster_custom_object(
        *EIP, _eip(typo="dropped", exclude=["10.250.0.105"], namespaceSelector={"team": "a"})
    )
    assert "typo" not in eip["spec"]
    assert eip["spec"]["exclude"] == ["10.250.0.105"]
    assert eip["spec"]["namespaceSelector"] == {"team": "a"}
    bad = _error(custom.create_cluster_custom_object, *EIP, _eip("p2", protocol="ospf"))
    assert bad.status == 422
    wrong_type = _error(custom.create_cluster_custom_object, *EIP, _eip("p3", priority="high"))
    assert wrong_type.status == 422
    no_address = _eip("p4")
    del no_address["spec"]["address"]
    assert _error(custom.create_cluster_custom_object, *EIP, no_address).status == 422
    status = custom.patch_cluster_custom_object_status(
        *EIP,
        "pool",
        {"status": {"poolSizeExact": "18446744073709551616", "virtualRouterIDs": {"10.0.0.1": 7}}},
    )
    assert status["status"]["virtualRouterIDs"] == {"10.0.0.1": 7}


def test_finalizers_hold_deletion_until_removed(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    svc = _service()
    svc.metadata.finalizers = ["openelb.io/ip"]
    v1.create_namespaced_service("default", svc)
    pending = v1.delete_namespaced_service("web", "default")
    assert pending.metadata.deletion_timestamp is not None
    still = v1.read_namespaced_service("web", "default")
    assert still.metadata.finalizers == ["openelb.io/ip"]
    # No new finalizers once deletion started.
    err = _error(
        v1.patch_namespaced_service,
        "web",
        "default",
        [{"op": "add", "path": "/metadata/finalizers/-", "value": "other"}],
    )
    assert err.status == 422
    v1.patch_namespaced_service(
        "web", "default", [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    assert _error(v1.read_namespaced_service, "web", "default").status == 404


def test_delete_preconditions_and_status_bodies(kube_client: ApiClient) -> None:
    leases = client.CoordinationV1Api(kube_client)
    lease = leases.create_namespaced_lease(
        "default", client.V1Lease(metadata=client.V1ObjectMeta(name="l"))
    )
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1"))
    assert _error(leases.delete_namespaced_lease, "l", "default", body=stale).status == 409
    fresh = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=lease.metadata.resource_version)
    )
    done = leases.delete_namespaced_lease("l", "default", body=fresh)
    assert done["status"] == "Success"
    assert _error(leases.delete_namespaced_lease, "l", "default").status == 404


def test_deleting_a_namespace_deletes_its_objects(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    v1.create_namespaced_service("team", _service())
    v1.delete_namespace("team")
    assert v1.list_service_for_all_namespaces().items == []


def test_nodes_keep_status_on_create_and_endpointslices_round_trip(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    ready = client.V1NodeCondition(type="Ready", status="True")
    node = v1.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(name="n1"), status=client.V1NodeStatus(conditions=[ready])
        )
    )
    assert node.status.conditions[0].type == "Ready"
    discovery = client.DiscoveryV1Api(kube_client)
    body = client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name="web-1", labels={"kubernetes.io/service-name": "web"}),
        address_type="IPv4",
        endpoints=[client.V1Endpoint(addresses=["10.0.0.5"], node_name="n1")],
    )
    discovery.create_namespaced_endpoint_slice("default", body)
    listed = discovery.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=web"
    )
    assert [s.endpoints[0].node_name for s in listed.items] == ["n1"]


def test_events_are_created_and_listed(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="web.1"),
        involved_object=client.V1ObjectReference(kind="Service", name="web", namespace="default"),
        reason="IPAllocated",
        message="10.250.0.100",
        type="Normal",
        count=1,
    )
    v1.create_namespaced_event("default", event)
    assert [e.reason for e in v1.list_namespaced_event("default").items] == ["IPAllocated"]
