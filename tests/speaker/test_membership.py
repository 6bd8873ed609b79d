"""Membership: Leases plus verdicts, obituaries spread, refutation by incarnation."""

from __future__ import annotations

from openelb.speaker.detector import FailureDetector
from openelb.speaker.membership import EVERYONE, Membership, ring_successors
from openelb.speaker.wire import Kind, Message


def _member(me: str, inc: int = 1) -> Membership:
    m = Membership(me=me, incarnation=inc, detector=FailureDetector(interval=0.02, misses=5))
    m.set_members({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1})
    return m


def test_ring_is_bounded_and_wraps() -> None:
    assert ring_successors("d", ["a", "b", "c", "d", "e"], 3) == ["e", "a", "b"]
    assert ring_successors("a", ["a"], 3) == []


def test_targets_are_backups_plus_ring_never_everyone() -> None:
    m = _member("a")
    assert m.heartbeat_targets(["e"]) == {"b", "c", "d", "e"}
    assert m.heartbeat_targets([]) == {"b", "c", "d"}


def test_silence_death_is_spread_as_an_obituary_to_everyone() -> None:
    b = _member("b")
    b.receive(Message(Kind.HEARTBEAT, "a", 1, 1), now=0.0)
    reaction = b.poll(now=0.2)
    assert [d.peer for d in reaction.deaths] == ["a"]
    (out,) = reaction.send
    assert out.to == EVERYONE
    assert (out.message.kind, out.message.subject) == (Kind.OBITUARY, "a")
    assert "a" not in b.alive()

    c = _member("c")
    c.receive(out.message, now=0.21)
    assert "a" not in c.alive()


def test_obituary_of_a_live_member_is_refuted_and_everyone_revives_it() -> None:
    a, b, c = _member("a"), _member("b"), _member("c")
    b.receive(Message(Kind.HEARTBEAT, "a", 1, 1), now=0.0)
    obit = b.poll(now=0.2).send[0].message
    c.receive(obit, now=0.2)
    # The link heals: b sees a's heartbeat at the old incarnation and tells a.
    told = b.receive(a.own(Kind.HEARTBEAT), now=0.3).send
    assert told and told[0].to == ("a",) and told[0].message.subject == "a"
    refute = a.receive(told[0].message, now=0.3).send[0].message
    assert refute.kind is Kind.ALIVE and refute.incarnation == 2
    for m in (b, c):
        reaction = m.receive(refute, now=0.31)
        assert [r.peer for r in reaction.revivals] == ["a"]
        assert "a" in m.alive()


def test_goodbye_is_an_immediate_death_without_obituary() -> None:
    b = _member("b")
    reaction = b.receive(Message(Kind.GOODBYE, "a", 1, 9), now=0.0)
    assert [d.peer for d in reaction.deaths] == ["a"] and reaction.send == []


def test_a_restart_seen_in_the_lease_revives() -> None:
    b = _member("b")
    b.receive(Message(Kind.GOODBYE, "a", 1, 9), now=0.0)
    reaction = b.set_members({"a": 2, "b": 1})
    assert [r.peer for r in reaction.revivals] == ["a"]
    assert b.alive() == {"a", "b"}
    assert b.poll(now=100.0).deaths == []


def test_non_members_never_count_as_alive() -> None:
    b = _member("b")
    b.receive(Message(Kind.HEARTBEAT, "zz", 1, 1), now=0.0)
    assert "zz" not in b.alive()
