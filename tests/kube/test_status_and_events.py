"""StatusWriter (conditional PUT on /status, re-read on 409, shrinking maps lose keys) and
EventRecorder (aggregation into count, rate limit, async writes)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from openelb.kube.errors import NotFound
from openelb.kube.events import NORMAL, WARNING, EventRecorder
from openelb.kube.resources import EIPS, EVENTS, LEASES, SERVICES
from openelb.kube.status import StatusConflictError, StatusWriter
from openelb.kube.views import Service
from tests.kube.conftest import KubeLab


def _eip(lab: KubeLab) -> dict[str, Any]:
    return lab.api.create(
        EIPS,
        {"metadata": {"name": "pool"}, "spec": {"address": "192.0.2.0/28", "protocol": "layer2"}},
    )


def test_shrinking_map_really_loses_keys(kube_lab: KubeLab) -> None:
    writer = StatusWriter(kube_lab.api, EIPS)
    eip = _eip(kube_lab)
    used = {"192.0.2.1": "ns1/a", "192.0.2.2": "ns1/b"}
    written = writer.set(eip, {"used": used, "usage": 2})
    assert written["status"]["used"] == used
    written = writer.set(written, {"used": {"192.0.2.1": "ns1/a"}, "usage": 1})
    fresh = kube_lab.api.get(EIPS, "pool")
    assert fresh["status"] == {"used": {"192.0.2.1": "ns1/a"}, "usage": 1}
    assert fresh["spec"]["address"] == "192.0.2.0/28"


def test_stale_copy_conflicts_then_is_recomputed_from_fresh(kube_lab: KubeLab) -> None:
    writer = StatusWriter(kube_lab.api, EIPS)
    stale = _eip(kube_lab)
    kube_lab.api.patch(EIPS, "pool", {"status": {"usage": 7}}, subresource="status")
    seen: list[Any] = []

    def compute(obj: dict[str, Any]) -> dict[str, Any]:
        seen.append((obj.get("status") or {}).get("usage"))
        return {"usage": ((obj.get("status") or {}).get("usage") or 0) + 1}

    written = writer.update("pool", compute, current=stale)
    assert seen == [None, 7]  # first from the stale copy, then re-read after the 409
    assert written["status"]["usage"] == 8


def test_concurrent_writers_lose_no_update(kube_lab: KubeLab) -> None:
    _eip(kube_lab)
    kube_lab.api.patch(EIPS, "pool", {"status": {"usage": 0}}, subresource="status")

    def bump(n: int) -> None:
        writer = StatusWriter(kube_lab.connect(), EIPS, max_attempts=100)
        for _ in range(n):
            writer.update("pool", lambda o: {"usage": o["status"]["usage"] + 1})

    threads = [threading.Thread(target=bump, args=(10,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert kube_lab.api.get(EIPS, "pool")["status"]["usage"] == 30


def test_unchanged_status_is_not_written(kube_lab: KubeLab) -> None:
    writer = StatusWriter(kube_lab.api, EIPS)
    eip = writer.set(_eip(kube_lab), {"usage": 1})
    again = writer.set(eip, {"usage": 1})
    assert again["metadata"]["resourceVersion"] == eip["metadata"]["resourceVersion"]


def test_service_ingress_status_and_give_up_after_conflicts(kube_lab: KubeLab) -> None:
    svc = kube_lab.api.create(
        SERVICES,
        {"metadata": {"name": "web", "namespace": "ns1"}, "spec": {"type": "LoadBalancer"}},
    )
    writer = StatusWriter(kube_lab.api, SERVICES, max_attempts=2)
    written = writer.set(svc, {"loadBalancer": {"ingress": [{"ip": "192.0.2.5"}]}})
    assert Service.from_raw(written).ingress_ips == ("192.0.2.5",)
    kube_lab.server.fail_requests(5, status=409, path_contains="/status", methods=["PUT"])
    with pytest.raises(StatusConflictError):
        writer.set(written, {"loadBalancer": {}})
    kube_lab.server.clear_faults()
    with pytest.raises(NotFound):
        writer.update("missing", lambda o: {}, namespace="ns1")
    with pytest.raises(ValueError, match="no status"):
        StatusWriter(kube_lab.api, LEASES)


def _events(lab: KubeLab) -> list[dict[str, Any]]:
    items, _ = lab.api.list(EVENTS, namespace="ns1")
    return items


def test_repeated_event_is_aggregated_into_count(kube_lab: KubeLab) -> None:
    svc = kube_lab.api.create(SERVICES, {"metadata": {"name": "web", "namespace": "ns1"}})
    recorder = EventRecorder(kube_lab.api, component="openelb-manager", host="m1")
    try:
        for _ in range(5):
            assert recorder.event(svc, WARNING, "NoFreeAddress", "pool p is full")
        recorder.event(Service.from_raw(svc), NORMAL, "IPAllocated", "192.0.2.5")
        assert recorder.flush(10)
    finally:
        recorder.close()
    events = sorted(_events(kube_lab), key=lambda e: e["reason"])
    assert [(e["reason"], e["count"]) for e in events] == [("IPAllocated", 1), ("NoFreeAddress", 5)]
    warn = events[1]
    assert warn["type"] == WARNING
    assert warn["involvedObject"]["name"] == "web"
    assert warn["involvedObject"]["uid"] == svc["metadata"]["uid"]
    assert warn["source"] == {"component": "openelb-manager", "host": "m1"}


def test_rate_limit_drops_a_hot_loop(kube_lab: KubeLab) -> None:
    svc = kube_lab.api.create(SERVICES, {"metadata": {"name": "web", "namespace": "ns1"}})
    recorder = EventRecorder(kube_lab.api, component="c", burst=3, refill_seconds=3600)
    try:
        accepted = [recorder.event(svc, NORMAL, "R", f"message {i}") for i in range(10)]
        assert recorder.flush(10)
    finally:
        recorder.close()
    assert accepted == [True] * 3 + [False] * 7
    assert len(_events(kube_lab)) == 3


def test_event_write_failures_do_not_raise_to_the_caller(kube_lab: KubeLab) -> None:
    svc = kube_lab.api.create(SERVICES, {"metadata": {"name": "web", "namespace": "ns1"}})
    recorder = EventRecorder(kube_lab.api, component="c")
    kube_lab.server.fail_requests(1, status=500, path_contains="/events")
    try:
        assert recorder.event(svc, NORMAL, "R", "lost to a 500")
        assert recorder.event(svc, NORMAL, "R2", "written")
        assert recorder.flush(10)
    finally:
        recorder.close()
    assert [e["reason"] for e in _events(kube_lab)] == ["R2"]
    with pytest.raises(ValueError, match="Normal or Warning"):
        recorder.event(svc, "Error", "R", "m")
