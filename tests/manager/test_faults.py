"""Faults lose nothing and never give an address twice: 500s, 409s, dropped watches, an apiserver
restart, and managers killed (SIGKILL) at arbitrary points mid-reconcile."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from openelb.kube.client import KubeApi, connect
from openelb.kube.errors import Conflict, NotFound
from openelb.kube.resources import LEASES, SERVICES
from openelb.lab.apiserver import ApiServer
from tests.manager.harness import (
    FAST_LEASE,
    check_invariants,
    create,
    ingress_of,
    running_manager,
    wait_for,
    wait_idle,
)
from tests.manager.objects import eip, service


@pytest.fixture
def api(kubeconfig: Path) -> Any:
    client = connect(str(kubeconfig))
    yield client
    client.close()


def _all_have_addresses(api: KubeApi, names: list[str]) -> bool:
    return all(ingress_of(api, name) for name in names)


def test_errors_conflicts_dropped_watches_and_a_restart_lose_nothing(
    api: KubeApi, apiserver: ApiServer
) -> None:
    create(api, eip("pool", "10.0.0.0/24", default=True))
    names = [f"svc-{i}" for i in range(30)]
    with running_manager(api, batch_size=7) as run:
        for i, name in enumerate(names[:10]):
            create(api, service(name, created=i))
        # Faults on the manager's writes only (status PUTs, finalizer PATCHes): the test's own
        # requests below must go through.
        apiserver.fail_requests(6, status=500, path_contains="/status")
        apiserver.fail_requests(3, status=500, methods=["PATCH"])
        apiserver.fail_requests(4, status=409, path_contains="/status")
        for i, name in enumerate(names[10:20], start=10):
            create(api, service(name, created=i))
        apiserver.drop_watches()
        # A user edits Services while the manager writes them: real 409s.
        for name in names[:5]:
            _touch(api, name)
        apiserver.restart()
        for i, name in enumerate(names[20:], start=20):
            create(api, service(name, created=i))
        api.delete(SERVICES, names[3], namespace="default")
        alive = [n for n in names if n != names[3]]
        wait_for("every Service addressed", lambda: _all_have_addresses(api, alive), timeout=60)
        wait_idle(run.manager, timeout=30)
        holders = wait_for("consistent statuses", lambda: _consistent(api), timeout=30)
    assert len(holders) == len(alive)


def _touch(api: KubeApi, name: str) -> None:
    """A user's edit: read, change a label, write; on a 409 (the manager wrote first), again."""
    for _ in range(20):
        raw = api.get(SERVICES, name, namespace="default")
        raw["metadata"].setdefault("labels", {})["touched"] = "yes"
        try:
            api.replace(SERVICES, raw)
        except Conflict:
            continue
        return
    raise AssertionError(f"{name}: 20 conflicts in a row on a user's edit")


def _consistent(api: KubeApi) -> dict[str, set[str]] | None:
    try:
        return check_invariants(api)
    except AssertionError:
        return None


def _holder(api: KubeApi) -> str:
    try:
        lease = api.get(LEASES, FAST_LEASE.lease_name, namespace=FAST_LEASE.lease_namespace)
    except NotFound:
        return ""
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _no_address_twice(api: KubeApi) -> None:
    """The part of the invariants that must hold at every instant (Eip ``used`` may lag)."""
    try:
        check_invariants(api)
    except AssertionError as exc:
        assert str(exc).startswith("Eip used"), exc


def _spawn_manager(kubeconfig: Path, identity: str) -> subprocess.Popen[bytes]:
    lease = FAST_LEASE
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openelb.cli",
            "manager",
            "--kubeconfig",
            str(kubeconfig),
            "--metrics-port",
            "0",
            "--identity",
            identity,
            "--lease-namespace",
            lease.lease_namespace,
            "--lease-duration",
            str(lease.lease_duration),
            "--renew-deadline",
            str(lease.renew_deadline),
            "--retry-period",
            str(lease.retry_period),
            "--batch-size",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_managers_killed_mid_reconcile_never_give_an_address_twice(
    api: KubeApi, kubeconfig: Path
) -> None:
    create(api, eip("pool", "10.0.0.0/26", default=True))
    rng = random.Random(4)
    names: list[str] = []
    for round_ in range(4):
        identity = f"doomed-{round_}"
        proc = _spawn_manager(kubeconfig, identity)
        try:
            wait_for(f"{identity} leads", lambda who=identity: _holder(api) == who, timeout=30)
            for i in range(12):
                name = f"r{round_}-{i}"
                names.append(name)
                shared = "k" if i % 4 == 0 else None
                create(api, service(name, created=len(names), key=shared, ports=(1000 + i,)))
            if round_:
                victim = names.pop(rng.randrange(len(names)))
                api.delete(SERVICES, victim, namespace="default")
            # SIGKILL while it works through the new Services (batches of 5).
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        # Whatever it left behind must already be consistent: never one address twice.
        _no_address_twice(api)
    with running_manager(api, identity="survivor") as run:
        wait_for("every Service addressed", lambda: _all_have_addresses(api, names), timeout=60)
        wait_idle(run.manager, timeout=30)
        holders = wait_for("consistent statuses", lambda: _consistent(api), timeout=30)
    assert sum(len(h) for h in holders.values()) == len(names)
