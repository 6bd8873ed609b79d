"""A simulated cluster of SpeakerCores: messages passed by hand, one clock for all.

Checks the properties the design promises without any timing: every node computes the same
owner, a dead owner's VIPs move to their backups, a graceful stop hands over, a healed node gets
its VIPs back by rank, and after convergence no VIP is answered by two reachable nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from openelb.speaker.core import Actions, SpeakerCore
from openelb.speaker.membership import EVERYONE
from openelb.speaker.ownership import compute_placement
from openelb.speaker.wire import Kind, Message

INTERVAL = 0.02
NODES = ["node-a", "node-b", "node-c", "node-d", "node-e"]
VIPS = [f"10.0.0.{i}" for i in range(1, 41)] + ["fd00::10", "fd00::11"]


@dataclass
class Sim:
    cores: dict[str, SpeakerCore]
    now: float = 0.0
    cut: set[str] = field(default_factory=set)
    """Nodes whose link is cut: they neither send nor receive."""
    killed: set[str] = field(default_factory=set)
    """Nodes whose speaker is gone (SIGKILL): no messages, no actions."""
    inflight: list[tuple[str, Message]] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=dict)
    announced: list[tuple[float, str, str]] = field(default_factory=list)

    def apply(self, node: str, actions: Actions) -> None:
        for out in actions.send:
            dests = [n for n in self.cores if n != node] if out.to == EVERYONE else out.to
            for dest in dests:
                self.inflight.append((dest, out.message))
        for ip in actions.announce:
            self.announced.append((self.now, node, ip))

    def up(self, node: str) -> bool:
        return node not in self.cut and node not in self.killed

    def step(self) -> None:
        self.now = round(self.now + INTERVAL / 4, 6)
        # Heartbeats from the pacers, once per interval.
        if round(self.now / INTERVAL, 6).is_integer():
            for name, core in self.cores.items():
                if not self.up(name):
                    continue
                self.seq[name] = self.seq.get(name, 0) + 1
                beat = Message(Kind.HEARTBEAT, name, core.incarnation, self.seq[name])
                for dest in core.targets():
                    self.inflight.append((dest, beat))
        batch, self.inflight = self.inflight, []
        for dest, msg in batch:
            if self.up(dest) and self.up(msg.sender) and dest in self.cores:
                self.apply(dest, self.cores[dest].receive(msg, now=self.now))
        for name, core in self.cores.items():
            if name not in self.killed:
                self.apply(name, core.poll(now=self.now))

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / (INTERVAL / 4))):
            self.step()

    def answering(self, ip: str) -> list[str]:
        """Reachable nodes answering for ``ip`` (a cut node's answers never reach the LAN)."""
        return [n for n, c in self.cores.items() if self.up(n) and ip in c.answering()]


def make_sim(nodes: list[str] = NODES, vips: list[str] = VIPS) -> Sim:
    cores = {n: SpeakerCore(node=n, incarnation=1, interval=INTERVAL) for n in nodes}
    sim = Sim(cores)
    for name, core in cores.items():
        sim.apply(name, core.set_nodes(dict.fromkeys(nodes, True), now=0.0))
        sim.apply(name, core.set_members(dict.fromkeys(nodes, 1), now=0.0))
        sim.apply(name, core.set_vips(dict.fromkeys(vips), now=0.0))
    sim.run(0.5)
    return sim


def assert_converged(sim: Sim, live: list[str]) -> None:
    for ip in VIPS:
        expected = compute_placement(ip, live=live).owner
        assert sim.answering(ip) == [expected], ip
        for name in live:
            assert sim.cores[name].table.owner(ip) == expected


def test_every_node_computes_the_same_owner_and_exactly_it_answers() -> None:
    sim = make_sim()
    assert_converged(sim, NODES)
    # Each VIP was announced at once by its owner.
    first = {ip: node for _, node, ip in reversed(sim.announced)}
    assert all(first[ip] == compute_placement(ip, live=NODES).owner for ip in VIPS)


def test_heartbeat_fanout_is_bounded() -> None:
    sim = make_sim(nodes=[f"n{i:02d}" for i in range(12)])
    for core in sim.cores.values():
        backups = {core.table.backup(ip) for ip in core.answering()} - {None}
        assert len(core.targets()) <= len(backups) + 3


@pytest.mark.parametrize("how", ["link-cut", "sigkill"])
def test_backup_takes_over_when_owner_heartbeats_stop(how: str) -> None:
    sim = make_sim()
    victim = compute_placement(VIPS[0], live=NODES).owner
    backup = compute_placement(VIPS[0], live=NODES).backup
    assert victim is not None and backup is not None
    (sim.cut if how == "link-cut" else sim.killed).add(victim)
    sim.run(0.5)
    survivors = [n for n in NODES if n != victim]
    assert sim.answering(VIPS[0]) == [backup]
    assert_converged(sim, survivors)
    gained = [g for g in _gains(sim, backup, VIPS[0])]
    assert gained, "the backup announced the VIP"


def _gains(sim: Sim, node: str, ip: str) -> list[float]:
    return [t for t, n, i in sim.announced if n == node and i == ip]


def test_healed_node_settles_back_to_rank_and_stays_settled() -> None:
    sim = make_sim()
    victim = compute_placement(VIPS[0], live=NODES).owner
    assert victim is not None
    sim.cut.add(victim)
    sim.run(0.5)
    sim.cut.clear()
    healed = sim.now
    # Right after the heal the returning node and the backup may both answer (each was right in
    # its own partition); it must settle within a few heartbeat rounds (simulated time) and stay
    # settled.
    last_double = healed
    for _ in range(int(1.5 / (INTERVAL / 4))):
        sim.step()
        if any(len(sim.answering(ip)) > 1 for ip in VIPS):
            last_double = sim.now
    assert last_double - healed <= 0.25
    assert_converged(sim, NODES)
    # The returning owner announced its VIPs again after the heal (the clients had moved away).
    assert any(t > healed and n == victim and i == VIPS[0] for t, n, i in sim.announced)
    assert sim.cores[victim].incarnation > 1  # it refuted its obituary


def test_restarted_speaker_with_new_incarnation_rejoins() -> None:
    sim = make_sim()
    victim = compute_placement(VIPS[0], live=NODES).owner
    assert victim is not None
    sim.killed.add(victim)
    sim.run(0.5)
    fresh = SpeakerCore(node=victim, incarnation=2, interval=INTERVAL)
    sim.cores[victim] = fresh
    sim.killed.clear()
    sim.apply(victim, fresh.set_nodes(dict.fromkeys(NODES, True), now=sim.now))
    members = dict.fromkeys(NODES, 1) | {victim: 2}
    for name, core in sim.cores.items():
        sim.apply(name, core.set_members(members, now=sim.now))
    sim.apply(victim, fresh.set_vips(dict.fromkeys(VIPS), now=sim.now))
    sim.run(1.0)
    assert_converged(sim, NODES)


def test_graceful_stop_hands_over_immediately() -> None:
    sim = make_sim()
    victim = compute_placement(VIPS[0], live=NODES).owner
    backup = compute_placement(VIPS[0], live=NODES).backup
    assert victim is not None and backup is not None
    sim.apply(victim, sim.cores[victim].stop())
    assert sim.cores[victim].answering() == frozenset()
    sim.step()  # one quarter interval: the GOODBYE is delivered
    assert sim.answering(VIPS[0]) == [backup]
    sim.killed.add(victim)
    sim.run(0.3)
    assert_converged(sim, [n for n in NODES if n != victim])


def test_not_ready_node_loses_its_vips_and_the_new_owner_waits_for_the_handover() -> None:
    sim = make_sim()
    victim = compute_placement(VIPS[0], live=NODES).owner
    assert victim is not None
    status = dict.fromkeys(NODES, True) | {victim: False}
    for name, core in sim.cores.items():
        sim.apply(name, core.set_nodes(status, now=sim.now))
    assert VIPS[0] not in sim.cores[victim].answering()  # withdrawn at once
    for _ in range(40):
        sim.step()
        assert len(sim.answering(VIPS[0])) <= 1
    assert_converged(sim, [n for n in NODES if n != victim])


def test_etp_local_candidates_follow_the_endpoints() -> None:
    sim = make_sim()
    ip = VIPS[3]
    for name, core in sim.cores.items():
        sim.apply(name, core.set_vips(dict.fromkeys(VIPS) | {ip: ["node-c"]}, now=sim.now))
    sim.run(0.2)
    assert sim.answering(ip) == ["node-c"]
    for name, core in sim.cores.items():
        sim.apply(name, core.set_vips(dict.fromkeys(VIPS) | {ip: []}, now=sim.now))
    sim.run(0.2)
    assert sim.answering(ip) == []


def test_conflict_from_a_higher_ranked_speaker_makes_us_yield() -> None:
    core = SpeakerCore(node="node-b", incarnation=1, interval=INTERVAL)
    core.set_nodes({"node-a": True, "node-b": True}, now=0.0)
    core.set_members({"node-b": 1}, now=0.0)
    ip = next(v for v in VIPS if compute_placement(v, live=["node-a", "node-b"]).owner == "node-a")
    core.set_vips({ip: None}, now=0.0)
    assert ip in core.answering()  # node-a has no Lease yet in our view
    actions = core.conflict(ip, claimer="node-a", now=0.1)
    assert ip not in core.answering() and actions.program == frozenset()
    assert actions.send[0].message.kind is Kind.OBITUARY
    # A lower-ranked or foreign claimer: we keep it and re-announce.
    core2 = SpeakerCore(node="node-a", incarnation=1, interval=INTERVAL)
    core2.set_nodes({"node-a": True}, now=0.0)
    core2.set_vips({ip: None}, now=0.0)
    assert core2.conflict(ip, claimer=None, now=0.1).announce == [ip]
    assert ip in core2.answering()


def test_claims_are_answered_at_most_once_per_defend_interval() -> None:
    # Two speakers with different views both see the other's GARP as a foreign claim: each
    # claim answered at once made them trade GARPs every few milliseconds.
    core = SpeakerCore(node="node-a", incarnation=1, interval=INTERVAL, defend_interval=1.0)
    core.set_nodes({"node-a": True}, now=0.0)
    ip = VIPS[0]
    core.set_vips({ip: None}, now=0.0)
    announced = [bool(core.conflict(ip, claimer=None, now=t / 100).announce) for t in range(300)]
    assert announced.count(True) == 3  # at 0, 1 and 2 s
    assert ip in core.answering()


def test_fresh_vips_are_flagged_for_conflict_probing_only_after_sync() -> None:
    core = SpeakerCore(node="a", incarnation=1, interval=INTERVAL)
    core.set_nodes({"a": True}, now=0.0)
    first = core.set_vips({"10.0.0.1": None}, now=0.0)
    assert [g.fresh for g in first.gained] == [False]
    later = core.set_vips({"10.0.0.1": None, "10.0.0.2": None}, now=1.0)
    assert [(g.ip, g.fresh) for g in later.gained] == [("10.0.0.2", True)]


def _two_cores() -> tuple[SpeakerCore, SpeakerCore, str]:
    """node-a and node-b, and a VIP node-a ranks first for."""
    ip = next(v for v in VIPS if compute_placement(v, live=["node-a", "node-b"]).owner == "node-a")
    cores = []
    for name in ("node-a", "node-b"):
        core = SpeakerCore(node=name, incarnation=1, interval=INTERVAL)
        core.set_nodes({"node-a": True, "node-b": True}, now=0.0)
        cores.append(core)
    return cores[0], cores[1], ip


def test_a_transient_owner_that_gives_the_vip_up_makes_the_owner_announce_again() -> None:
    a, b, ip = _two_cores()
    a.set_members({"node-a": 1, "node-b": 1}, now=0.0)
    a.set_vips({ip: None}, now=0.0)
    assert ip in a.answering()
    # node-b does not know node-a yet (its Lease lags): it answers and announces meanwhile.
    b.set_members({"node-b": 1}, now=0.0)
    b.set_vips({ip: None}, now=0.0)
    assert ip in b.answering()
    a.poll(now=3.0)  # node-a's announcement burst is over
    actions = b.set_members({"node-a": 1, "node-b": 1}, now=3.0)
    assert ip not in b.answering() and ip in actions.lost
    (released,) = [o for o in actions.send if o.message.kind is Kind.RELEASED]
    assert released.to == ("node-a",) and released.message.subject == ip
    # node-b's last GARP may have come after node-a's: node-a announces again at once.
    assert a.receive(released.message, now=3.01).announce == [ip]


def test_a_handover_from_a_live_owner_starts_as_soon_as_it_released() -> None:
    a, b, ip = _two_cores()
    for core in (a, b):
        core.set_members({"node-a": 1, "node-b": 1}, now=0.0)
        core.set_nodes({"node-a": False, "node-b": True}, now=0.0)
        core.set_vips({ip: None}, now=0.0)
    assert ip in b.answering()
    a.set_nodes({"node-a": True, "node-b": True}, now=1.0)
    assert a.poll(now=1.0).gained == []  # waits for node-b to withdraw
    actions = b.set_nodes({"node-a": True, "node-b": True}, now=1.0)
    (released,) = [o for o in actions.send if o.message.kind is Kind.RELEASED]
    a.receive(released.message, now=1.001)
    assert a.handover_delay > 0.002
    assert [g.ip for g in a.poll(now=1.002).gained] == [ip]
