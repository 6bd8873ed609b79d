"""Peer Lease expiry: only observed silence counts, and heartbeats overrule the Lease."""

from __future__ import annotations

import pytest

from openelb.speaker.detector import FailureDetector
from openelb.speaker.expiry import LeaseExpiry, UnleasedPeers
from openelb.speaker.records import SpeakerRecord

DURATION = 15.0


def _expired(
    expiry: LeaseExpiry,
    *,
    renew: str = "t0",
    now: float,
    since: float | None = 0.0,
    alive: bool = False,
    name: str = "openelb-speaker-n2",
) -> bool:
    return expiry.expired(
        name,
        renew_time=renew,
        duration=DURATION,
        now=now,
        observing_since=since,
        heard_alive=alive,
    )


def test_a_lease_not_renewed_for_two_durations_of_a_silent_peer_expires() -> None:
    expiry = LeaseExpiry()
    assert not _expired(expiry, now=0.0)
    assert not _expired(expiry, now=29.0)
    assert _expired(expiry, now=31.0)


def test_a_renewal_restarts_the_clock() -> None:
    expiry = LeaseExpiry()
    assert not _expired(expiry, now=0.0)
    assert not _expired(expiry, renew="t1", now=20.0)
    assert not _expired(expiry, renew="t1", now=49.0)
    assert _expired(expiry, renew="t1", now=51.0)


def test_nothing_expires_while_our_own_renewals_fail() -> None:
    expiry = LeaseExpiry()
    assert not _expired(expiry, now=0.0)
    assert not _expired(expiry, now=600.0, since=None)


def test_after_a_long_outage_peers_get_two_durations_from_the_reconnect() -> None:
    # Everyone's Leases froze during a 10-minute outage; our renewals work again from t=600.
    # Counting the outage would drop every peer at once (each node then takes every VIP).
    expiry = LeaseExpiry()
    assert not _expired(expiry, now=0.0)
    assert not _expired(expiry, now=601.0, since=600.0)
    assert not _expired(expiry, now=629.0, since=600.0)
    assert _expired(expiry, now=631.0, since=600.0)


def test_a_peer_heard_alive_keeps_its_stale_lease() -> None:
    # The peer lost the apiserver, not the network: it serves on (fail-static) and heartbeats;
    # dropping it would make its backup answer as well.
    expiry = LeaseExpiry()
    assert not _expired(expiry, now=0.0)
    assert not _expired(expiry, now=300.0, alive=True)
    assert _expired(expiry, now=301.0, alive=False)  # declared dead (or never heard): gone


def test_forgotten_leases_start_over() -> None:
    expiry = LeaseExpiry()
    assert not _expired(expiry, now=0.0)
    expiry.keep_only([])
    assert not _expired(expiry, now=100.0)  # seen for the first time again
    assert _expired(expiry, now=131.0)


def test_the_factor_must_be_positive() -> None:
    with pytest.raises(ValueError, match="factor"):
        LeaseExpiry(factor=0)


def _leased(*nodes: str) -> dict[str, SpeakerRecord]:
    return {n: SpeakerRecord(node=n, heartbeat=("10.0.0.9", 7947), incarnation=1) for n in nodes}


def test_a_peer_heard_alive_without_a_lease_is_a_member_until_its_lease_arrives() -> None:
    detector = FailureDetector(interval=0.02, misses=5)
    unleased = UnleasedPeers()
    detector.heard("n2", incarnation=7, sequence=1, now=0.0)
    assert unleased.heard("n2", ("10.0.0.2", 7947))
    assert not unleased.heard("n2", ("10.0.0.2", 7947))  # not news
    members = unleased.members(_leased("n1"), detector)
    assert members == {"n2": SpeakerRecord(node="n2", heartbeat=("10.0.0.2", 7947), incarnation=7)}
    assert members["n2"].may_serve("any-eip")  # says nothing about its Eips yet
    assert unleased.members(_leased("n1", "n2"), detector) == {}  # the Lease arrived
    assert len(unleased) == 0


def test_an_unleased_peer_that_dies_is_forgotten() -> None:
    detector = FailureDetector(interval=0.02, misses=5)
    unleased = UnleasedPeers()
    detector.heard("n2", incarnation=7, sequence=1, now=0.0)
    unleased.heard("n2", ("10.0.0.2", 7947))
    assert detector.poll(1.0)  # silent for a second: dead
    assert unleased.members({}, detector) == {}
    assert len(unleased) == 0


def test_a_sender_the_detector_never_heard_is_not_a_member() -> None:
    unleased = UnleasedPeers()
    unleased.heard("ghost", ("10.0.0.66", 7947))
    assert unleased.members({}, FailureDetector()) == {}
