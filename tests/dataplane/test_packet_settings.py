"""Packet-side data plane settings and metrics: validation and the metric helpers."""

from __future__ import annotations

import pytest

from openelb import metrics
from openelb.config import AfPacketSettings, ProbeSettings


def test_defaults_are_the_measured_ones() -> None:
    assert AfPacketSettings().batch == 64
    probe = ProbeSettings()
    assert probe.enabled and probe.wait == 0.03 and probe.count == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AfPacketSettings(batch=0), "batch"),
        (lambda: AfPacketSettings(poll_interval=0), "poll interval"),
        (lambda: ProbeSettings(wait=0), "probe wait"),
        (lambda: ProbeSettings(count=0), "probe count"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_metric_helpers_count_by_interface_and_kind() -> None:
    def value(name: str, labels: dict[str, str]) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    before = value("openelb_dataplane_frames_sent_total", {"interface": "t0", "kind": "dad_ns"})
    metrics.frames_sent("t0", "dad_ns", 2)
    metrics.frames_sent("t0", "dad_ns", 0)
    after = value("openelb_dataplane_frames_sent_total", {"interface": "t0", "kind": "dad_ns"})
    assert after - before == 2
    metrics.afpacket_counted("t0", "arp_reply", 3)
    labels = {"interface": "t0", "reason": "arp_reply"}
    assert value("openelb_dataplane_afpacket_packets_total", labels) >= 3
    metrics.dataplane_packet_module("python")
    assert value("openelb_dataplane_packet_module", {"implementation": "python"}) == 1
    assert value("openelb_dataplane_packet_module", {"implementation": "compiled"}) == 0
