"""Running managers against the embedded apiserver, and checking what a user would see."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from openelb.config import LeaderElectionSettings, ManagerSettings
from openelb.kube.client import KubeApi
from openelb.kube.errors import AlreadyExists, NotFound
from openelb.kube.resources import EIPS, EVENTS, NAMESPACES, SERVICES
from openelb.manager import FINALIZER, is_ours
from openelb.manager.process import Manager
from openelb.manager.reading import ingress_ips

T = TypeVar("T")

FAST_LEASE = LeaderElectionSettings(
    lease_name="openelb-manager",
    lease_namespace="default",
    lease_duration=2.0,
    renew_deadline=1.5,
    retry_period=0.2,
)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def wait_idle(manager: Manager, timeout: float = 30.0) -> None:
    """Wait until ``manager`` has nothing left to do; at the deadline, fail saying what it still
    holds (keys queued, delayed with their failure counts, in progress; Eip statuses behind)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if manager.idle():
            return
        time.sleep(0.05)
    reasons = manager.activity()
    if not reasons:  # idle at the very last instant
        return
    raise AssertionError("timed out waiting for idle: " + "; ".join(reasons))


@dataclass
class Running:
    """A manager running in a thread of the test."""

    manager: Manager
    stop: threading.Event
    thread: threading.Thread

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "manager did not stop"


@contextmanager
def running_manager(
    api: KubeApi, *, identity: str = "m1", batch_size: int = 500
) -> Iterator[Running]:
    """A manager with a fast Lease, stopped (and its Lease released) after the block."""
    leader = LeaderElectionSettings(
        lease_name=FAST_LEASE.lease_name,
        lease_namespace=FAST_LEASE.lease_namespace,
        identity=identity,
        lease_duration=FAST_LEASE.lease_duration,
        renew_deadline=FAST_LEASE.renew_deadline,
        retry_period=FAST_LEASE.retry_period,
    )
    manager = Manager(api, ManagerSettings(leader=leader, batch_size=batch_size, metrics_port=0))
    stop = threading.Event()
    thread = threading.Thread(target=manager.run, args=(stop,), name=f"manager-{identity}")
    thread.start()
    run = Running(manager, stop, thread)
    try:
        yield run
    finally:
        run.close()


def ensure_namespace(api: KubeApi, name: str, labels: dict[str, str] | None = None) -> None:
    with suppress(AlreadyExists):
        api.create(NAMESPACES, {"metadata": {"name": name, "labels": labels or {}}})


def create(api: KubeApi, obj: dict[str, Any]) -> dict[str, Any]:
    """Create a Service or an Eip built by ``tests.manager.objects`` (status dropped)."""
    body = {k: v for k, v in obj.items() if k != "status"}
    body["metadata"] = {
        k: v
        for k, v in obj["metadata"].items()
        if k not in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp")
    }
    if obj["kind"] == "Eip":
        return api.create(EIPS, body)
    ensure_namespace(api, body["metadata"]["namespace"])
    return api.create(SERVICES, body)


def get_service(api: KubeApi, name: str, namespace: str = "default") -> dict[str, Any] | None:
    try:
        return api.get(SERVICES, name, namespace=namespace)
    except NotFound:
        return None


def ingress_of(api: KubeApi, name: str, namespace: str = "default") -> tuple[str, ...]:
    raw = get_service(api, name, namespace)
    return ingress_ips(raw) if raw else ()


def eip_status(api: KubeApi, name: str) -> dict[str, Any]:
    return api.get(EIPS, name).get("status") or {}


def events_for(api: KubeApi, name: str, namespace: str = "default") -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events about object ``name``."""
    items, _ = api.list(EVENTS, namespace=namespace)
    return [
        (e.get("type", ""), e.get("reason", ""), e.get("message", ""))
        for e in items
        if (e.get("involvedObject") or {}).get("name") == name
    ]


def warning_reasons(api: KubeApi, name: str, namespace: str = "default") -> set[str]:
    return {reason for kind, reason, _ in events_for(api, name, namespace) if kind == "Warning"}


def check_invariants(api: KubeApi) -> dict[str, set[str]]:
    """No address in two statuses without a valid sharing; Eip ``used`` is exactly the statuses.

    Returns address -> holders. Raises AssertionError naming the first violation.
    """
    services, _ = api.list(SERVICES)
    holders: dict[str, set[str]] = {}
    claims: dict[str, dict[str, Any]] = {}
    for raw in services:
        if not is_ours(raw):
            continue
        meta = raw["metadata"]
        name = f"{meta['namespace']}/{meta['name']}"
        claims[name] = raw
        for ip in ingress_ips(raw):
            holders.setdefault(ip, set()).add(name)
    for ip, names in holders.items():
        if len(names) > 1:
            keys = {
                (claims[n]["metadata"].get("annotations") or {}).get("openelb.io/sharing-key")
                for n in names
            }
            assert None not in keys and len(keys) == 1, f"{ip} held by {sorted(names)}"
            ports = [
                (p["port"], p.get("protocol", "TCP"))
                for n in names
                for p in claims[n]["spec"].get("ports") or ()
            ]
            assert len(ports) == len(set(ports)), f"{ip}: port clash among {sorted(names)}"
    eips, _ = api.list(EIPS)
    used: dict[str, set[str]] = {}
    for eip in eips:
        for ip, text in ((eip.get("status") or {}).get("used") or {}).items():
            used.setdefault(ip, set()).update(text.split(";"))
    assert used == holders, f"Eip used {used} != Service statuses {holders}"
    for name, raw in claims.items():
        if ingress_ips(raw):
            assert FINALIZER in (raw["metadata"].get("finalizers") or ()), f"{name}: no finalizer"
    return holders
