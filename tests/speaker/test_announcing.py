"""AnnounceScheduler: burst after gaining a VIP, refresh, cancelled on loss."""

from __future__ import annotations

import itertools

import pytest

from openelb.speaker.announcing import AnnounceScheduler


def _times(sched: AnnounceScheduler, ip: str, until: float, step: float = 0.01) -> list[float]:
    out = []
    for i in range(round(until / step) + 1):
        t = round(i * step, 6)
        if ip in sched.due(t):
            out.append(round(t, 2))
    return out


def test_burst_follows_the_offsets() -> None:
    sched = AnnounceScheduler()
    sched.gain("10.0.0.1", now=0.0)
    assert _times(sched, "10.0.0.1", 5.0) == [0.0, 0.1, 0.5, 1.0, 2.0]
    assert sched.next_deadline() is None


def test_loss_cancels_and_regain_restarts() -> None:
    sched = AnnounceScheduler()
    sched.gain("10.0.0.1", now=0.0)
    assert sched.due(0.0) == ["10.0.0.1"]
    sched.lose("10.0.0.1")
    assert sched.due(10.0) == []
    sched.gain("10.0.0.1", now=20.0)
    sched.gain("10.0.0.1", now=20.0)  # re-gain without loss: still one announcement per step
    assert sched.due(20.0) == ["10.0.0.1"]


def test_refresh_repeats_within_the_period() -> None:
    sched = AnnounceScheduler(burst=(0.0,), refresh=10.0)
    sched.gain("10.0.0.1", now=0.0)
    times = _times(sched, "10.0.0.1", 40.0, step=0.05)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 4
    assert all(5.0 <= g <= 10.0 + 1e-6 for g in gaps)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="start at 0"):
        AnnounceScheduler(burst=(0.1,))
    with pytest.raises(ValueError, match="decrease"):
        AnnounceScheduler(burst=(0.0, 1.0, 0.5))
    with pytest.raises(ValueError, match="refresh"):
        AnnounceScheduler(refresh=0)
