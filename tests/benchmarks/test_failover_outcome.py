"""How ``benchmarks/failover.py`` reads a client stream: the outage the failover caused."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from openelb.lab.gaps import Probe, StreamResult

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def failover() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("failover")
    finally:
        sys.path.remove(str(BENCHMARKS))


def stream(answers: list[tuple[float, str | None]], *, event: float) -> StreamResult:
    """One probe per (send time, responder or None for unanswered), answered 0.2 ms later."""
    probes = [
        Probe(seq, sent, None if who is None else sent + 0.0002, who or "")
        for seq, (sent, who) in enumerate(answers)
    ]
    return StreamResult("vip:7007", 0.001, 0.0, probes, {"usr1": event})


def test_gap_ends_at_the_first_reply_from_the_new_node(failover: ModuleType) -> None:
    ms = [i / 1000 for i in range(1000)]
    answers: list[tuple[float, str | None]] = [
        (
            t,
            "n1"
            if t < 0.5
            else None
            if t < 0.6
            else "n2"
            if t < 0.8
            else None
            if t < 0.95
            else "n1",
        )
        for t in ms
    ]
    out = failover.outcome_of(stream(answers, event=0.5))
    assert out.before == "n1"
    assert out.after == "n2"
    assert out.takeover_ms == pytest.approx(100.2, abs=0.5)
    # The old owner's return at 0.95 s (a 150 ms silence) is another event, not this outage.
    assert out.gap_ms == pytest.approx(101.0, abs=1.0)
    assert 95 <= out.lost <= 101


def test_a_stream_that_never_moved_reports_no_takeover(failover: ModuleType) -> None:
    answers: list[tuple[float, str | None]] = [(i / 1000, "n1") for i in range(300)]
    out = failover.outcome_of(stream(answers, event=0.1))
    assert out.takeover_ms < 0
