"""The manager's metrics as an operator scrapes them: pool size and use, allocations and failures
by reason, Services waiting for an address, reconcile durations, leader state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openelb import metrics
from openelb.kube.client import KubeApi, connect
from tests.manager.harness import (
    FAST_LEASE,
    create,
    ingress_of,
    running_manager,
    wait_for,
    wait_idle,
    warning_reasons,
)
from tests.manager.objects import eip, service


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[KubeApi]:
    client = connect(str(kubeconfig))
    yield client
    client.close()


def _value(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_every_manager_metric_is_exported_with_what_a_dashboard_needs(api: KubeApi) -> None:
    lease = f"{FAST_LEASE.lease_namespace}/{FAST_LEASE.lease_name}"
    failures_before = _value("openelb_ipam_allocation_failures_total", reason="PoolFull")
    allocations_before = _value("openelb_ipam_allocations_total", pool="metrics", family="IPv4")
    batches_before = _value("openelb_manager_reconcile_duration_seconds_count")
    create(api, eip("metrics", "10.9.0.0/31", default=True))
    for index, name in enumerate(("m1", "m2", "m3")):
        create(api, service(name, created=index))
    with running_manager(api) as run:
        wait_for("two addressed", lambda: ingress_of(api, "m1") and ingress_of(api, "m2"))
        wait_for("full", lambda: "PoolFull" in warning_reasons(api, "m3"))
        wait_idle(run.manager)
        assert _value("openelb_kube_leader", lease=lease) == 1
        assert _value("openelb_ipam_pool_size_addresses", pool="metrics") == 2
        assert _value("openelb_ipam_pool_used_addresses", pool="metrics") == 2
        assert _value("openelb_ipam_pool_free_addresses", pool="metrics") == 0
        assert _value("openelb_manager_services_managed") == 2
        assert _value("openelb_manager_services_unassigned", reason="PoolFull") == 1
        assert _value("openelb_manager_services_unassigned", reason="NoPool") == 0
        allocations = _value("openelb_ipam_allocations_total", pool="metrics", family="IPv4")
        assert allocations - allocations_before == 2
        failures = _value("openelb_ipam_allocation_failures_total", reason="PoolFull")
        assert failures > failures_before
        assert _value("openelb_manager_reconcile_duration_seconds_count") > batches_before
    assert _value("openelb_kube_leader", lease=lease) == 0
