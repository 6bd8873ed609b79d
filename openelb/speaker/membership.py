"""One speaker's view of which speakers are alive, and whom it heartbeats to.

Two sources, on purpose:

- Leases (``openelb-speaker-<node>``) say who *exists*: slow (seconds) but authoritative. A speaker
  without a Lease is not a member whatever the datagrams say.
- Heartbeats say who is alive *now*: each speaker sends them to the backups of the VIPs it owns
  (they take over when it dies) plus a bounded ring of successors (so every member is watched by
  someone and its death spreads even when it owns nothing): fan-out ``len(backups) + 3``, never
  an all-to-all mesh.

A detector's verdict is spread to every member as an OBITUARY, so nodes that do not watch the dead
one reach the same ownership. A member that hears its own obituary (a link that was cut and
healed) refutes it with ALIVE at a higher incarnation, which every member accepts; a member that
sees a dead peer heartbeating again tells it so, so the refutation happens even if the obituary
itself was lost. Incarnations only grow (the speaker starts with the wall clock in ns).

Pure: messages in, messages out (:class:`Outgoing`); the caller owns sockets and clocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from openelb.speaker.detector import Cause, Death, FailureDetector, Revival
from openelb.speaker.wire import Kind, Message

EVERYONE: tuple[str, ...] = ()
"""``Outgoing.to`` value meaning: every member but ourselves."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message the caller should send, to the named members (``EVERYONE`` = all others)."""

    message: Message
    to: tuple[str, ...] = EVERYONE


@dataclass(slots=True)
class Reaction:
    """What a received message or a poll changed, and what to send in answer."""

    deaths: list[Death] = field(default_factory=list)
    revivals: list[Revival] = field(default_factory=list)
    send: list[Outgoing] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.deaths or self.revivals)


def ring_successors(me: str, members: Iterable[str], fanout: int) -> list[str]:
    """The ``fanout`` members after ``me`` in name order, wrapping around."""
    ordered = sorted(set(members) | {me})
    i = ordered.index(me)
    others = ordered[i + 1 :] + ordered[:i]
    return others[:fanout]


class Membership:
    """Leases plus heartbeat verdicts folded into one "who is alive" set."""

    def __init__(
        self, *, me: str, incarnation: int, detector: FailureDetector, ring_fanout: int = 3
    ) -> None:
        if ring_fanout < 1:
            raise ValueError(f"ring fan-out must be >= 1, got {ring_fanout}")
        self.me = me
        self.incarnation = incarnation
        self.detector = detector
        self.ring_fanout = ring_fanout
        self._members: dict[str, int] = {}
        self._sequence = 0
        self._told: dict[str, int] = {}

    # --- membership from Leases ------------------------------------------------------------------

    def set_members(self, members: Mapping[str, int]) -> Reaction:
        """The speakers holding a Lease, with the incarnation each Lease carries."""
        reaction = Reaction()
        for gone in set(self._members) - set(members):
            self.detector.forget(gone)
        for name, incarnation in members.items():
            if name == self.me:
                continue
            # A restarted speaker may renew its Lease before its first heartbeat reaches us.
            revival = self.detector.revive(name, incarnation=incarnation)
            if revival is not None:
                reaction.revivals.append(revival)
        self._members = {n: i for n, i in members.items() if n != self.me}
        return reaction

    def members(self) -> frozenset[str]:
        """Every speaker with a Lease, ourselves included."""
        return frozenset(self._members) | {self.me}

    def alive(self) -> frozenset[str]:
        """Members not declared dead (ourselves always)."""
        dead = self.detector.dead()
        return frozenset(n for n in self._members if n not in dead) | {self.me}

    # --- heartbeat fan-out -----------------------------------------------------------------------

    def heartbeat_targets(self, backups: Iterable[str]) -> frozenset[str]:
        """Whom to heartbeat: the backups of our VIPs plus our ring successors.

        The ring runs over every member, dead ones included: a member we hold dead may only be
        cut off, and our heartbeats are how it learns (and refutes) that once its link heals.
        """
        alive = self.alive()
        targets = {b for b in backups if b in alive and b != self.me}
        targets.update(ring_successors(self.me, self.members(), self.ring_fanout))
        targets.discard(self.me)
        return frozenset(targets)

    # --- messages --------------------------------------------------------------------------------

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def own(self, kind: Kind, *, subject: str = "", subject_incarnation: int = 0) -> Message:
        """A message from us, with the next sequence number."""
        return Message(
            kind, self.me, self.incarnation, self.next_sequence(), subject, subject_incarnation
        )

    def receive(self, msg: Message, *, now: float) -> Reaction:
        """Fold one received message into the view."""
        reaction = Reaction()
        if msg.sender == self.me:
            return reaction  # our own broadcast looped back
        # A sender without a Lease yet is watched anyway (its Lease may lag its first datagram by
        # a watch round-trip) but changes nothing: alive() only lists members.
        match msg.kind:
            case Kind.HEARTBEAT | Kind.ALIVE:
                was_dead = self.detector.is_dead(msg.sender)
                revival = self.detector.heard(
                    msg.sender, incarnation=msg.incarnation, sequence=msg.sequence, now=now
                )
                if revival is not None:
                    reaction.revivals.append(revival)
                elif was_dead and msg.kind is Kind.HEARTBEAT:
                    # It is alive but we hold it dead at this incarnation: tell it, so it refutes
                    # at a higher one and every member (also those we cannot reach) revives it.
                    # Once per few heartbeats, not on every one (the notice may be lost).
                    told = self._told.get(msg.sender, 0)
                    self._told[msg.sender] = told + 1
                    if told % self.detector.misses == 0:
                        obit = self.own(
                            Kind.OBITUARY, subject=msg.sender, subject_incarnation=msg.incarnation
                        )
                        reaction.send.append(Outgoing(obit, (msg.sender,)))
                if revival is not None:
                    self._told.pop(msg.sender, None)
            case Kind.GOODBYE:
                death = self.detector.goodbye(msg.sender, incarnation=msg.incarnation, now=now)
                if death is not None:
                    reaction.deaths.append(death)
            case Kind.STOP:
                self.detector.stop(msg.sender)
            case Kind.OBITUARY:
                if msg.subject == self.me:
                    if msg.subject_incarnation >= self.incarnation:
                        self.incarnation = msg.subject_incarnation + 1
                        reaction.send.append(Outgoing(self.own(Kind.ALIVE)))
                else:
                    death = self.detector.obituary(
                        msg.subject, incarnation=msg.subject_incarnation, now=now
                    )
                    if death is not None:
                        reaction.deaths.append(death)
        return reaction

    def poll(self, *, now: float) -> Reaction:
        """Silence verdicts due at ``now``; each is spread as an OBITUARY to every member."""
        reaction = Reaction()
        for death in self.detector.poll(now):
            if death.cause is Cause.SILENCE:
                reaction.send.append(
                    Outgoing(
                        self.own(
                            Kind.OBITUARY,
                            subject=death.peer,
                            subject_incarnation=death.incarnation,
                        )
                    )
                )
            reaction.deaths.append(death)
        return reaction

    def goodbye(self) -> Outgoing:
        """Our graceful-stop message, to every member."""
        return Outgoing(self.own(Kind.GOODBYE))

    def stop_to(self, peers: Iterable[str]) -> Outgoing | None:
        """STOP to peers we no longer heartbeat to, so they do not declare us dead."""
        to = tuple(sorted(set(peers) - {self.me}))
        return Outgoing(self.own(Kind.STOP), to) if to else None
