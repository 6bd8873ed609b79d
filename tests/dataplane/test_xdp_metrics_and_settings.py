"""The XDP counters reach Prometheus at scrape time; data plane settings reject bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from openelb.config import DataplaneSettings
from openelb.dataplane.responder import COUNTER_REASONS
from openelb.metrics import register_xdp_counters


def test_counters_are_read_at_every_scrape() -> None:
    registry = CollectorRegistry()
    counts = dict.fromkeys(COUNTER_REASONS, 0)
    register_xdp_counters(lambda: counts, mode="xdp-native", to=registry)
    sample = "openelb_dataplane_xdp_packets_total"
    labels = {"mode": "xdp-native", "reason": "arp_reply"}
    assert registry.get_sample_value(sample, labels) == 0
    counts["arp_reply"] = 41
    assert registry.get_sample_value(sample, labels) == 41
    assert registry.get_sample_value(sample, {**labels, "reason": "gate_closed"}) == 0


def test_a_closed_responder_yields_no_samples_instead_of_failing() -> None:
    registry = CollectorRegistry()

    def closed() -> dict[str, int]:
        raise OSError(9, "Bad file descriptor")

    register_xdp_counters(closed, mode="xdp-generic", to=registry)
    assert (
        registry.get_sample_value(
            "openelb_dataplane_xdp_packets_total", {"mode": "xdp-generic", "reason": "miss"}
        )
        is None
    )


def test_settings_defaults_are_valid() -> None:
    settings = DataplaneSettings()
    assert settings.mode == "auto" and settings.pin_root == Path("/sys/fs/bpf/openelb")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "ebpf"}, "not one of"),
        ({"instance": "a/b"}, "instance"),
        ({"max_vips": 0}, "max VIPs"),
        ({"gate_max_age": 0.0}, "gate max age"),
    ],
)
def test_settings_reject_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataplaneSettings(**kwargs)  # type: ignore[arg-type]
