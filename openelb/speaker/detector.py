"""Fast failure detection from heartbeats: the backup's half of sub-second failover.

Why a fixed deadline and not a phi-accrual or adaptive one: on a LAN the heartbeat thread's own
jitter (measured and exported) is the only noise, and a fixed ``misses x interval`` makes the
detection time a number an operator can read off the settings (defaults 5 x 20 ms = 100 ms).

Rules:

- a peer is watched only after its first heartbeat (it is *armed*): a speaker that has not started
  heartbeating yet, or that never owned anything we back up, is never declared dead by us;
- silence for ``misses x interval`` declares it dead; the receiver drains its socket before asking
  for verdicts, so one late packet (or our own pause) never declares a death;
- silence is only what we *observed*: the caller says up to when its receive path was up to date
  (:meth:`FailureDetector.observed`, the moment it last drained the socket) and verdicts never
  look past that. A judge that was itself stalled (a data plane compiling, the GIL held for a
  second) has not seen the heartbeats that piled up meanwhile; its clock moved, the peers did
  not fall silent;
- datagrams the kernel dropped (a full receive buffer) are not silence either
  (:meth:`FailureDetector.blinded`);
- ``GOODBYE`` declares it dead at once (graceful stop: hand over in milliseconds);
- ``STOP`` disarms (the peer stopped sending to us on purpose);
- a dead peer lives again when heard at a higher incarnation (restart, or a refutation), or, at the
  same incarnation, after ``misses`` further heartbeats (a healed link), so a flapping link does not
  flap ownership at heartbeat rate.

Pure and clock-injected: every method takes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Cause(enum.Enum):
    SILENCE = "silence"
    GOODBYE = "goodbye"
    OBITUARY = "obituary"


@dataclass(frozen=True, slots=True)
class Death:
    """``peer`` at ``incarnation`` was declared dead at ``at`` (last heard at ``last_heard``)."""

    peer: str
    incarnation: int
    cause: Cause
    at: float
    last_heard: float


@dataclass(frozen=True, slots=True)
class Revival:
    """``peer`` is alive again at ``incarnation``."""

    peer: str
    incarnation: int


class _Peer:
    __slots__ = ("armed", "dead", "incarnation", "last_heard", "last_sequence", "streak")

    def __init__(self, incarnation: int, now: float) -> None:
        self.incarnation = incarnation
        self.last_heard = now
        self.last_sequence = -1
        self.armed = True
        self.dead = False
        self.streak = 0


class FailureDetector:
    """Per-peer heartbeat deadlines; verdicts come out of :meth:`poll`."""

    def __init__(self, *, interval: float = 0.02, misses: int = 5) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be > 0, got {interval}")
        if misses < 2:
            raise ValueError(f"misses must be >= 2 so one late packet is not a death, got {misses}")
        self.interval = interval
        self.misses = misses
        self.timeout = interval * misses
        self._peers: dict[str, _Peer] = {}
        self._horizon: float | None = None

    # --- input -----------------------------------------------------------------------------------

    def heard(self, peer: str, *, incarnation: int, sequence: int, now: float) -> Revival | None:
        """A heartbeat (or ALIVE) from ``peer``; returns a Revival when a dead peer came back."""
        state = self._peers.get(peer)
        if state is None:
            self._peers[peer] = state = _Peer(incarnation, now)
            state.last_sequence = sequence
            return None
        if incarnation < state.incarnation:
            return None  # a previous life's datagram, late
        if incarnation > state.incarnation:
            state.incarnation = incarnation
            state.last_sequence = sequence
            state.last_heard = now
            state.armed = True
            state.streak = 0
            if state.dead:
                state.dead = False
                return Revival(peer, incarnation)
            return None
        if sequence <= state.last_sequence:
            return None  # duplicate or reordered: says nothing about now
        state.last_sequence = sequence
        state.last_heard = now
        state.armed = True
        if state.dead:
            state.streak += 1
            if state.streak >= self.misses:
                state.dead = False
                state.streak = 0
                return Revival(peer, incarnation)
        return None

    def goodbye(self, peer: str, *, incarnation: int, now: float) -> Death | None:
        """``peer`` stops gracefully: declare it dead now (None if already dead or stale)."""
        state = self._peers.get(peer)
        if state is None:
            self._peers[peer] = state = _Peer(incarnation, now)
        elif incarnation < state.incarnation:
            return None
        state.incarnation = incarnation
        return self._declare(peer, state, Cause.GOODBYE, now, stick=True)

    def obituary(self, peer: str, *, incarnation: int, now: float) -> Death | None:
        """Another speaker declared ``peer`` dead at ``incarnation``; we agree unless we heard a
        later life."""
        state = self._peers.get(peer)
        if state is None:
            self._peers[peer] = state = _Peer(incarnation, now)
        elif incarnation < state.incarnation:
            return None
        state.incarnation = incarnation
        return self._declare(peer, state, Cause.OBITUARY, now, stick=True)

    def stop(self, peer: str) -> None:
        """``peer`` stopped heartbeating to us on purpose: stop expecting it (not a death)."""
        state = self._peers.get(peer)
        if state is not None and not state.dead:
            state.armed = False

    def revive(self, peer: str, *, incarnation: int) -> Revival | None:
        """A newer life of ``peer`` is known from elsewhere (its Lease): alive again, but not
        watched until its first heartbeat arrives."""
        state = self._peers.get(peer)
        if state is None or not state.dead or incarnation <= state.incarnation:
            return None
        state.incarnation = incarnation
        state.dead = False
        state.armed = False
        state.streak = 0
        state.last_sequence = -1
        return Revival(peer, incarnation)

    def forget(self, peer: str) -> None:
        """``peer`` no longer exists (its Lease is gone)."""
        self._peers.pop(peer, None)

    def observed(self, at: float) -> None:
        """Every datagram that reached this node before ``at`` has been fed in: silence is known
        up to ``at`` and no further (call it with the time a socket drain *started*)."""
        self._horizon = at if self._horizon is None else max(self._horizon, at)

    def blinded(self, at: float) -> None:
        """Datagrams were lost to us before ``at`` (our socket's receive buffer overflowed while
        we were starved): the freshest heartbeats of every peer may be among them, so no armed
        peer counts as silent before ``at``. A peer that really died meanwhile is declared
        dead one timeout later; a starved judge never turns its own overload into deaths."""
        for state in self._peers.values():
            if state.armed and not state.dead and state.last_heard < at:
                state.last_heard = at

    # --- verdicts --------------------------------------------------------------------------------

    def poll(self, now: float) -> list[Death]:
        """Deaths declared since the last poll: silence checked against ``now``, or against the
        last :meth:`observed` time when that is earlier (we cannot judge what we did not see)."""
        horizon = now if self._horizon is None else min(now, self._horizon)
        out: list[Death] = []
        for peer, state in self._peers.items():
            if state.armed and not state.dead and horizon - state.last_heard > self.timeout:
                death = self._declare(peer, state, Cause.SILENCE, horizon, stick=False)
                if death is not None:
                    out.append(death)
        return out

    def next_deadline(self) -> float | None:
        """When the earliest armed, live peer would be declared dead if not heard from."""
        deadlines = [
            s.last_heard + self.timeout for s in self._peers.values() if s.armed and not s.dead
        ]
        return min(deadlines) if deadlines else None

    def is_dead(self, peer: str) -> bool:
        state = self._peers.get(peer)
        return state is not None and state.dead

    def dead(self) -> frozenset[str]:
        return frozenset(p for p, s in self._peers.items() if s.dead)

    def armed(self) -> frozenset[str]:
        return frozenset(p for p, s in self._peers.items() if s.armed and not s.dead)

    def incarnation(self, peer: str) -> int | None:
        state = self._peers.get(peer)
        return state.incarnation if state is not None else None

    def _declare(
        self, peer: str, state: _Peer, cause: Cause, now: float, *, stick: bool
    ) -> Death | None:
        if state.dead:
            return None
        state.dead = True
        state.armed = False
        # After a goodbye or an obituary only a new life (higher incarnation) revives: the same
        # life's heartbeats still in flight must not undo the verdict. After silence, a healed
        # link may revive after a streak of heartbeats.
        state.streak = -(2**62) if stick else 0
        return Death(peer, state.incarnation, cause, now, state.last_heard)
