"""VIP-mode failover: the client's traffic gap when the master's link is cut, three ways.

Run: ``.venv/bin/python benchmarks/failover_vip.py [--runs 20] [--nodes 2]`` (root; namespaces).

In one testbed (a client and N nodes on a switch), each variant runs keepalived on every node
(supervised the same way) and repeats: wait until one node holds the VIP, stream UDP to it from
the client every 1 ms (:mod:`openelb.lab.traffic`; servers and client in processes of their
own, so nothing here delays them), cut the master's cable, measure the largest
gap in replies until another node answers, plug the cable back and let the VIP settle.

- ``keepalived-defaults``: what a user writes first: VRRPv2 (keepalived's default), advert 1 s,
  multicast;
- ``keepalived-tuned``: the same with ``vrrp_version 3`` and ``advert_int 0.1`` (its limit as
  people use it);
- ``openelb``: the config openelb renders with its default settings (VRRPv3, advert 0.1 s,
  unicast peers, ranked priorities), run by openelb's supervisor;
- ``speaker-link`` and ``speaker-graceful``: the whole system (:class:`~openelb.lab.cluster.
  LabCluster`: embedded apiserver, the real manager, real ``openelb speaker`` processes that run
  keepalived for a ``protocol: vip`` Eip); the master's cable is cut, or its speaker is stopped
  with SIGTERM (a rolling update: keepalived leaves with a priority-0 advert) and restarted.

The gap is the client's outage around the handover: the longest silence between replies from
the failure until the first reply from another node (so a scheduling hiccup after the handover,
or a preempting return, is not counted as the failover).

Targets: openelb's rendered config and the whole system with a cut cable p50 < 400 ms (VRRPv3,
sub-second adverts: level with tuned keepalived), a graceful stop p50 < 20 ms (DESIGN.md). The
keepalived variants are the reference (another project's code, shown, never judged). Prints a
table (p50, p99, min, max per variant; ratios against the keepalived runs of the same testbed)
and writes the shared result shape (``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from openelb.config import KeepalivedSettings
from openelb.keepalived.announcer import KeepalivedAnnouncer
from openelb.keepalived.model import DesiredState, DesiredVip, NodeAddresses
from openelb.keepalived.nicaddresses import addresses_on
from openelb.keepalived.supervisor import KeepalivedSupervisor
from openelb.kube.resources import EIPS
from openelb.lab.benchresult import (
    Row,
    Target,
    add_results_argument,
    publish,
    say,
)
from openelb.lab.cluster import LabCluster
from openelb.lab.gaps import StreamResult
from openelb.lab.netns import Host, Process, Testbed
from openelb.lab.traffic import DEFAULT_PORT

TARGETS_MS = {
    "openelb": (Target(400.0, "p50"),),
    "speaker-link": (Target(400.0, "p50"),),
    "speaker-graceful": (Target(20.0, "p50"),),
}
"""openelb's defaults: ~0.3 s on a hard failure (VRRPv3, sub-second adverts); graceful < 20 ms."""
REFERENCES = ("keepalived-defaults", "keepalived-tuned")
ROUTER_ID = 51


@dataclass
class Variant:
    name: str
    gaps: list[float] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    failed: int = 0


def _baseline_config(node: str, priority: int, vip: str, *, tuned: bool) -> str:
    glob = f'    router_id "{node}"\n' + ("    vrrp_version 3\n" if tuned else "")
    return (
        f"global_defs {{\n{glob}}}\n"
        "vrrp_instance VI_1 {\n"
        "    state BACKUP\n"
        "    interface eth0\n"
        f"    virtual_router_id {ROUTER_ID}\n"
        f"    priority {priority}\n" + ("    advert_int 0.1\n" if tuned else "") + "    "
        f"virtual_ipaddress {{\n        {vip}/32 dev eth0\n    }}\n}}\n"
    )


SPEAKER_VARIANTS = ("speaker-link", "speaker-graceful")


class Cluster:
    """keepalived on every node for one variant; stop() cleans up."""

    def __init__(self, testbed: Testbed, hosts: list[Host], vip: str, variant: str) -> None:
        self.hosts = hosts
        self.vip = vip
        self._stops: list[Callable[[], None]] = []
        base = testbed.dir / variant
        if variant == "openelb":
            addresses = {h.name: NodeAddresses(h.name, str(h.ipv4.ip), None) for h in hosts}
            for host in hosts:
                announcer = KeepalivedAnnouncer(
                    node=host.name, runtime_dir=base / host.name, netns=host.netns
                ).start()
                self._stops.append(announcer.close)
                desired = DesiredState(
                    host.name,
                    (DesiredVip(vip, "bench", ROUTER_ID, frozenset(addresses), "eth0"),),
                    addresses,
                )
                outcome = announcer.apply(desired)
                if not outcome.result.applied:
                    raise SystemExit(f"openelb config refused: {outcome.result.error}")
            return
        for index, host in enumerate(hosts):
            supervisor = KeepalivedSupervisor(
                settings=KeepalivedSettings(), runtime_dir=base / host.name, netns=host.netns
            )
            supervisor.start()
            self._stops.append(supervisor.stop)
            text = _baseline_config(
                host.name, 150 - 10 * index, vip, tuned=variant == "keepalived-tuned"
            )
            result = supervisor.apply(text, {"eth0": {vip}})
            if not result.applied:
                raise SystemExit(f"{variant} config refused: {result.error}")

    def holders(self) -> list[Host]:
        return [h for h in self.hosts if self.vip in addresses_on("eth0", netns=h.netns)]

    def settled_master(self, *, quiet: float, timeout: float) -> Host:
        """The single holder, once nobody else held the VIP for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        since, current = time.monotonic(), None
        while time.monotonic() < deadline:
            holders = self.holders()
            holder = holders[0] if len(holders) == 1 else None
            if holder is None or holder is not current:
                since, current = time.monotonic(), holder
            elif time.monotonic() - since >= quiet:
                return holder
            time.sleep(0.05)
        raise TimeoutError(f"VIP did not settle on one node within {timeout}s")

    def stop(self) -> None:
        for stop in self._stops:
            stop()

    def fail(self, master: Host) -> Callable[[], None]:
        """Cut the master's cable; returns how to undo it."""
        master.link_down()
        return master.link_up


class SpeakerCluster(Cluster):
    """The whole system: manager and speakers on a LabCluster; the speakers run keepalived."""

    def __init__(self, *, nodes: int, graceful: bool) -> None:
        self.graceful = graceful
        self.lab = LabCluster(nodes=nodes).start()
        self._stops = [self.lab.close]
        try:
            self.lab.start_manager()
            self.lab.create_eip("bench", self.lab.pool()["ipv4"], protocol="vip", default=True)
            self.lab.create_service("echo")
            (self.vip,) = self.lab.wait_for_ingress("echo", timeout=30)
            deadline = time.monotonic() + 30
            while not (self.lab.api.get(EIPS, "bench").get("status") or {}).get("virtualRouterIDs"):
                if time.monotonic() > deadline:
                    raise SystemExit("the manager assigned no router ID")
                time.sleep(0.05)
            self.speakers = {n.name: self.lab.start_speaker(n) for n in self.lab.nodes}
            self.lab.start_echo_servers()
        except BaseException:
            self.lab.close()
            raise
        self.hosts = list(self.lab.nodes)
        assert self.lab.client is not None
        self.client = self.lab.client

    def fail(self, master: Host) -> Callable[[], None]:
        if not self.graceful:
            return super().fail(master)
        self.speakers[master.name].stop(timeout=20)

        def restart() -> None:
            # Back before the next run settles: its keepalived may take the VIP back (preempt).
            pidfile = self.lab.keepalived_dir(master.name) / "keepalived.pid"
            proc = self.speakers[master.name] = self.lab.start_speaker(master)
            deadline = time.monotonic() + 30
            while not ("serving" in proc.log() and pidfile.exists()):
                if not proc.alive() or time.monotonic() > deadline:
                    raise SystemExit(f"speaker {master.name} did not come back: {proc.log()}")
                time.sleep(0.05)

        return restart


def _serve(host: Host) -> Process:
    """An echo server in its own process, so its replies never wait for this one's threads."""
    proc = host.spawn(
        [sys.executable, "-m", "openelb.lab.traffic", "serve", "--name", host.name],
        name=f"{host.name}-echo",
    )
    deadline = time.monotonic() + 20.0
    while "listening on" not in proc.log():
        if not proc.alive() or time.monotonic() > deadline:
            raise SystemExit(f"echo server on {host.name} did not start: {proc.log()}")
        time.sleep(0.02)
    return proc


def _one_failover(
    cluster: Cluster, client: Host, *, interval_ms: float, quiet: float, duration: float, out: Path
) -> tuple[float, int] | None:
    """One cut; the client stream runs in its own process (SIGUSR1 marks the cut)."""
    master = cluster.settled_master(quiet=quiet, timeout=30.0)
    out.unlink(missing_ok=True)
    stream = client.spawn(
        [
            sys.executable,
            "-m",
            "openelb.lab.traffic",
            "stream",
            "--target",
            f"{cluster.vip}:{DEFAULT_PORT}",
            "--interval-ms",
            str(interval_ms),
            "--duration",
            str(duration),
            "--out",
            str(out),
        ],
        name="client-stream",
    )
    try:
        deadline = time.monotonic() + 20.0
        while "streaming to" not in stream.log():
            if not stream.alive() or time.monotonic() > deadline:
                raise SystemExit(f"client stream did not start: {stream.log()}")
            time.sleep(0.01)
        time.sleep(0.3)  # traffic flowing to the master for a while before the cut
        stream.signal(signal.SIGUSR1)
        undo = cluster.fail(master)
        try:
            stream.popen.wait(duration + 15.0)
        finally:
            undo()
    finally:
        stream.kill()
    if not out.exists():
        return None
    return handover_gap(StreamResult.from_json(out.read_text()), event="usr1", old=master.name)


def handover_gap(result: StreamResult, *, event: str, old: str) -> tuple[float, int] | None:
    """(longest silence, datagrams lost) from ``event`` to the first reply from a node that is
    not ``old``; None if the last reply before the event was not from ``old`` or nobody else
    ever answered."""
    at = result.events[event]
    answered = sorted(
        (p for p in result.probes if p.received is not None), key=lambda p: p.received or 0.0
    )
    before = [p for p in answered if (p.received or 0.0) <= at]
    if not before or before[-1].responder != old:
        return None
    previous = before[-1].received or 0.0
    gap = 0.0
    for probe in answered[len(before) :]:
        received = probe.received or 0.0
        gap = max(gap, received - previous)
        previous = received
        if probe.responder != old:
            start = before[-1].sent
            lost = sum(
                1 for p in result.probes if p.received is None and start <= p.sent <= received
            )
            return gap, lost
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--interval-ms", type=float, default=1.0)
    parser.add_argument(
        "--variants",
        default="keepalived-defaults,keepalived-tuned,openelb,speaker-link,speaker-graceful",
        help="comma-separated subset to run",
    )
    add_results_argument(parser)
    args = parser.parse_args()
    if not 2 <= args.nodes <= 8:
        sys.exit("--nodes must be 2..8")
    variants = [Variant(name) for name in args.variants.split(",") if name]
    with Testbed() as testbed:
        client = testbed.add_host("client")
        hosts = [testbed.add_host(f"n{i}") for i in range(args.nodes)]
        servers = [_serve(h) for h in hosts]
        vip = str(testbed.subnet4[200])
        try:
            for variant in variants:
                runner = client
                if variant.name in SPEAKER_VARIANTS:
                    speaker_cluster = SpeakerCluster(
                        nodes=args.nodes, graceful=variant.name == "speaker-graceful"
                    )
                    cluster, runner = speaker_cluster, speaker_cluster.client
                else:
                    cluster = Cluster(testbed, hosts, vip, variant.name)
                # Settling waits past the startup election and a preempting return; the stream
                # lasts well beyond the expected gap.
                slow = variant.name == "keepalived-defaults"
                quiet, duration = (4.0, 8.0) if slow else (1.0, 3.0)
                try:
                    for run in range(args.runs):
                        outcome = _one_failover(
                            cluster,
                            runner,
                            interval_ms=args.interval_ms,
                            quiet=quiet,
                            duration=duration,
                            out=testbed.dir / "stream.json",
                        )
                        if outcome is None:
                            variant.failed += 1
                            print(f"  {variant.name} run {run + 1}: traffic did not move")
                            continue
                        variant.gaps.append(outcome[0])
                        variant.lost.append(outcome[1])
                        print(
                            f"  {variant.name} run {run + 1}/{args.runs}: "
                            f"gap {outcome[0] * 1000:.0f} ms, lost {outcome[1]}",
                            flush=True,
                        )
                finally:
                    cluster.stop()
        finally:
            for server in servers:
                server.stop()
    return _report(variants, args)


def rows_of(variants: list[Variant]) -> tuple[list[Row], dict[str, float]]:
    """A gap row (ms) per variant, keepalived's as the reference; ratios of medians."""
    rows = [
        Row(
            f"{v.name} gap",
            "ms",
            [g * 1000 for g in v.gaps],
            TARGETS_MS.get(v.name, ()),
            extra={"lost": v.lost, "failed": v.failed},
            reference=v.name in REFERENCES,
        )
        for v in variants
    ]
    by_name = {v.name: v for v in variants if v.gaps}
    ratios: dict[str, float] = {}
    for name in ("openelb", "speaker-link", "speaker-graceful"):
        mine = by_name.get(name)
        for base in REFERENCES:
            if mine is not None and base in by_name:
                ratio = statistics.median(mine.gaps) / statistics.median(by_name[base].gaps)
                ratios[f"{name} / {base} (p50)"] = ratio
    return rows, ratios


def _report(variants: list[Variant], args: argparse.Namespace) -> int:
    rows, ratios = rows_of(variants)
    title = (
        f"\nVIP-mode failover (master's link cut; speaker-graceful: its speaker stopped), "
        f"{args.nodes} nodes, {args.runs} runs, client stream every {args.interval_ms} ms"
    )
    for v in variants:
        if v.failed:
            say(f"  {v.name}: {v.failed} runs where the traffic did not move")
    for name, value in ratios.items():
        say(f"  {name}: {value:.2f}x")
    return publish(
        "failover_vip",
        title=title,
        rows=rows,
        ratios=ratios,
        args={"runs": args.runs, "nodes": args.nodes, "interval_ms": args.interval_ms},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
