"""AF_PACKET rows of the data plane benchmark: fallback responder throughput, announce latency.

Run (root): ``.venv/bin/python benchmarks/dataplane_afpacket.py [--seconds 2] [--repeats 3]``

1. Replies per second over veth: a client floods ARP requests for a VIP (batched sendmmsg from
   the compiled module, far faster than either responder) through the testbed's bridge to a node
   whose ``AfPacketResponder`` runs in its own process, once with the compiled packet module and
   once with the pure-Python one (the baseline, same run, same rig). Replies are counted where
   they arrive (the client NIC's rx_packets); the responder's own counters are shown too.
   Target (DESIGN.md): compiled >= 4x pure Python. The verdict uses capacity, 1 / (responder
   CPU per reply, from the responder process's own CPU time): on two vCPUs the flood cannot
   outrun the compiled responder for long, and co-tenant load swings the wall-clock rates, so
   the replies/s ratio (printed too) understates the difference.
2. ``AnnounceSender.announce()`` call to wire: CLOCK_REALTIME just before the call against the
   kernel receive timestamp (SO_TIMESTAMPNS) of the first GARP at the client, through the
   veth/bridge path; baselines in the same run: the pure-Python packet module, and opening a
   socket per announcement (what a sender without pre-opened sockets pays).

Prints one table and writes the shared result shape (``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from openelb.dataplane import packet
from openelb.lab.benchresult import (
    Row,
    Target,
    add_results_argument,
    publish,
)
from openelb.lab.netns import Host, Testbed, in_netns

VIP = "10.250.0.200"
TARGET_RATIO = 4.0
SO_TIMESTAMPNS = 35
_CPUS = ("0", "1") if (os.cpu_count() or 1) > 1 else ("0", "0")
"""Flood on one CPU, responder on the other, so neither steals the other's time."""

_SERVE = r"""
import json, os, sys, time
from openelb.dataplane import packet
from openelb.dataplane.afpacket import AfPacketResponder
from openelb.dataplane.responder import VipEntry
module = packet.compiled_impl() if sys.argv[1] == "compiled" else packet.python_impl
responder = AfPacketResponder([sys.argv[3]], packet_module=module, batch=64)
responder.sync([VipEntry.on(sys.argv[3], sys.argv[2])])
responder.refresh_gate(3600)
print("ready", flush=True)
start = os.times()
sys.stdin.readline()
end = os.times()
counters = responder.counters()
responder.close(detach=True)
counters["cpu_seconds"] = (end.user - start.user) + (end.system - start.system)
print(json.dumps(counters), flush=True)
"""


FLOOD_IF = "fl0"
"""A direct veth cable between client and node for the flood (the bridge would add its own
forwarding cost to both sides of the measurement)."""


def _cable(node: Host, client: Host) -> None:
    """Plug ``FLOOD_IF`` between the two hosts. Both ends run with ARP off: the client stands
    for another machine (its kernel's handling of the replies would otherwise run on the
    responder's CPU, as veth delivers in the sender's context) and the node's kernel has no
    VIP to answer for anyway; AF_PACKET sees the frames before the kernel's ARP code."""
    client.run(
        [
            "ip",
            "link",
            "add",
            FLOOD_IF,
            "type",
            "veth",
            "peer",
            "name",
            FLOOD_IF,
            "netns",
            node.netns,
        ]
    )
    for host in (node, client):
        host.run(["ip", "link", "set", FLOOD_IF, "arp", "off", "up"])


def _mac(host: Host) -> bytes:
    return bytes.fromhex(
        host.run(["cat", f"/sys/class/net/{FLOOD_IF}/address"]).stdout.strip().replace(":", "")
    )


def _rx_packets(host: Host) -> int:
    out = host.run(["cat", f"/sys/class/net/{FLOOD_IF}/statistics/rx_packets"]).stdout
    return int(out)


def _flood(
    client: Host, node: Host, *, seconds: float, stop: threading.Event, sent: list[int]
) -> None:
    compiled = packet.compiled_impl()
    assert compiled is not None, "the flood needs the compiled packet module (make setup)"
    mac = _mac(client)
    request = (
        b"\xff" * 6
        + mac
        + b"\x08\x06"
        + bytes.fromhex("000108000604")
        + b"\x00\x01"
        + mac
        + client.ipv4.ip.packed
        + bytes(6)
        + ipaddress.IPv4Address(VIP).packed
        + bytes(18)
    )
    frames = [request] * 64
    os.sched_setaffinity(0, {int(_CPUS[0])})
    with in_netns(client.netns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sock.setsockopt(263, 20, 1)  # PACKET_QDISC_BYPASS: the flood skips the qdisc layer
        sock.bind((FLOOD_IF, 0))
    total = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not stop.is_set():
            try:
                total += compiled.send_frames(sock.fileno(), frames)
            except OSError:  # tx queue full: the flood outruns the path, which is the point
                time.sleep(0)
    finally:
        sock.close()
        sent.append(total)


def measure_replies(
    testbed: Testbed, node: Host, client: Host, *, impl: str, seconds: float
) -> dict[str, float]:
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            node.netns,
            "taskset",
            "-c",
            _CPUS[1],
            sys.executable,
            "-c",
            _SERVE,
            impl,
            VIP,
            FLOOD_IF,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("responder process did not start")
        before = _rx_packets(client)
        sent: list[int] = []
        stop = threading.Event()
        t0 = time.monotonic()
        _flood(client, node, seconds=seconds, stop=stop, sent=sent)
        elapsed = time.monotonic() - t0
        time.sleep(0.2)  # let the queue drain into replies
        received = _rx_packets(client) - before
        server.stdin.write("\n")
        server.stdin.flush()
        counters = json.loads(server.stdout.readline())
    finally:
        server.kill()
        server.wait()
    return {
        "requests_sent": sent[0],
        "replies_received": received,
        "replies_per_s": received / elapsed,
        "responder_arp_replies": counters["arp_reply"],
        "responder_cpu_s": counters["cpu_seconds"],
        "cpu_us_per_reply": counters["cpu_seconds"] * 1e6 / max(counters["arp_reply"], 1),
    }


def _first_frame_ns(sock: socket.socket, timeout: float = 1.0) -> int:
    sock.settimeout(timeout)
    _, ancdata, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(16))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec * 1_000_000_000 + nsec
    raise RuntimeError("no kernel timestamp on the received frame")


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass


def measure_announce(
    node: Host, client: Host, *, samples: int
) -> dict[str, dict[str, list[float]]]:
    from openelb.dataplane.announcing import AnnounceSender

    with in_netns(client.netns):
        listener = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        listener.bind(("eth0", 0x0806))
    results: dict[str, dict[str, list[float]]] = {}
    vips = [ipaddress.IPv4Address(VIP)]  # parsed once, as the speaker holds them
    variants = {
        "announce() compiled": packet.compiled_impl(),
        "announce() pure Python": packet.python_impl,
    }
    try:
        with in_netns(node.netns):
            for name, module in variants.items():
                with AnnounceSender(packet_module=module) as sender:
                    sender.open("eth0")
                    results[name] = _announce_series(
                        lambda s=sender: s.announce("eth0", vips), listener, samples
                    )

            def naive() -> None:
                with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
                    sock.bind(("eth0", 0))
                    mac = sock.getsockname()[4]
                    sock.send(packet.python_impl.build_garp(mac, ipaddress.IPv4Address(VIP).packed))

            results["socket per call (baseline)"] = _announce_series(naive, listener, samples)
    finally:
        listener.close()
    return results


def _announce_series(call: object, listener: socket.socket, samples: int) -> dict[str, list[float]]:
    """Microseconds from the call to the GARP's kernel receive timestamp, and until it returned."""
    wire: list[float] = []
    returned: list[float] = []
    for _ in range(samples):
        _drain(listener)
        t0 = time.time_ns()
        call()  # type: ignore[operator]
        t1 = time.time_ns()
        wire.append((_first_frame_ns(listener) - t0) / 1000)
        returned.append((t1 - t0) / 1000)
        time.sleep(0.002)
    return {"to_wire": wire, "returned": returned}


def rows_of(
    rates: dict[str, list[dict[str, float]]], announce: dict[str, dict[str, list[float]]]
) -> tuple[list[Row], dict[str, float]]:
    """Replies/s and CPU per reply per implementation, the judged capacity ratio, the announce
    latencies. The verdict uses capacity (1 / CPU per reply): see the module docstring."""
    labels = {"compiled": "compiled", "python": "pure Python (baseline)"}
    rows = [
        Row(
            f"AF_PACKET responder, {labels[impl]}: replies/s",
            "Mpps",
            [r["replies_per_s"] / 1e6 for r in runs],
        )
        for impl, runs in rates.items()
    ]
    rows += [
        Row(
            f"AF_PACKET responder, {labels[impl]}: CPU per reply",
            "us",
            [r["cpu_us_per_reply"] for r in runs],
        )
        for impl, runs in rates.items()
    ]

    def median(impl: str, key: str) -> float | None:
        values = [r[key] for r in rates.get(impl, [])]
        return statistics.median(values) if values else None

    ratios: dict[str, float] = {}
    fast, slow = median("compiled", "replies_per_s"), median("python", "replies_per_s")
    if fast and slow:
        ratios["replies/s: compiled / pure Python (p50)"] = fast / slow
    cheap, dear = median("compiled", "cpu_us_per_reply"), median("python", "cpu_us_per_reply")
    capacity = [dear / cheap] if cheap and dear else []
    if capacity:
        ratios["capacity (1 / CPU per reply): compiled / pure Python (p50)"] = capacity[0]
    rows.append(
        Row(
            "AF_PACKET capacity, compiled / pure Python",
            "x",
            capacity,
            (Target(TARGET_RATIO, "p50", op=">="),),
        )
    )
    for name, series in announce.items():
        rows.append(Row(f"announce, call -> first GARP at client: {name}", "us", series["to_wire"]))
    for name, series in announce.items():
        rows.append(Row(f"announce, call returns: {name}", "us", series["returned"]))
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=300)
    add_results_argument(parser)
    args = parser.parse_args()
    rates: dict[str, list[dict[str, float]]] = {"compiled": [], "python": []}
    with Testbed() as testbed:
        node, client = testbed.add_hosts("node", "client")
        _cable(node, client)
        for _ in range(args.repeats):
            for impl in ("compiled", "python"):
                rates[impl].append(
                    measure_replies(testbed, node, client, impl=impl, seconds=args.seconds)
                )
        announce = measure_announce(node, client, samples=args.samples)
    rows, ratios = rows_of(rates, announce)
    return publish(
        "dataplane_afpacket",
        title=f"dataplane (AF_PACKET): {args.repeats} x {args.seconds:g} s per responder",
        rows=rows,
        ratios=ratios,
        args={"seconds": args.seconds, "repeats": args.repeats, "samples": args.samples},
        extra={"replies": rates},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
