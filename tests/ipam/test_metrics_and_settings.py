"""IPAM metrics helpers and settings: names, labels, and clear errors for bad settings."""

from __future__ import annotations

import pytest

from openelb import metrics
from openelb.config import IpamSettings
from openelb.ipam import NoIPReason


def _value(name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_pool_gauges_follow_observations_and_disappear_with_the_pool() -> None:
    metrics.ipam_pool_observed("metrics-test", size=2**64, used=3, free=2**64 - 3)
    assert _value("openelb_ipam_pool_size_addresses", pool="metrics-test") == float(2**64)
    assert _value("openelb_ipam_pool_used_addresses", pool="metrics-test") == 3
    metrics.ipam_pool_removed("metrics-test")
    metrics.ipam_pool_removed("metrics-test")
    assert _value("openelb_ipam_pool_used_addresses", pool="metrics-test") is None


def test_allocations_and_failures_are_counted_by_bounded_labels() -> None:
    before = _value("openelb_ipam_allocations_total", pool="none", family="IPv6") or 0.0
    metrics.ipam_allocated(pool=None, family="IPv6")
    assert _value("openelb_ipam_allocations_total", pool="none", family="IPv6") == before + 1
    reason = NoIPReason.PORT_CLASH.value
    before = _value("openelb_ipam_allocation_failures_total", reason=reason) or 0.0
    metrics.ipam_allocation_failed(reason)
    assert _value("openelb_ipam_allocation_failures_total", reason=reason) == before + 1
    before = _value("openelb_ipam_releases_total", family="IPv4") or 0.0
    metrics.ipam_released(family="IPv4", count=2)
    assert _value("openelb_ipam_releases_total", family="IPv4") == before + 2


def test_router_id_settings_are_checked_and_parsed() -> None:
    assert IpamSettings().router_id_last == 255
    assert IpamSettings.parse_ids("1, 5-7,") == (1, 5, 6, 7)
    with pytest.raises(ValueError, match="'x' is not a number"):
        IpamSettings.parse_ids("1,x")
    with pytest.raises(ValueError, match="reversed"):
        IpamSettings.parse_ids("9-3")
    with pytest.raises(ValueError, match="1-255"):
        IpamSettings(router_id_first=10, router_id_last=300)
    with pytest.raises(ValueError, match=r"\[0\]"):
        IpamSettings(router_id_reserved=(0,))
