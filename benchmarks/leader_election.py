"""Leader election soak: double-leader observations and takeover times, ours vs the official client.

Run: ``.venv/bin/python benchmarks/leader_election.py [--runs 20] [--official-runs 5]``

Each run starts fresh rigs of three electors against the embedded apiserver, each elector
behind its own cuttable TCP proxy (``openelb.lab.election_rig``), and plays five scenarios:
the leader crashes (no release), stops gracefully (release), is partitioned (connections
refused; black-holed), and the apiserver answers lease writes with 500s (there the time is to
anyone leading again after the step-down, usually the same elector re-acquiring). A monitor
checks every millisecond that at most one elector is leading (per its own start/stop hooks);
every such observation is counted (must be 0). Takeover time: from the fault to the next leader's
``on_started_leading``. Settings: lease 1 s, renew deadline 0.6 s, retry 0.15 s.

The official ``kubernetes.leaderelection.LeaderElection`` is run in the same rig (its settings
must be whole seconds >= 1: lease 2 s, renew 1.5 s, retry 1 s) for the crash and partition
scenarios, for comparison: its rows are marked ``reference`` (another project's code, shown,
never judged; it does show double leaders under partition). Target: our electors never show two
leaders at once. Prints a table and writes the shared result shape (``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from openelb.kube.client import connect
from openelb.kube.resources import NAMESPACES
from openelb.lab.apiserver import ApiServer
from openelb.lab.benchresult import (
    Row,
    Target,
    add_results_argument,
    publish,
)
from openelb.lab.election_rig import ElectionRig, LeaderLog, Timings, write_kubeconfig
from openelb.lab.tcpproxy import TcpProxy

NAMESPACE = "bench"
TIMINGS = Timings()
WAIT = 10.0


def _takeover(
    rig: ElectionRig, fault: Callable[[str], None], *, by_other: bool = True
) -> tuple[float | None, int]:
    """Seconds from the fault to the next leader's start (``by_other``: not the old one)."""
    leader = rig.wait_leader(WAIT)
    if leader is None:
        return None, 0
    time.sleep(3 * TIMINGS.retry_period)  # settled: a few renewals happened
    starts_before = len(rig.log.starts)
    start = time.monotonic()
    fault(leader)
    if by_other:
        successor = rig.wait_leader(WAIT, other_than=leader)
        took = None if successor is None else rig.log.starts[-1][0] - start
        return took, rig.log.double_leader_observations
    deadline = start + WAIT
    while time.monotonic() < deadline and len(rig.log.starts) == starts_before:
        time.sleep(0.002)
    took = rig.log.starts[-1][0] - start if len(rig.log.starts) > starts_before else None
    return took, rig.log.double_leader_observations


def run_ours(server: ApiServer, run: int) -> dict[str, tuple[float | None, int]]:
    out: dict[str, tuple[float | None, int]] = {}
    scenarios: dict[str, Callable[[ElectionRig], Callable[[str], None]]] = {
        "crash": lambda rig: rig.crash,
        "graceful": lambda rig: rig.stop_gracefully,
        "partition-refuse": lambda rig: lambda who: rig.partition(who, "refuse"),
        "partition-blackhole": lambda rig: lambda who: rig.partition(who, "blackhole"),
        "http-500": lambda rig: (
            lambda who: server.fail_requests(
                4, status=500, path_contains="/leases/", methods=["PUT"]
            )
        ),
    }
    for name, fault in scenarios.items():
        rig = ElectionRig(
            server_url=server.url, n=3, name=f"ours-{run}-{name}", namespace=NAMESPACE
        ).start()
        try:
            # 500s hit every candidate: the leader steps down and leadership comes back
            # (often to the same one, which still holds the Lease): time to leading again.
            out[name] = _takeover(rig, fault(rig), by_other=name != "http-500")
            time.sleep(2 * TIMINGS.retry_period)
        finally:
            server.clear_faults()
            rig.close()
        out[name] = (out[name][0], rig.log.double_leader_observations)
    return out


class OfficialRig:
    """Three official LeaderElection candidates, each behind its own proxy."""

    def __init__(self, server: ApiServer, name: str) -> None:
        self.log = LeaderLog()
        self.proxies = [TcpProxy(server.port) for _ in range(3)]
        self.threads: list[threading.Thread] = []
        self.died: list[str] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="openelb-official-"))
        self._monitor_stop = threading.Event()
        for i, proxy in enumerate(self.proxies):
            identity = f"e{i}"
            api = connect(str(write_kubeconfig(self._tmp / f"kc-{i}", proxy.url)), timeout=2.0)
            lock = LeaseLock(name, NAMESPACE, identity)
            lock.api_instance = k8s_client.CoordinationV1Api(api.api_client)
            config = electionconfig.Config(
                lock,
                lease_duration=2,
                renew_deadline=1.5,
                retry_period=1,
                onstarted_leading=lambda ident=identity: self.log.started(ident),
                onstopped_leading=lambda ident=identity: self.log.stopped(ident),
            )
            election = leaderelection.LeaderElection(config)
            thread = threading.Thread(target=self._run, args=(election, identity), daemon=True)
            self.threads.append(thread)
        threading.Thread(target=self._monitor, daemon=True).start()
        for thread in self.threads:
            thread.start()

    def _run(self, election: Any, identity: str) -> None:
        try:
            election.run()
        except Exception:  # noqa: BLE001 - what we measure: the thread dies, no stop hook
            self.died.append(identity)

    def _monitor(self) -> None:
        was = False
        while not self._monitor_stop.wait(0.001):
            double = len(self.log.current()) > 1
            if double and not was:
                with self.log.lock:
                    self.log.double_leader_observations += 1
            was = double

    def wait_leader(self, timeout: float, other_than: str | None = None) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.log.current()
            if other_than is not None:
                current.discard(other_than)
            if len(current) == 1:
                return next(iter(current))
            time.sleep(0.002)
        return None

    def close(self) -> None:
        self._monitor_stop.set()
        for proxy in self.proxies:
            proxy.close()


def run_official(server: ApiServer, run: int) -> dict[str, tuple[float | None, int]]:
    out: dict[str, tuple[float | None, int]] = {}
    for name in ("crash", "partition-refuse"):
        rig = OfficialRig(server, f"official-{run}-{name}")
        try:
            leader = rig.wait_leader(WAIT)
            if leader is None:
                out[name] = (None, rig.log.double_leader_observations)
                continue
            time.sleep(1.5)
            start = time.monotonic()
            i = int(leader[1:])
            if name == "crash":
                rig.log.killed(leader)
            rig.proxies[i].cut("refuse")
            successor = rig.wait_leader(WAIT, other_than=leader)
            took = None if successor is None else rig.log.starts[-1][0] - start
            time.sleep(0.5)
            out[name] = (took, rig.log.double_leader_observations)
        finally:
            rig.close()
    return out


Runs = list[dict[str, tuple[float | None, int]]]
"""Per run: scenario -> (takeover seconds or None, double-leader observations)."""


def rows_of(ours: Runs, official: Runs) -> list[Row]:
    """Takeover rows per elector and scenario, and the double-leader count per run: judged
    (must stay 0) for ours, shown as the reference for the official elector."""
    rows: list[Row] = []
    for label, results in (("ours", ours), ("official", official)):
        if not results:
            continue
        reference = label == "official"
        for name in results[0]:
            times = [t for r in results if (t := r[name][0]) is not None]
            extra = {
                "no_takeover": sum(1 for r in results if r[name][0] is None),
                "double_leader_observations": sum(r[name][1] for r in results),
            }
            rows.append(
                Row(f"{label} {name} takeover", "s", times, extra=extra, reference=reference)
            )
        doubles = [float(sum(n for _, n in r.values())) for r in results]
        rows.append(
            Row(
                f"{label}: double-leader observations per run (all scenarios)",
                "",
                doubles,
                () if reference else (Target(0, "max", op="<="),),
                reference=reference,
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--official-runs", type=int, default=5)
    add_results_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)

    with ApiServer(bookmark_interval=0.5) as server, tempfile.TemporaryDirectory() as tmp:
        api = connect(str(server.write_kubeconfig(Path(tmp) / "kc")), timeout=5)
        api.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        ours = [run_ours(server, run) for run in range(args.runs)]
        official = [run_official(server, run) for run in range(args.official_runs)]

    rows = rows_of(ours, official)
    title = f"leader election: {args.runs} runs ours, {args.official_runs} official (reference)"
    return publish(
        "leader_election",
        title=title,
        rows=rows,
        args={"runs": args.runs, "official_runs": args.official_runs},
        extra={
            "timings": {
                "ours": {
                    "lease": TIMINGS.lease_duration,
                    "renew": TIMINGS.renew_deadline,
                    "retry": TIMINGS.retry_period,
                },
                "official": {"lease": 2, "renew": 1.5, "retry": 1},
            }
        },
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
