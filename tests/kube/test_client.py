"""KubeApi against the embedded apiserver through the real client: CRUD, errors, watch."""

from __future__ import annotations

import threading
import time

import pytest

from openelb.kube import errors
from openelb.kube.resources import EIPS, LEASES, NODES, SERVICES
from tests.kube.conftest import KubeLab


def _svc(name: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "ns1", "labels": {"app": name}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def test_create_get_list_replace_patch_delete(kube_lab: KubeLab) -> None:
    api = kube_lab.api
    created = api.create(SERVICES, _svc("a"))
    assert created["metadata"]["uid"]
    api.create(SERVICES, _svc("b"))
    items, rv = api.list(SERVICES, namespace="ns1")
    assert sorted(i["metadata"]["name"] for i in items) == ["a", "b"]
    assert int(rv) >= int(created["metadata"]["resourceVersion"])
    assert items[0]["kind"] == "Service"
    only_a, _ = api.list(SERVICES, label_selector="app=a")
    assert [i["metadata"]["name"] for i in only_a] == ["a"]
    got = api.get(SERVICES, "a", namespace="ns1")
    got["metadata"]["annotations"] = {"x": "1"}
    replaced = api.replace(SERVICES, got)
    assert replaced["metadata"]["annotations"] == {"x": "1"}
    patched = api.patch(SERVICES, "a", {"metadata": {"labels": {"p": "q"}}}, namespace="ns1")
    assert patched["metadata"]["labels"]["p"] == "q"
    patched = api.patch(
        SERVICES,
        "a",
        [{"op": "replace", "path": "/metadata/labels/p", "value": "r"}],
        namespace="ns1",
        kind="json",
    )
    assert patched["metadata"]["labels"]["p"] == "r"
    api.delete(SERVICES, "a", namespace="ns1")
    with pytest.raises(errors.NotFound):
        api.get(SERVICES, "a", namespace="ns1")


def test_paged_list_returns_everything(kube_lab: KubeLab) -> None:
    for i in range(7):
        kube_lab.api.create(NODES, {"metadata": {"name": f"n{i}"}})
    items, rv = kube_lab.api.list(NODES, page_size=3)
    assert len(items) == 7
    assert rv


def test_errors_are_typed(kube_lab: KubeLab) -> None:
    api = kube_lab.api
    api.create(SERVICES, _svc("a"))
    with pytest.raises(errors.AlreadyExists):
        api.create(SERVICES, _svc("a"))
    stale = api.get(SERVICES, "a", namespace="ns1")
    api.patch(SERVICES, "a", {"metadata": {"labels": {"v": "2"}}}, namespace="ns1")
    with pytest.raises(errors.Conflict):
        api.replace(SERVICES, stale)
    with pytest.raises(errors.Conflict):
        api.delete(
            SERVICES, "a", namespace="ns1", precondition_rv=stale["metadata"]["resourceVersion"]
        )
    with pytest.raises(errors.BadRequest):
        api.list(SERVICES, field_selector="spec.type=LoadBalancer")
    lease = {"metadata": {"name": "l", "namespace": "ns1"}, "spec": {}}
    api.create(LEASES, lease)
    with pytest.raises(errors.Invalid):
        api.replace(LEASES, lease)  # no resourceVersion
    with pytest.raises(ValueError, match="list of operations"):
        api.patch(SERVICES, "a", {"x": 1}, namespace="ns1", kind="json")


def test_injected_500_and_429_are_unavailable(kube_lab: KubeLab) -> None:
    kube_lab.server.fail_requests(1, status=500)
    with pytest.raises(errors.Unavailable) as info:
        kube_lab.api.list(EIPS)
    assert info.value.status == 500
    kube_lab.server.fail_requests(1, status=429, retry_after=2)
    with pytest.raises(errors.Unavailable) as info:
        kube_lab.api.list(EIPS)
    assert info.value.status == 429
    assert info.value.retry_after == 2
    kube_lab.api.list(EIPS)


def test_hung_request_times_out_as_unavailable(kube_lab: KubeLab) -> None:
    kube_lab.server.hang_requests(1, seconds=5)
    with pytest.raises(errors.Unavailable) as info:
        kube_lab.api.list(NODES, timeout=0.3)
    assert info.value.reason == "Timeout"


def test_stopped_server_is_refused_and_restart_keeps_state(kube_lab: KubeLab) -> None:
    kube_lab.api.create(SERVICES, _svc("a"))
    kube_lab.server.stop()
    with pytest.raises(errors.Unavailable):
        kube_lab.api.get(SERVICES, "a", namespace="ns1")
    kube_lab.server.start()
    assert kube_lab.api.get(SERVICES, "a", namespace="ns1")["metadata"]["name"] == "a"


def test_watch_streams_events_bookmarks_and_410(kube_lab: KubeLab) -> None:
    api = kube_lab.api
    _, rv = api.list(SERVICES)
    api.create(SERVICES, _svc("a"))
    api.delete(SERVICES, "a", namespace="ns1")
    seen: list[str] = []
    with api.watch(SERVICES, resource_version=rv, timeout_seconds=1) as stream:
        for kind, obj in stream:
            seen.append(kind)
            if kind == "BOOKMARK":
                assert obj["metadata"]["resourceVersion"]
                break
    assert seen[:2] == ["ADDED", "DELETED"]
    kube_lab.server.compact()
    with (
        pytest.raises(errors.Gone),
        api.watch(SERVICES, resource_version=rv, timeout_seconds=1) as s,
    ):
        list(s)


def test_watch_close_from_another_thread_ends_iteration(kube_lab: KubeLab) -> None:
    _, rv = kube_lab.api.list(SERVICES)
    stream = kube_lab.api.watch(
        SERVICES, resource_version=rv, timeout_seconds=30, allow_bookmarks=False
    )
    ended = threading.Event()

    def read() -> None:
        for _ in stream:
            pass
        ended.set()

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.1)
    stream.close()
    thread.join(5)
    assert ended.is_set()


def test_dropped_watch_raises_unavailable(kube_lab: KubeLab) -> None:
    _, rv = kube_lab.api.list(SERVICES)
    stream = kube_lab.api.watch(SERVICES, resource_version=rv, timeout_seconds=30)
    next(stream)  # a bookmark: the stream is open
    kube_lab.server.drop_watches()
    with pytest.raises(errors.Unavailable):
        for _ in stream:
            pass
