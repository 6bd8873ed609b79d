"""Announce latency: a Service is created -> the first gratuitous ARP / unsolicited NA on the wire.

Run: ``.venv/bin/python benchmarks/announce_latency.py [--services 50] [--nodes 3]
[--family ipv4|ipv6] [--dataplane auto]`` (root; network namespaces).

One lab (:class:`openelb.lab.cluster.LabCluster`): the embedded apiserver, the real ``openelb
manager`` and one real ``openelb speaker`` per node namespace, a client namespace on the same
switch running tcpdump. Services are created one at a time; for each, three instants on ONE clock
(CLOCK_REALTIME: ``time.time()`` here, the kernel's capture timestamps in the pcap):

- *created*: just before the create request leaves this process;
- *ingress*: this process's watch on Services delivered the status with the IP (the manager
  allocated and wrote it; the speakers' watches see the same event);
- *on the wire*: the first GARP (request form: sender IP = target IP = the VIP) or unsolicited
  NA (target = the VIP) the client namespace captured for that IP.

Rows: allocation (created -> ingress), announcement (ingress -> wire), total (created -> wire),
and, as the baseline measured in the same run, the apiserver floor: created -> the watch's ADDED
event for the same Service (what any controller pays before it can start). The announcement
includes the speakers' address conflict probe (RFC 5227, ``--probe-wait``, 30 ms by default):
its first probe on the wire is recorded too. Target (design): total p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openelb.kube.resources import SERVICES
from openelb.kube.watching import WatchCache
from openelb.lab.benchresult import Row, Target, publish, say
from openelb.lab.cluster import LabCluster
from openelb.lab.netns import Capture, Process
from openelb.lab.pcap import Frame, read_pcap

TARGET_TOTAL_P99_MS = 100.0
ICMP6_NEIGHBOR_SOLICIT = 135
ICMP6_NEIGHBOR_ADVERT = 136


@dataclass
class Sample:
    name: str
    created: float
    added: float | None = None
    ingress: float | None = None
    ip: str = ""
    probe: float | None = None
    wire: float | None = None
    announcer: str = ""


class ServiceWatch:
    """When this process first saw each Service (ADDED) and first saw its ingress IP."""

    def __init__(self, lab: LabCluster) -> None:
        self._lock = threading.Lock()
        self.added: dict[str, float] = {}
        self.ingress: dict[str, tuple[float, str]] = {}
        self._cache: WatchCache[dict[str, Any]] = WatchCache(
            lab.api, SERVICES, namespace="default", on_change=self._changed
        )

    def start(self) -> ServiceWatch:
        self._cache.start()
        if not self._cache.wait_synced(30):
            raise SystemExit("the Service watch did not sync in 30 s")
        return self

    def stop(self) -> None:
        self._cache.stop()

    def _changed(self, change: Any) -> None:
        seen = time.time()
        raw = change.new
        if not change.key or raw is None:
            return
        name = str(raw["metadata"]["name"])
        ingress = ((raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        with self._lock:
            self.added.setdefault(name, seen)
            if ingress and name not in self.ingress:
                self.ingress[name] = (seen, str(ingress[0].get("ip", "")))

    def wait_ingress(self, name: str, timeout: float) -> tuple[float, str] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = self.ingress.get(name)
            if found is not None:
                return found
            time.sleep(0.002)
        return None


def announces(frame: Frame, ip: str) -> bool:
    """A GARP in request or reply form (sender IP = target IP = ``ip``) or an NA for ``ip``."""
    arp = frame.arp
    if arp is not None:
        return arp.spa == ip and arp.tpa == ip
    icmp = frame.icmp6
    return icmp is not None and icmp.type == ICMP6_NEIGHBOR_ADVERT and icmp.target == ip


def probes(frame: Frame, ip: str) -> bool:
    """An RFC 5227 ARP probe (sender IP 0) or a DAD-style NS (source ::) for ``ip``."""
    arp = frame.arp
    if arp is not None:
        return arp.op == 1 and arp.spa == "0.0.0.0" and arp.tpa == ip
    icmp = frame.icmp6
    return (
        icmp is not None
        and icmp.type == ICMP6_NEIGHBOR_SOLICIT
        and icmp.src == "::"
        and icmp.target == ip
    )


def wait_on_wire(capture: Capture, sample: Sample, *, timeout: float) -> list[Frame]:
    """Read the growing pcap until the announcement for ``sample.ip`` is in it."""
    deadline = time.monotonic() + timeout
    while True:
        frames = read_pcap(capture.pcap_path)
        if any(announces(f, sample.ip) for f in frames) or time.monotonic() > deadline:
            return frames
        time.sleep(0.005)


def _normal(ip: str) -> str:
    return str(ipaddress.ip_address(ip))


def measure(lab: LabCluster, args: argparse.Namespace, capture: Capture) -> list[Sample]:
    watch = ServiceWatch(lab).start()
    samples = []
    try:
        for i in range(args.services):
            name = f"svc-{i}"
            created = time.time()
            lab.create_service(name)
            sample = Sample(name, created)
            seen = watch.wait_ingress(name, timeout=args.timeout)
            if seen is None:
                say(f"  {name}: no IP within {args.timeout:.0f} s")
                samples.append(sample)
                continue
            sample.ingress, sample.ip = seen[0], _normal(seen[1])
            sample.added = watch.added.get(name)
            frames = wait_on_wire(capture, sample, timeout=args.timeout)
            sample.wire = next((f.ts for f in frames if announces(f, sample.ip)), None)
            sample.probe = next((f.ts for f in frames if probes(f, sample.ip)), None)
            first = next((f for f in frames if announces(f, sample.ip)), None)
            if first is not None:
                node = lab.node_by_mac(first.src)
                sample.announcer = node.name if node is not None else first.src
            samples.append(sample)
            total = f"{(sample.wire - created) * 1000:6.1f} ms" if sample.wire else "not seen"
            say(
                f"  {name:<8} {sample.ip:<16} alloc {(sample.ingress - created) * 1000:6.1f} ms"
                f"  total {total}  by {sample.announcer or '-'}"
            )
            time.sleep(args.pause)
    finally:
        watch.stop()
    return samples


def rows_of(samples: list[Sample]) -> list[Row]:
    def span(start: str, end: str) -> list[float]:
        """Milliseconds from one instant to another, for the Services that have both."""
        pairs = [(getattr(s, start), getattr(s, end)) for s in samples]
        return [(b - a) * 1000 for a, b in pairs if a is not None and b is not None]

    announced = [s for s in samples if s.wire is not None]
    by_node: dict[str, int] = {}
    for s in announced:
        by_node[s.announcer] = by_node.get(s.announcer, 0) + 1
    return [
        Row(
            "total: created -> first GARP/NA",
            "ms",
            span("created", "wire"),
            (Target(TARGET_TOTAL_P99_MS, "p99"),),
            extra={
                "services": len(samples),
                "never_announced": len(samples) - len(announced),
                "announced_by": by_node,
            },
        ),
        Row("allocation: created -> ingress", "ms", span("created", "ingress")),
        Row("announcement: ingress -> first GARP/NA", "ms", span("ingress", "wire")),
        Row("of which: ingress -> conflict probe", "ms", span("ingress", "probe")),
        Row("of which: probe -> first GARP/NA", "ms", span("probe", "wire")),
        Row("baseline: created -> ADDED (apiserver)", "ms", span("created", "added")),
    ]


def run(args: argparse.Namespace) -> int:
    if args.services < 1:
        sys.exit("--services must be at least 1")
    with LabCluster(nodes=args.nodes, family=args.family) as lab:
        client = lab.client
        assert client is not None
        processes: list[Process] = [lab.start_manager("--metrics-port", "0")]
        for node in lab.nodes:
            processes.append(
                lab.start_speaker(
                    node,
                    "--dataplane",
                    args.dataplane,
                    "--instance",
                    f"{lab.testbed.run_id}-{node.name}",
                )
            )
        _wait_logged(processes[1:], "serving", timeout=60)
        net4, net6 = lab.testbed.subnet4, lab.testbed.subnet6
        if args.family == "ipv4":
            if args.services > 150:
                sys.exit("--services: at most 150 IPv4 Services fit the lab's /24")
            pool = f"{net4[100]}-{net4[250]}"
        else:
            pool = f"{net6[0x1000]}-{net6[0x1000 + args.services + 10]}"
        lab.create_eip("bench", pool, default=True)
        # The speakers open their data plane when the first Eip names an interface; let that
        # finish so the first Service does not pay for a one-time setup.
        _wait_logged(processes[1:], "data plane", timeout=60)
        time.sleep(1.0)
        capture = client.capture("arp or icmp6")
        try:
            samples = measure(lab, args, capture)
        finally:
            capture.stop()
        for proc in processes:
            if not proc.alive():
                say(f"warning: {proc.name} exited early:\n{proc.log()[-2000:]}")
    rows = rows_of(samples)
    ratios: dict[str, float] = {}
    total, floor = rows[0].stat("p50"), rows[-1].stat("p50")
    if total is not None and floor:
        ratios["total / apiserver floor (p50)"] = total / floor
    # Only the first row (created -> first GARP/NA) has a target: it alone decides the exit code.
    return publish(
        "announce_latency",
        title=(
            f"\nannounce latency: {args.services} Services created one at a time, "
            f"{args.nodes} nodes, {args.family}, dataplane {args.dataplane} "
            "(CLOCK_REALTIME: create call and tcpdump in the client namespace)"
        ),
        rows=rows,
        ratios=ratios,
        args=vars(args) | {"results": str(args.results) if args.results else None},
        extra={"samples": [vars(s) for s in samples]},
        results_dir=args.results,
    )


def _wait_logged(processes: list[Process], text: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for proc in processes:
        while text not in proc.log():
            if not proc.alive():
                sys.exit(f"{proc.name} exited:\n{proc.log()[-3000:]}")
            if time.monotonic() > deadline:
                sys.exit(
                    f"{proc.name} did not log {text!r} in {timeout:.0f} s:\n{proc.log()[-3000:]}"
                )
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--family", choices=("ipv4", "ipv6"), default="ipv4")
    parser.add_argument("--dataplane", default="auto")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between Services")
    parser.add_argument("--timeout", type=float, default=15.0, help="per Service, seconds")
    parser.add_argument("--results", type=Path, default=None, help="results folder")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
