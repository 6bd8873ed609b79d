"""Failover, openelb against keepalived, in ONE testbed and ONE run: the client's traffic gap.

Run: ``.venv/bin/python benchmarks/failover.py [--runs 20] [--dataplane auto]`` (root;
namespaces, keepalived).

One testbed (:class:`openelb.lab.l2cluster.L2Cluster`): the embedded apiserver, a client and
three nodes on a switch; every node runs a UDP echo server in a process of its own and accepts
the VIP locally the way kube-proxy would (``benchmarks/failover_l2.py``'s setup), so whichever
node the client's ARP entry points at answers, and says who it is. The same VIP is then served
by three systems in turn, each failed three ways, ``--runs`` times per way:

- ``openelb``: ``openelb speaker`` on every node with default settings (Layer 2 mode);
- ``keepalived-defaults``: what a user writes first (VRRPv2, advert 1 s), and
  ``keepalived-tuned``: ``vrrp_version 3`` + ``advert_int 0.1``, its limit as people use it
  (``benchmarks/failover_vip.py``'s configs; keepalived runs under openelb's supervisor, which
  restarts it with backoff and removes VIPs a dead keepalived left on the NIC).

Failures, injected while the client streams a datagram every 1 ms (``openelb.lab.traffic``, in
its own process; SIGUSR1 marks the instant):

- ``link-cut``: the owner's cable is pulled (hard node failure);
- ``sigkill``: the speaker / every keepalived process of the owner is SIGKILLed (node stays up);
- ``graceful``: SIGTERM to the speaker / keepalived (a rolling update).

Per run: the *gap* (largest silence in the client's replies after the failure) and the
*takeover* (failure -> first reply from another node). When the software dies but the node
stays up, the old node keeps answering the traffic its ARP entry brings, so the gap can be near
zero while the takeover still takes detection time: both are reported. Targets (design), on the
gap: hard failure (link-cut) p50 < 150 ms, p99 < 250 ms and <= 0.6x tuned keepalived in the
same run; graceful < 20 ms. Prints a table, writes JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import failover_l2  # the sibling benchmarks: reused, not copied
import failover_vip

from openelb.lab.benchresult import Row, Target, publish, say
from openelb.lab.gaps import StreamResult, analyse
from openelb.lab.l2cluster import L2Cluster
from openelb.lab.netns import Host, Testbed
from openelb.lab.traffic import DEFAULT_PORT
from openelb.speaker.ownership import compute_placement

VIP = failover_l2.VIP
SYSTEMS = ("openelb", "keepalived-defaults", "keepalived-tuned")
SCENARIOS = ("link-cut", "sigkill", "graceful")
HARD_P50_MS, HARD_P99_MS, GRACEFUL_MS, RATIO_TUNED = 150.0, 250.0, 20.0, 0.6


@dataclass
class Runs:
    """The outcomes of one system x scenario."""

    gaps: list[float] = field(default_factory=list)
    takeovers: list[float] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    gap_ms: float
    takeover_ms: float
    lost: int
    before: str
    after: str


def stream_through(
    client: Host, *, fail: Callable[[], None], duration: float, out: Path
) -> StreamResult | None:
    """Stream to the VIP from the client (own process), call ``fail`` 0.5 s in, marked."""
    out.unlink(missing_ok=True)
    stream = client.spawn(
        [
            sys.executable, "-m", "openelb.lab.traffic", "stream",
            "--target", f"{VIP}:{DEFAULT_PORT}", "--interval-ms", "1",
            "--duration", str(duration), "--drain", "0.3", "--out", str(out),
        ],
        name="client-stream",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20.0
        while "streaming to" not in stream.log():
            if not stream.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"client stream did not start: {stream.log()}")
            time.sleep(0.01)
        time.sleep(0.5)  # traffic flowing to the owner before the failure
        stream.signal(signal.SIGUSR1)
        fail()
        stream.popen.wait(duration + 15.0)
    finally:
        stream.kill()
    return StreamResult.from_json(out.read_text()) if out.exists() else None


def outcome_of(result: StreamResult) -> Outcome:
    """The outage the failover caused: the longest silence from the failure up to the first
    reply from another node. A later return of the old owner (keepalived's supervisor restarts
    it and VRRP preempts within the stream) is a separate event and not counted here."""
    report = analyse(result, event="usr1")
    event = result.events["usr1"]
    replies = sorted(
        (p for p in result.probes if p.received is not None), key=lambda p: p.received or 0.0
    )
    first_new = next(
        (
            p
            for p in replies
            if (p.received or 0.0) > event
            and p.responder
            and p.responder != report.responder_before
        ),
        None,
    )
    if first_new is None or first_new.received is None:
        return Outcome(report.gap * 1000, -1.0, report.lost_in_gap, report.responder_before, "")
    moved_at = first_new.received
    last_before = max(
        (p.received or 0.0 for p in replies if (p.received or 0.0) <= event), default=event
    )
    previous, gap = last_before, 0.0
    for p in replies:
        t = p.received or 0.0
        if event < t <= moved_at:
            gap, previous = max(gap, t - previous), t
    lost = sum(1 for p in result.probes if p.received is None and last_before <= p.sent <= moved_at)
    return Outcome(
        gap_ms=gap * 1000,
        takeover_ms=(moved_at - event) * 1000,
        lost=lost,
        before=report.responder_before,
        after=first_new.responder,
    )


def record(runs: Runs, label: str, result: StreamResult | None, expected: str) -> None:
    if result is None:
        runs.failed.append("no stream result")
        say(f"  {label}: no stream result")
        return
    out = outcome_of(result)
    if out.before != expected or out.takeover_ms < 0:
        runs.failed.append(f"{out.before or '-'} -> {out.after or '-'}")
        say(f"  {label}: traffic did not move from {expected} ({out.before} -> {out.after})")
        return
    runs.gaps.append(out.gap_ms)
    runs.takeovers.append(out.takeover_ms)
    runs.lost.append(out.lost)
    say(
        f"  {label}: gap {out.gap_ms:7.1f} ms, takeover {out.takeover_ms:7.1f} ms, "
        f"lost {out.lost}, {out.before} -> {out.after}"
    )


# --- openelb ---------------------------------------------------------------------------------


def run_openelb(
    cluster: L2Cluster, args: argparse.Namespace, results: dict[tuple[str, str], Runs]
) -> None:
    owner = compute_placement(VIP, live=list(cluster.nodes)).owner
    assert owner is not None
    cluster.add_pool("pool", f"{VIP}-{VIP}")
    cluster.add_service("web", [VIP])
    for name in cluster.nodes:
        cluster.start_speaker(name)
    for name in cluster.nodes:
        cluster.wait_serving(name, timeout=60)
    failover_l2._restore(cluster, "link-cut", owner)  # settled, and the client's traffic there
    node = cluster.nodes[owner]
    fails: dict[str, Callable[[], None]] = {
        "link-cut": node.link_down,
        "sigkill": lambda: cluster.sigkill(owner),
        "graceful": lambda: cluster.speakers[owner].signal(signal.SIGTERM),
    }
    try:
        for scenario in args.scenarios:
            runs = results[("openelb", scenario)]
            for i in range(args.runs):
                result = stream_through(
                    cluster.client,
                    fail=fails[scenario],
                    duration=3.0,
                    out=cluster.testbed.dir / "stream.json",
                )
                record(runs, f"openelb {scenario:<9} {i + 1:>2}/{args.runs}", result, owner)
                failover_l2._restore(cluster, scenario, owner)
    finally:
        for name in list(cluster.speakers):
            with contextlib.suppress(Exception):
                cluster.stop_gracefully(name)
            cluster.kill(name)


# --- keepalived ------------------------------------------------------------------------------


def _keepalived_pid(testbed: Testbed, system: str, host: Host) -> int | None:
    """The keepalived parent of ``host`` (its pid file, if that process is alive)."""
    path = testbed.dir / system / host.name / "keepalived.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    return None


def _wait_all_running(testbed: Testbed, system: str, hosts: list[Host], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_keepalived_pid(testbed, system, h) is None for h in hosts):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{system}: keepalived not running on every node")
        time.sleep(0.1)


def run_keepalived(
    *,
    testbed: Testbed,
    client: Host,
    hosts: list[Host],
    system: str,
    args: argparse.Namespace,
    results: dict[tuple[str, str], Runs],
) -> None:
    cluster = failover_vip.Cluster(testbed, hosts, VIP, system)
    slow = system == "keepalived-defaults"
    # Settle past the start-up election and a preempting return; stream well beyond the gap.
    quiet, slow_stream = (4.0, 8.0) if slow else (1.0, 3.0)

    def kill(master: Host, sig: int) -> None:
        pid = _keepalived_pid(testbed, system, master)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                if sig == signal.SIGKILL:
                    os.killpg(pid, sig)  # the parent and its VRRP child: a crash
                else:
                    os.kill(pid, sig)

    try:
        for scenario in args.scenarios:
            runs = results[(system, scenario)]
            for i in range(args.runs):
                _wait_all_running(testbed, system, hosts, timeout=30)
                master = cluster.settled_master(quiet=quiet, timeout=40)
                fails: dict[str, Callable[[], None]] = {
                    "link-cut": master.link_down,
                    "sigkill": functools.partial(kill, master, signal.SIGKILL),
                    "graceful": functools.partial(kill, master, signal.SIGTERM),
                }
                try:
                    result = stream_through(
                        client,
                        fail=fails[scenario],
                        # keepalived's graceful handover takes ~0.5 s even with defaults
                        duration=3.0 if scenario == "graceful" else slow_stream,
                        out=testbed.dir / "stream.json",
                    )
                finally:
                    master.link_up()
                label = f"{system} {scenario:<9} {i + 1:>2}/{args.runs}"
                record(runs, label, result, master.name)
    finally:
        cluster.stop()


# --- report ----------------------------------------------------------------------------------


def rows_of(results: dict[tuple[str, str], Runs]) -> tuple[list[Row], dict[str, float]]:
    rows: list[Row] = []
    for (system, scenario), runs in results.items():
        targets: tuple[Target, ...] = ()
        if system == "openelb":
            targets = (
                (Target(GRACEFUL_MS, "p50"),)
                if scenario == "graceful"
                else (Target(HARD_P50_MS, "p50"), Target(HARD_P99_MS, "p99"))
            )
        extra = {"lost": runs.lost, "failed": runs.failed, "takeover_ms": runs.takeovers}
        # keepalived is the reference measured in the same testbed: shown, never judged
        reference = system != "openelb"
        rows.append(
            Row(
                f"{system} {scenario} gap",
                "ms",
                runs.gaps,
                targets,
                extra=extra,
                reference=reference,
            )
        )
    for (system, scenario), runs in results.items():
        rows.append(
            Row(
                f"{system} {scenario} takeover",
                "ms",
                runs.takeovers,
                reference=system != "openelb",
            )
        )
    ratios: dict[str, float] = {}
    for scenario in SCENARIOS:
        mine = results.get(("openelb", scenario))
        for base in ("keepalived-tuned", "keepalived-defaults"):
            theirs = results.get((base, scenario))
            if not mine or not theirs or not mine.gaps or not theirs.gaps:
                continue
            for what, a, b in (
                ("gap", mine.gaps, theirs.gaps),
                ("takeover", mine.takeovers, theirs.takeovers),
            ):
                denominator = statistics.median(b)
                if denominator > 0:
                    ratios[f"openelb / {base}, {scenario} {what} (p50)"] = (
                        statistics.median(a) / denominator
                    )
    key = "openelb / keepalived-tuned, link-cut gap (p50)"
    if key in ratios:
        rows.append(
            Row(
                "openelb / keepalived-tuned, link-cut gap p50",
                "x",
                [ratios[key]],
                (Target(RATIO_TUNED, "p50"),),
            )
        )
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="per system and failure")
    parser.add_argument("--dataplane", default="auto", help="the speakers' data plane")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--results", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = (set(systems) - set(SYSTEMS)) | (set(args.scenarios) - set(SCENARIOS))
    if unknown or args.runs < 1:
        sys.exit(f"unknown systems/scenarios {sorted(unknown)} or --runs < 1")
    # Killing keepalived is the point here: its supervisor's error logs would drown the table.
    logging.getLogger("openelb.keepalived").setLevel(logging.CRITICAL)
    results = {(s, sc): Runs() for s in systems for sc in args.scenarios}
    started = time.monotonic()
    with Testbed() as testbed:
        cluster = L2Cluster(testbed, nodes=3, dataplane=args.dataplane)
        hosts = list(cluster.nodes.values())
        servers = []
        try:
            failover_l2._accept_vip_locally(cluster)
            servers = [failover_vip._serve(h) for h in hosts]
            if "openelb" in systems:
                run_openelb(cluster, args, results)
            for system in systems:
                if system != "openelb":
                    run_keepalived(
                        testbed=testbed,
                        client=cluster.client,
                        hosts=hosts,
                        system=system,
                        args=args,
                        results=results,
                    )
        finally:
            for server in servers:
                server.stop()
            cluster.close()
    rows, ratios = rows_of(results)
    return publish(
        "failover",
        title=(
            f"\nfailover: {args.runs} runs per system and failure, 3 nodes, one testbed, "
            f"client stream every 1 ms; speakers' dataplane {args.dataplane}; "
            f"{time.monotonic() - started:.0f} s"
        ),
        rows=rows,
        ratios=ratios,
        args={
            "runs": args.runs,
            "dataplane": args.dataplane,
            "systems": systems,
            "scenarios": args.scenarios,
        },
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
