"""WatchCache converges to the server's final state through 410s, dropped streams, bookmarks
and an apiserver restart, and its notifications neither lose nor duplicate an object."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from openelb.kube.backoff import Backoff
from openelb.kube.errors import NotFound
from openelb.kube.resources import NODES, SERVICES
from openelb.kube.views import Service
from openelb.kube.watching import ADDED, DELETED, MODIFIED, RESYNC, Change, WatchCache
from tests.kube.conftest import KubeLab, wait_until


class Shadow:
    """Rebuilds the cache from notifications alone and records protocol violations."""

    def __init__(self) -> None:
        self.objects: dict[str, str] = {}
        self.violations: list[str] = []
        self.resyncs = 0
        self.lock = threading.Lock()

    def __call__(self, change: Change[Any]) -> None:
        with self.lock:
            if change.kind == RESYNC:
                self.resyncs += 1
                return
            present = change.key in self.objects
            if change.kind == ADDED and present:
                self.violations.append(f"duplicate ADDED {change.key}")
            if change.kind in (MODIFIED, DELETED) and not present:
                self.violations.append(f"{change.kind} of unknown {change.key}")
            if change.kind == DELETED:
                self.objects.pop(change.key, None)
            else:
                self.objects[change.key] = change.new["metadata"]["resourceVersion"]


def _server_state(lab: KubeLab) -> dict[str, str]:
    items, _ = lab.api.list(SERVICES)
    return {f"ns1/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}


def _cache_state(cache: WatchCache[dict[str, Any]]) -> dict[str, str]:
    return {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in cache.items()
    }


def _mutate(lab: KubeLab, rng: random.Random, steps: int) -> None:
    """Random creates, updates and deletes of a small set of Services."""
    for _ in range(steps):
        name = f"s{rng.randrange(12)}"
        try:
            current = lab.api.get(SERVICES, name, namespace="ns1")
        except NotFound:
            lab.api.create(
                SERVICES,
                {"metadata": {"name": name, "namespace": "ns1"}, "spec": {"ports": [{"port": 80}]}},
            )
            continue
        if rng.random() < 0.3:
            lab.api.delete(SERVICES, name, namespace="ns1")
        else:
            labels = {"n": str(rng.randrange(1000))}
            lab.api.patch(SERVICES, name, {"metadata": {"labels": labels}}, namespace="ns1")
            del current


def _converged(lab: KubeLab, cache: WatchCache[dict[str, Any]], shadow: Shadow) -> bool:
    want = _server_state(lab)
    return _cache_state(cache) == want and shadow.objects == want


@pytest.fixture
def cache_and_shadow(kube_lab: KubeLab) -> Any:
    shadow = Shadow()
    cache = WatchCache(
        kube_lab.connect(),
        SERVICES,
        on_change=shadow,
        watch_timeout=5,
        backoff=Backoff(initial=0.05, maximum=0.3),
    )
    yield cache, shadow
    cache.stop()


def test_initial_list_then_live_events(kube_lab: KubeLab, cache_and_shadow: Any) -> None:
    cache, shadow = cache_and_shadow
    _mutate(kube_lab, random.Random(1), 10)
    cache.start()
    assert cache.wait_synced(5)
    assert shadow.resyncs == 1
    _mutate(kube_lab, random.Random(2), 40)
    assert wait_until(lambda: _converged(kube_lab, cache, shadow))
    assert shadow.violations == []
    assert cache.relists == 1


def test_relists_on_410_and_converges(kube_lab: KubeLab, cache_and_shadow: Any) -> None:
    cache, shadow = cache_and_shadow
    cache.start()
    assert cache.wait_synced(5)
    rng = random.Random(3)
    for _ in range(5):
        _mutate(kube_lab, rng, 15)
        kube_lab.server.expire_watches()
    _mutate(kube_lab, rng, 10)
    assert wait_until(lambda: _converged(kube_lab, cache, shadow))
    assert cache.relists >= 2
    assert shadow.violations == []


def test_dropped_streams_resume_without_relist(kube_lab: KubeLab, cache_and_shadow: Any) -> None:
    cache, shadow = cache_and_shadow
    cache.start()
    assert cache.wait_synced(5)
    rng = random.Random(4)
    for _ in range(5):
        _mutate(kube_lab, rng, 15)
        kube_lab.server.drop_watches()
    assert wait_until(lambda: _converged(kube_lab, cache, shadow))
    assert cache.relists == 1
    assert shadow.violations == []


def test_bookmarks_keep_a_quiet_watch_resumable(kube_lab: KubeLab, cache_and_shadow: Any) -> None:
    cache, shadow = cache_and_shadow
    cache.start()
    assert cache.wait_synced(5)
    for i in range(20):  # other resources move the global resourceVersion
        kube_lab.api.create(NODES, {"metadata": {"name": f"n{i}"}})
    target = kube_lab.server.resource_version
    assert wait_until(lambda: int(cache.resource_version or 0) >= target)
    kube_lab.server.compact()  # resuming from an older RV would now be 410
    kube_lab.server.drop_watches()
    kube_lab.api.create(SERVICES, {"metadata": {"name": "late", "namespace": "ns1"}})
    assert wait_until(lambda: _converged(kube_lab, cache, shadow))
    assert cache.relists == 1


def test_apiserver_restart_and_outage(kube_lab: KubeLab, cache_and_shadow: Any) -> None:
    cache, shadow = cache_and_shadow
    cache.start()
    assert cache.wait_synced(5)
    rng = random.Random(5)
    _mutate(kube_lab, rng, 20)
    kube_lab.server.stop()
    assert wait_until(lambda: cache.last_error is not None)
    kube_lab.server.start()
    _mutate(kube_lab, rng, 20)
    assert wait_until(lambda: _converged(kube_lab, cache, shadow))
    assert shadow.violations == []


def test_list_failures_back_off_then_sync(kube_lab: KubeLab, cache_and_shadow: Any) -> None:
    cache, _ = cache_and_shadow
    kube_lab.server.fail_requests(3, status=500, methods=["GET"])
    cache.start()
    assert cache.wait_synced(10)
    assert cache.last_error is not None
    assert cache.last_error.status == 500


def test_typed_view_cache_and_stop(kube_lab: KubeLab) -> None:
    kube_lab.api.create(
        SERVICES,
        {"metadata": {"name": "web", "namespace": "ns1"}, "spec": {"type": "LoadBalancer"}},
    )
    changes: list[Change[Service]] = []
    cache = WatchCache(kube_lab.api, SERVICES, view=Service.from_raw, on_change=changes.append)
    cache.start()
    try:
        assert cache.wait_synced(5)
        svc = cache.get("ns1/web")
        assert svc is not None
        assert svc.is_load_balancer
        assert [c.kind for c in changes] == [ADDED, RESYNC]
    finally:
        cache.stop()
    assert cache.get("ns1/web") is not None  # content survives stop


def test_object_the_view_rejects_is_left_out_and_watch_goes_on(kube_lab: KubeLab) -> None:
    from openelb.kube.views import ViewError

    def picky(raw: dict[str, Any]) -> str:
        if raw["metadata"]["name"].startswith("bad"):
            raise ViewError("bad object")
        return str(raw["metadata"]["name"])

    cache = WatchCache(kube_lab.api, NODES, view=picky, watch_timeout=5)
    cache.start()
    try:
        assert cache.wait_synced(5)
        kube_lab.api.create(NODES, {"metadata": {"name": "bad-1"}})
        kube_lab.api.create(NODES, {"metadata": {"name": "good-1"}})
        assert wait_until(lambda: cache.get("good-1") == "good-1")
        assert cache.get("bad-1") is None
        assert cache.keys() == ["good-1"]
    finally:
        cache.stop()
