"""Embedded apiserver contract: lists, paging, selectors and watches, through the real client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from openelb.lab.apiserver import ApiServer


def _svc(name: str, **labels: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
    )


def _events(stream: Iterator[dict[str, Any]], count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for event in stream:
        obj = event["raw_object"]
        seen.append((event["type"], obj["metadata"].get("name", "")))
        if len(seen) == count:
            break
    return seen


def test_list_returns_the_current_resource_version(
    kube_client: ApiClient, apiserver: ApiServer
) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_service("default", _svc("a"))
    listed = v1.list_namespaced_service("default")
    assert int(listed.metadata.resource_version) == apiserver.resource_version
    assert [s.metadata.name for s in listed.items] == ["a"]


def test_list_paging_with_limit_and_continue(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    for i in range(7):
        v1.create_namespaced_service("default", _svc(f"s{i}"))
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = v1.list_namespaced_service("default", limit=3, _continue=token)
        names += [s.metadata.name for s in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(names)
    assert pages == 3
    assert names == [f"s{i}" for i in range(7)]


def test_an_expired_continue_token_is_410(kube_client: ApiClient, apiserver: ApiServer) -> None:
    v1 = client.CoreV1Api(kube_client)
    for i in range(3):
        v1.create_namespaced_service("default", _svc(f"s{i}"))
    page = v1.list_namespaced_service("default", limit=1)
    v1.create_namespaced_service("default", _svc("later"))
    apiserver.compact()
    with pytest.raises(ApiException) as info:
        v1.list_namespaced_service("default", limit=1, _continue=page.metadata._continue)
    assert info.value.status == 410


def test_label_selectors(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_service("default", _svc("a", tier="web", env="prod"))
    v1.create_namespaced_service("default", _svc("b", tier="db", env="prod"))
    v1.create_namespaced_service("default", _svc("c", tier="web"))

    def names(selector: str) -> list[str]:
        items = v1.list_namespaced_service("default", label_selector=selector).items
        return sorted(s.metadata.name for s in items)

    assert names("tier=web") == ["a", "c"]
    assert names("tier==web,env=prod") == ["a"]
    assert names("tier!=web") == ["b"]
    assert names("tier in (web, db),env") == ["a", "b"]
    assert names("tier notin (db)") == ["a", "c"]
    assert names("!env") == ["c"]
    with pytest.raises(ApiException) as info:
        names("tier in web")
    assert info.value.status == 400


def test_field_selectors_name_and_namespace_only(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    v1.create_namespaced_service("default", _svc("a"))
    v1.create_namespaced_service("other", _svc("a"))
    v1.create_namespaced_service("default", _svc("b"))
    everywhere = v1.list_service_for_all_namespaces(field_selector="metadata.name=a").items
    assert sorted(s.metadata.namespace for s in everywhere) == ["default", "other"]
    only = v1.list_service_for_all_namespaces(
        field_selector="metadata.namespace=default,metadata.name!=a"
    ).items
    assert [s.metadata.name for s in only] == ["b"]
    with pytest.raises(ApiException) as info:
        v1.list_service_for_all_namespaces(field_selector="spec.type=LoadBalancer")
    assert info.value.status == 400


def test_watch_without_resource_version_sends_synthetic_added_then_live_events(
    kube_client: ApiClient,
) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_service("default", _svc("old"))
    w = watch.Watch()
    stream = w.stream(v1.list_namespaced_service, "default", timeout_seconds=5)
    first = next(stream)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "old")
    v1.create_namespaced_service("default", _svc("new"))
    v1.delete_namespaced_service("old", "default")
    assert _events(stream, 2) == [("ADDED", "new"), ("DELETED", "old")]
    w.stop()


def test_watch_from_a_resource_version_replays_later_events_in_order(
    kube_client: ApiClient,
) -> None:
    v1 = client.CoreV1Api(kube_client)
    rv = v1.list_namespaced_service("default").metadata.resource_version
    v1.create_namespaced_service("default", _svc("a"))
    v1.patch_namespaced_service("a", "default", {"metadata": {"labels": {"x": "1"}}})
    v1.create_namespaced_service("default", _svc("b"))
    v1.delete_namespaced_service("a", "default")
    w = watch.Watch()
    stream = w.stream(v1.list_namespaced_service, "default", resource_version=rv, timeout_seconds=5)
    seen: list[tuple[str, str, int]] = []
    for event in stream:
        seen.append(
            (
                event["type"],
                event["object"].metadata.name,
                int(event["object"].metadata.resource_version),
            )
        )
        if len(seen) == 4:
            break
    w.stop()
    assert [(t, n) for t, n, _ in seen] == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    rvs = [r for _, _, r in seen]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4


def test_timeout_seconds_ends_the_stream_cleanly(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    w = watch.Watch()
    events = list(w.stream(v1.list_namespaced_service, "default", timeout_seconds=1))
    assert events == []


def test_watch_from_a_compacted_resource_version_is_410(
    kube_client: ApiClient, apiserver: ApiServer
) -> None:
    v1 = client.CoreV1Api(kube_client)
    rv = v1.list_namespaced_service("default").metadata.resource_version
    v1.create_namespaced_service("default", _svc("a"))
    apiserver.compact()
    w = watch.Watch()
    with pytest.raises(ApiException) as info:
        # The client retries a 410 once by itself, then raises it.
        for _ in w.stream(v1.list_namespaced_service, "default", resource_version=rv):
            pass
    assert info.value.status == 410


def test_history_limit_expires_old_resource_versions() -> None:
    from openelb.lab.apiserver import lab_api_client

    with ApiServer(history_limit=10, crds=None) as server:
        api = lab_api_client(server.url)
        v1 = client.CoreV1Api(api)
        rv = v1.list_namespaced_config_map("default").metadata.resource_version
        for i in range(30):
            v1.create_namespaced_config_map(
                "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}"))
            )
        stream = v1.list_namespaced_config_map(
            "default", watch=True, resource_version=rv, _preload_content=False
        )
        line = stream.readline()
        assert b'"type":"ERROR"' in line and b'"code":410' in line
        stream.release_conn()
        api.close()


def test_expire_watches_ends_open_streams_with_410(
    kube_client: ApiClient, apiserver: ApiServer
) -> None:
    v1 = client.CoreV1Api(kube_client)
    rv = v1.list_namespaced_service("default").metadata.resource_version
    w = watch.Watch()
    errors: list[int] = []

    def consume() -> None:
        try:
            for _ in w.stream(v1.list_namespaced_service, "default", resource_version=rv):
                pass
        except ApiException as exc:
            errors.append(exc.status)

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.3)
    apiserver.expire_watches()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert errors == [410]


def test_bookmarks_carry_the_current_resource_version(
    kube_client: ApiClient, apiserver: ApiServer
) -> None:
    apiserver.bookmark_interval = 0.2
    v1 = client.CoreV1Api(kube_client)
    rv = v1.list_namespaced_service("default").metadata.resource_version
    client.CoreV1Api(kube_client).create_node(client.V1Node(metadata=client.V1ObjectMeta(name="n")))
    w = watch.Watch()
    for event in w.stream(
        v1.list_namespaced_service,
        "default",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    ):
        assert event["type"] == "BOOKMARK"
        # The Node's write moved the global RV; the bookmark says everything up to it was seen.
        assert int(event["raw_object"]["metadata"]["resourceVersion"]) == apiserver.resource_version
        break
    w.stop()
    assert w.resource_version == str(apiserver.resource_version)


def test_objects_entering_and_leaving_a_selector_are_added_and_deleted(
    kube_client: ApiClient,
) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_service("default", _svc("a", lb="no"))
    rv = v1.list_namespaced_service("default").metadata.resource_version
    v1.patch_namespaced_service("a", "default", {"metadata": {"labels": {"lb": "yes"}}})
    v1.patch_namespaced_service("a", "default", {"metadata": {"annotations": {"n": "1"}}})
    v1.patch_namespaced_service("a", "default", {"metadata": {"labels": {"lb": "no"}}})
    w = watch.Watch()
    stream = w.stream(
        v1.list_namespaced_service,
        "default",
        label_selector="lb=yes",
        resource_version=rv,
        timeout_seconds=5,
    )
    seen = []
    for event in stream:
        seen.append((event["type"], event["raw_object"]["metadata"]["labels"]["lb"]))
        if len(seen) == 3:
            break
    w.stop()
    # Leaving: DELETED carries the last matching content (at the new resourceVersion).
    assert seen == [("ADDED", "yes"), ("MODIFIED", "yes"), ("DELETED", "yes")]


def test_send_initial_events_ends_with_an_annotated_bookmark(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    v1.create_namespaced_service("default", _svc("a"))
    response = v1.list_namespaced_service(
        "default",
        watch=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    lines = [line for line in response.read().split(b"\n") if line]
    assert b'"ADDED"' in lines[0]
    assert b"k8s.io/initial-events-end" in lines[1]


def test_cluster_scoped_custom_resources_watch(kube_client: ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_client)
    group = ("network.kubesphere.io", "v1alpha2", "eips")
    w = watch.Watch()
    stream = w.stream(custom.list_cluster_custom_object, *group, timeout_seconds=5)
    custom.create_cluster_custom_object(
        *group,
        {
            "apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "Eip",
            "metadata": {"name": "p"},
            "spec": {"address": "10.0.0.1"},
        },
    )
    event = next(stream)
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "p"
    w.stop()


def test_a_no_op_write_sends_no_watch_event(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    svc = v1.create_namespaced_service("default", _svc("a", x="1"))
    rv = svc.metadata.resource_version
    v1.replace_namespaced_service("a", "default", svc)  # same content
    v1.patch_namespaced_service("a", "default", {"metadata": {"labels": {"x": "1"}}})
    v1.patch_namespaced_service("a", "default", {"metadata": {"labels": {"x": "2"}}})
    w = watch.Watch()
    event = next(
        w.stream(v1.list_namespaced_service, "default", resource_version=rv, timeout_seconds=5)
    )
    w.stop()
    # The first event after the create is the real change, not the two no-ops.
    assert event["type"] == "MODIFIED"
    assert event["object"].metadata.labels == {"x": "2"}
    assert int(event["object"].metadata.resource_version) == int(rv) + 1


def test_paging_while_writing_then_watching_converges(kube_client: ApiClient) -> None:
    v1 = client.CoreV1Api(kube_client)
    for i in range(6):
        v1.create_namespaced_service("default", _svc(f"s{i}"))
    first = v1.list_namespaced_service("default", limit=2)
    v1.delete_namespaced_service("s4", "default")
    v1.create_namespaced_service("default", _svc("s9"))
    seen = {s.metadata.name for s in first.items}
    token = first.metadata._continue
    while token:
        page = v1.list_namespaced_service("default", limit=2, _continue=token)
        seen |= {s.metadata.name for s in page.items}
        token = page.metadata._continue
    # Watching from the first page's RV replays what changed while paging.
    w = watch.Watch()
    for event in w.stream(
        v1.list_namespaced_service,
        "default",
        resource_version=first.metadata.resource_version,
        timeout_seconds=1,
    ):
        name = event["object"].metadata.name
        if event["type"] == "DELETED":
            seen.discard(name)
        else:
            seen.add(name)
    live = {s.metadata.name for s in v1.list_namespaced_service("default").items}
    assert seen == live == {"s0", "s1", "s2", "s3", "s5", "s9"}
