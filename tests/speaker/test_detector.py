"""FailureDetector: deaths after misses x interval of silence, never from one late packet."""

from __future__ import annotations

import pytest

from openelb.speaker.detector import Cause, FailureDetector


def _beats(det: FailureDetector, peer: str, *, start: float, count: int, inc: int = 1) -> float:
    t = start
    for i in range(count):
        det.heard(peer, incarnation=inc, sequence=int(t * 1000) + i, now=t)
        t += det.interval
    return t


def test_unarmed_peer_is_never_declared_dead() -> None:
    det = FailureDetector()
    assert det.poll(100.0) == []
    assert det.next_deadline() is None


def test_silence_for_misses_times_interval_declares_death_once() -> None:
    det = FailureDetector(interval=0.02, misses=5)
    det.heard("b", incarnation=1, sequence=1, now=0.0)
    assert det.next_deadline() == pytest.approx(0.1)
    assert det.poll(0.099) == []
    (death,) = det.poll(0.101)
    assert (death.peer, death.cause, death.last_heard) == ("b", Cause.SILENCE, 0.0)
    assert det.poll(0.5) == []
    assert det.is_dead("b")


def test_a_single_late_packet_is_not_a_death() -> None:
    det = FailureDetector(interval=0.02, misses=5)
    t = _beats(det, "b", start=0.0, count=10)
    # one heartbeat arrives 3 intervals late, then the rhythm resumes
    t += 3 * det.interval
    det.heard("b", incarnation=1, sequence=10_000, now=t)
    assert det.poll(t) == []
    _beats(det, "b", start=t + det.interval, count=5)
    assert det.dead() == frozenset()


def test_goodbye_is_immediate_and_late_heartbeats_do_not_revive() -> None:
    det = FailureDetector()
    det.heard("b", incarnation=1, sequence=1, now=0.0)
    death = det.goodbye("b", incarnation=1, now=0.01)
    assert death is not None and death.cause is Cause.GOODBYE
    _beats(det, "b", start=0.02, count=20)
    assert det.is_dead("b")
    revival = det.heard("b", incarnation=2, sequence=1, now=1.0)
    assert revival is not None and revival.incarnation == 2


def test_stop_disarms_without_a_death() -> None:
    det = FailureDetector()
    det.heard("b", incarnation=1, sequence=1, now=0.0)
    det.stop("b")
    assert det.poll(10.0) == []
    det.heard("b", incarnation=1, sequence=2, now=10.0)
    assert det.poll(10.2) != []


def test_healed_link_revives_after_a_streak_not_one_packet() -> None:
    det = FailureDetector(interval=0.02, misses=5)
    det.heard("b", incarnation=1, sequence=1, now=0.0)
    assert det.poll(1.0)
    revivals = [det.heard("b", incarnation=1, sequence=s, now=1.0 + s / 50) for s in range(2, 8)]
    assert [r is not None for r in revivals] == [False] * 4 + [True, False]


def test_obituary_for_an_older_life_is_ignored() -> None:
    det = FailureDetector()
    det.heard("b", incarnation=5, sequence=1, now=0.0)
    assert det.obituary("b", incarnation=4, now=0.01) is None
    assert det.obituary("b", incarnation=5, now=0.01) is not None
    assert det.revive("b", incarnation=5) is None
    assert det.revive("b", incarnation=6) is not None
    assert det.poll(10.0) == []  # revived from a Lease: not watched until it heartbeats


def test_stale_and_duplicate_datagrams_do_not_refresh() -> None:
    det = FailureDetector(interval=0.02, misses=5)
    det.heard("b", incarnation=2, sequence=10, now=0.0)
    det.heard("b", incarnation=1, sequence=99, now=0.09)
    det.heard("b", incarnation=2, sequence=10, now=0.09)
    assert [d.peer for d in det.poll(0.11)] == ["b"]


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="interval"):
        FailureDetector(interval=0)
    with pytest.raises(ValueError, match="misses"):
        FailureDetector(misses=1)


def test_a_stalled_judge_declares_no_death_from_silence_it_did_not_observe() -> None:
    det = FailureDetector(interval=0.02, misses=5)
    det.heard("b", incarnation=1, sequence=1, now=0.0)
    det.observed(0.01)
    # Our loop stalled for a second (a data plane compiling): nobody read the socket, so the
    # silence since 0.01 is ours, not b's.
    assert det.poll(1.0) == []
    # The drain after the stall finds b's queued heartbeats: alive.
    det.observed(1.0)
    det.heard("b", incarnation=1, sequence=2, now=1.0)
    assert det.poll(1.01) == []
    # Silence we did observe still counts.
    det.observed(1.2)
    (death,) = det.poll(1.2)
    assert (death.peer, death.cause) == ("b", Cause.SILENCE)
    assert death.at - death.last_heard == pytest.approx(0.2)


def test_datagrams_lost_to_a_full_buffer_are_not_silence() -> None:
    det = FailureDetector(interval=0.02, misses=5)
    det.heard("b", incarnation=1, sequence=1, now=0.0)
    det.heard("c", incarnation=1, sequence=1, now=0.0)
    # Starved for a second: the socket filled and the kernel dropped the freshest heartbeats.
    # The drain at 1.0 found only old ones; the loss is reported, so nobody is dead yet.
    det.blinded(1.0)
    det.observed(1.0)
    assert det.poll(1.0) == []
    # b goes on heartbeating, c really died meanwhile: c is declared one timeout later.
    det.heard("b", incarnation=1, sequence=2, now=1.08)
    det.observed(1.11)
    (death,) = det.poll(1.11)
    assert (death.peer, death.cause) == ("c", Cause.SILENCE)
    # A dead peer stays dead: blinding does not revive it.
    det.blinded(2.0)
    assert det.is_dead("c")
