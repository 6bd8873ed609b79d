"""The speaker's decisions, with no I/O: facts and messages in, actions out.

``openelb.speaker.node`` is the thin shell that feeds this core from watches, the heartbeat socket
and the clock, and carries its :class:`Actions` out to the data plane and the network. Keeping
every decision here means a whole cluster of speakers can be simulated in a test (messages passed
by hand, clocks stepped by hand) and checked for the properties that matter: every node computes
the same owner, a dead owner's VIPs move to their backups, never two owners after convergence.

Liveness folded into ownership: a node may hold VIPs when its Node is Ready and not excluded from
load balancers (``node_ok``), it holds a speaker Lease, and no heartbeat verdict says it is dead.

Order of effects, which is what keeps a handover clean:

- on gaining a VIP the shell programs the data plane *first* (``program``) and announces after
  (``announce``), so requests are answered from the instant the announcement moves the clients;
- on losing a VIP to a live node (rank restored, eligibility changed) we withdraw at once, while
  the new owner waits ``handover_delay`` before announcing, so the two never answer together;
- on a takeover from a dead owner there is nothing to wait for: announce at once;
- on a graceful stop we withdraw everything, then say GOODBYE, so the backups take over within a
  round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from openelb import metrics
from openelb.speaker.announcing import AnnounceScheduler
from openelb.speaker.detector import Death, FailureDetector
from openelb.speaker.membership import Membership, Outgoing, Reaction
from openelb.speaker.ownership import OwnershipChange, OwnershipTable, rank_key
from openelb.speaker.wire import Kind, Message

_PROGRESS_EVERY = 512
"""VIPs handled between two progress calls in a long pass."""


def _nothing() -> None:
    pass


DEFEND_INTERVAL = 1.0
"""Seconds between two re-announcements of one VIP in answer to conflicting claims. RFC 5227
says 10 s for a host; 1 s lets the rightful owner win the clients back fast after a partition
heals (its announce burst goes on regardless) while capping a GARP exchange at one a second."""


@dataclass(frozen=True, slots=True)
class Gain:
    """We started answering ``ip``; ``failover_from`` = when the dead owner was last heard."""

    ip: str
    failover_from: float | None = None
    fresh: bool = False
    """A VIP newly assigned after the initial sync (not a takeover, not a restart): the shell
    probes it for an address conflict (RFC 5227) before announcing."""


@dataclass(slots=True)
class Actions:
    """What the shell must do, in this order: program, announce, send, retarget."""

    program: frozenset[str] | None = None
    """The full set of VIPs to answer for now (None: unchanged)."""
    announce: list[str] = field(default_factory=list)
    send: list[Outgoing] = field(default_factory=list)
    targets: frozenset[str] | None = None
    """Peers to heartbeat to from now on (None: unchanged)."""
    gained: list[Gain] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    deaths: list[Death] = field(default_factory=list)

    def merge(self, other: Actions) -> Actions:
        if other.program is not None:
            self.program = other.program
        if other.targets is not None:
            self.targets = other.targets
        if other.announce:
            # A set for the membership test: merging thousands of announcements (a takeover,
            # a burst of new Services) was quadratic through ``ip not in list``.
            seen = set(self.announce)
            for ip in other.announce:
                if ip not in seen:
                    seen.add(ip)
                    self.announce.append(ip)
        self.send += other.send
        self.gained += other.gained
        self.lost += other.lost
        self.deaths += other.deaths
        return self


class SpeakerCore:
    """One node's speaker logic (see the module docstring)."""

    def __init__(
        self,
        *,
        node: str,
        incarnation: int,
        interval: float = 0.02,
        misses: int = 5,
        ring_fanout: int = 3,
        handover_delay: float | None = None,
        scheduler: AnnounceScheduler | None = None,
        defend_interval: float = DEFEND_INTERVAL,
    ) -> None:
        self.node = node
        self.detector = FailureDetector(interval=interval, misses=misses)
        self.membership = Membership(
            me=node, incarnation=incarnation, detector=self.detector, ring_fanout=ring_fanout
        )
        self.table = OwnershipTable()
        self.scheduler = scheduler or AnnounceScheduler()
        self.handover_delay = 3 * interval if handover_delay is None else handover_delay
        self.defend_interval = defend_interval
        self._defended: dict[str, float] = {}  # ip -> when we last re-announced it on a conflict
        self._node_ok: dict[str, bool] = {}
        self._answering: set[str] = set()
        # ip -> time from which we may answer it (a handover from a live owner)
        self._pending: dict[str, float] = {}
        self._targets: frozenset[str] = frozenset()
        # Backups of the VIPs we answer (or are about to): the heartbeat targets' core. Kept
        # until something moves: re-deriving it for 1,000 VIPs on every watch change cost ~1 ms.
        self._backups: frozenset[str] | None = None
        self._stopping = False
        self.progress: Callable[[], None] = _nothing
        """Called every few hundred VIPs inside long passes: the shell keeps its heartbeats
        flowing while a slow (starved, not stuck) pass makes progress."""
        self._last_heard: dict[str, float] = {}
        self._synced = False
        self._fresh: set[str] = set()

    # --- queries ---------------------------------------------------------------------------------

    @property
    def incarnation(self) -> int:
        return self.membership.incarnation

    def answering(self) -> frozenset[str]:
        """VIPs the data plane should answer for right now."""
        return frozenset(self._answering)

    def targets(self) -> frozenset[str]:
        return self._targets

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`poll` has something to do."""
        times = [
            t
            for t in (self.detector.next_deadline(), self.scheduler.next_deadline())
            if t is not None
        ]
        times += self._pending.values()
        return min(times) if times else None

    # --- facts from the cluster ------------------------------------------------------------------

    def set_nodes(self, node_ok: Mapping[str, bool], *, now: float) -> Actions:
        """Every Node: Ready and not excluded from load balancers (True) or not."""
        self._node_ok = dict(node_ok)
        return self._refresh_liveness(now)

    def set_members(self, members: Mapping[str, int], *, now: float) -> Actions:
        """Every speaker Lease: node -> incarnation."""
        reaction = self.membership.set_members(members)
        actions = Actions(send=list(reaction.send))
        return actions.merge(self._refresh_liveness(now))

    def set_vips(self, vips: Mapping[str, Iterable[str] | None], *, now: float) -> Actions:
        """Every VIP to serve, with the nodes allowed to hold it (None = any live node)."""
        gone = [ip for ip in self.table.vips() if ip not in vips]
        return self.update_vips(vips, removed=gone, now=now)

    def update_vips(
        self,
        changed: Mapping[str, Iterable[str] | None],
        *,
        removed: Iterable[str] = (),
        now: float,
    ) -> Actions:
        """Only what changed since the last call: new VIPs or new candidates, and VIPs gone.

        The first call (the initial sync) must carry every VIP; VIPs that appear in later calls
        are newly assigned (``Gain.fresh``: probed before they are announced).
        """
        changes: list[OwnershipChange] = []
        if self._synced:
            self._fresh = {ip for ip in changed if ip not in self.table}
        for ip in removed:
            changes += self.table.remove_vip(ip)
        for i, (ip, candidates) in enumerate(changed.items()):
            changes += self.table.set_vip(ip, candidates=candidates)
            if i % _PROGRESS_EVERY == _PROGRESS_EVERY - 1:
                self.progress()
        actions = self._apply(changes, now, deaths={})
        self._synced = True
        self._fresh = set()
        return actions

    # --- messages and time -----------------------------------------------------------------------

    def receive(self, msg: Message, *, now: float) -> Actions:
        if msg.kind is Kind.HEARTBEAT:
            self._last_heard[msg.sender] = now
        if msg.kind is Kind.RELEASED:
            return self._released(msg.subject, sender=msg.sender, now=now)
        actions = self._react(self.membership.receive(msg, now=now), now)
        if msg.kind is Kind.OBITUARY and msg.subject == self.node:
            # We refuted: heartbeats queued at the old incarnation are now stale.
            actions.targets = self._targets
        return actions

    def poll(self, *, now: float, observed: float | None = None) -> Actions:
        """Verdicts due, handovers whose delay elapsed, announcements due.

        ``observed``: when the caller last had every received datagram fed in (see
        :meth:`FailureDetector.observed`); silence verdicts never look past it.
        """
        if observed is not None:
            self.detector.observed(observed)
        actions = self._react(self.membership.poll(now=now), now)
        ready = [ip for ip, at in self._pending.items() if at <= now]
        if ready:
            for ip in ready:
                del self._pending[ip]
                self._backups = None
                if self.table.owner(ip) == self.node and not self._stopping:
                    self._answering.add(ip)
                    self.scheduler.gain(ip, now=now)
                    actions.gained.append(Gain(ip))
            actions.program = frozenset(self._answering)
        due = [ip for ip in self.scheduler.due(now) if ip in self._answering]
        if due:
            actions.merge(Actions(announce=due))
        return actions

    def conflict(self, ip: str, *, claimer: str | None, now: float) -> Actions:
        """The data plane saw another host claim ``ip`` (``claimer``: the speaker owning that MAC,
        None for a foreign host).

        A speaker that ranks ahead of us for ``ip`` is alive whatever our verdicts say: we yield
        the VIP and tell it it was declared dead, so it refutes and every node revives it. If we
        rank ahead, we re-announce at once so the claimer sees our claim and yields.
        """
        actions = Actions()
        if ip not in self._answering:
            return actions
        if (
            claimer is not None
            and claimer != self.node
            and (rank_key(claimer, ip) < rank_key(self.node, ip))
        ):
            incarnation = self.detector.incarnation(claimer) or 0
            obit = self.membership.own(
                Kind.OBITUARY, subject=claimer, subject_incarnation=incarnation
            )
            actions.send.append(Outgoing(obit, (claimer,)))
            actions.send.append(self._released_to(ip, claimer))
            self._answering.discard(ip)
            self._backups = None
            self.scheduler.lose(ip)
            actions.program = frozenset(self._answering)
            actions.lost.append(ip)
            return actions
        # Defend (RFC 5227 2.4 (b)): re-announce, but at most once per defend interval. Two
        # speakers whose views disagree (one missed the other's Lease) each see the other's GARP
        # as a foreign claim; answering every claim at once made them trade GARPs every few ms.
        last = self._defended.get(ip)
        if last is not None and now - last < self.defend_interval:
            return actions
        if len(self._defended) > 2 * len(self._answering) + 16:
            self._defended = {v: t for v, t in self._defended.items() if v in self._answering}
        self._defended[ip] = now
        actions.announce.append(ip)
        return actions

    def stop(self) -> Actions:
        """Graceful stop: withdraw everything, then GOODBYE to every member."""
        self._stopping = True
        for ip in self._answering:
            self.scheduler.lose(ip)
        lost = sorted(self._answering)
        self._answering.clear()
        self._pending.clear()
        self._backups = None
        return Actions(
            program=frozenset(),
            lost=lost,
            send=[self.membership.goodbye()],
            targets=frozenset(),
        )

    # --- internals -------------------------------------------------------------------------------

    def _react(self, reaction: Reaction, now: float) -> Actions:
        actions = Actions(send=list(reaction.send))
        if reaction.changed:
            actions.deaths += reaction.deaths
            actions.merge(self._refresh_liveness(now, deaths=reaction.deaths))
        refuted = any(
            out.message.kind is Kind.ALIVE and out.message.sender == self.node
            for out in reaction.send
        )
        if reaction.revivals or refuted:
            # A partition healed: whoever served our VIPs on the other side announced them, and
            # we never stopped owning them in our view, so nothing else would move the clients
            # back. Announce everything we own again (rare, and bounded by what we own).
            for ip in self._answering:
                self.scheduler.gain(ip, now=now)
            actions.merge(Actions(announce=sorted(self._answering)))
        return actions

    def _refresh_liveness(self, now: float, *, deaths: Iterable[Death] = ()) -> Actions:
        started = time.perf_counter()
        cpu = time.thread_time()
        alive = self.membership.alive()
        changes: list[OwnershipChange] = []
        live_before = set(self.table.live_nodes())
        known = set(self._node_ok) | live_before | set(alive)
        for node in sorted(known):
            live = node in alive and self._node_ok.get(node, False)
            changes += self.table.set_node_live(node, live)
        dead = {d.peer: d for d in deaths}
        actions = self._apply(changes, now, deaths=dead)
        if set(self.table.live_nodes()) != live_before:
            # Only real membership changes: this runs on every watch change too.
            metrics.ownership_recomputed(
                time.perf_counter() - started, cpu_seconds=time.thread_time() - cpu
            )
        return actions

    def _apply(
        self, changes: list[OwnershipChange], now: float, *, deaths: Mapping[str, Death]
    ) -> Actions:
        actions = Actions()
        programmed = False
        if changes:
            self._backups = None
        for i, change in enumerate(changes):
            if i % _PROGRESS_EVERY == _PROGRESS_EVERY - 1:
                self.progress()
            ip, before, after = change.ip, change.before.owner, change.after.owner
            if after == self.node and before != self.node and not self._stopping:
                prior = deaths.get(before) if before is not None else None
                handover = (
                    before is not None
                    and prior is None
                    and before in self.membership.alive()
                    and self._node_ok.get(before, False)
                )
                if handover:
                    # The previous owner is alive and withdraws when it computes the same
                    # change: give it that long before we answer.
                    self._pending[ip] = now + self.handover_delay
                    continue
                self._answering.add(ip)
                self.scheduler.gain(ip, now=now)
                actions.announce.append(ip)
                since = prior.last_heard if prior is not None else None
                if since is None and before is not None and prior is None:
                    since = self._dead_since(before)
                actions.gained.append(Gain(ip, since, fresh=ip in self._fresh and before is None))
                programmed = True
            elif before == self.node and after != self.node:
                self._pending.pop(ip, None)
                if ip in self._answering:
                    self._answering.discard(ip)
                    self.scheduler.lose(ip)
                    actions.lost.append(ip)
                    programmed = True
                    if after is not None:
                        # Sent after the withdrawal (the shell programs before it sends).
                        actions.send.append(self._released_to(ip, after))
            elif after != self.node:
                self._pending.pop(ip, None)
        if programmed:
            actions.program = frozenset(self._answering)
        if not self._stopping:
            if self._backups is None:
                self._backups = frozenset(
                    b
                    for ip in self._answering | set(self._pending)
                    if (b := self.table.backup(ip)) is not None
                )
            targets = self.membership.heartbeat_targets(self._backups)
            if targets != self._targets:
                dropped = self._targets - targets
                stop = self.membership.stop_to(dropped)
                if stop is not None:
                    actions.send.append(stop)
                self._targets = targets
                actions.targets = targets
        return actions

    def _released_to(self, ip: str, node: str) -> Outgoing:
        return Outgoing(self.membership.own(Kind.RELEASED, subject=ip), (node,))

    def _released(self, ip: str, *, sender: str, now: float) -> Actions:
        """``sender`` stopped answering for ``ip``: if it is ours, the clients must hear us last."""
        actions = Actions()
        if sender == self.node or self._stopping or self.table.owner(ip) != self.node:
            return actions
        if ip in self._pending:
            # A handover from a live owner: it has withdrawn, no need to wait out the delay.
            self._pending[ip] = min(self._pending[ip], now)
        elif ip in self._answering:
            # It answered (a partition, a stall, a yield) and may have announced after us.
            self.scheduler.gain(ip, now=now)
            actions.announce.append(ip)
        return actions

    def _dead_since(self, node: str) -> float | None:
        if self.detector.is_dead(node):
            return self._last_heard.get(node)
        return None
