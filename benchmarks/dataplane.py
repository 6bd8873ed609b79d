"""XDP rows of the data plane benchmark: per-packet cost and replies per second over veth.

Run (root): ``.venv/bin/python benchmarks/dataplane.py [--repeats 5] [--frames 1000000]``

1. Per-packet cost through BPF_PROG_TEST_RUN. The kernel does not restore the frame between
   repetitions and the responder rewrites it, so a benchmark variant of the program first copies
   the request from a template map into the frame, then runs the responder; a second variant
   only restores. Cost = median(responder) - median(restore only), both measured in this run:
   ARP hit, NS hit, ARP miss. Target (DESIGN.md): ARP hit < 60 ns.
2. Replies per second over a veth pair between a generator and a node namespace. The generator
   transmits ARP requests for the VIP with BPF_PROG_TEST_RUN in live-frames mode (no pktgen
   here) and counts the replies coming back with an XDP program on its own end. The node
   answers with: the XDP responder in native mode, in generic mode, and the kernel itself (VIP
   on the interface, no XDP): the baseline. Rate = replies / time until the last reply.
   Targets: native >= 2.5 Mpps and >= 3x the kernel.

The AF_PACKET rows (compiled vs pure-Python userspace responder) are in
``benchmarks/dataplane_afpacket.py``. Prints one table and writes the shared result shape
(``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import ipaddress
import os
import platform
import secrets
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

from openelb.dataplane import bpfsys
from openelb.dataplane.responder import VipEntry
from openelb.dataplane.xdp import XdpResponder, read_counters
from openelb.dataplane.xdp_loader import attach, ensure_bpffs, load_program
from openelb.lab.benchresult import (
    Row,
    Target,
    add_results_argument,
    publish,
)
from openelb.lab.netns import Testbed, in_netns, run

ARP_HIT_NS = Target(60.0, "p50")
NATIVE_MPPS = Target(2.5, "p50", op=">=")
NATIVE_OVER_KERNEL = Target(3.0, "p50", op=">=")

OUR_MAC = bytes.fromhex("020e1b0000c8")
GEN_MAC = bytes.fromhex("020e1b0000a1")
VIP4 = ipaddress.IPv4Address("10.250.1.200")
GEN4 = ipaddress.IPv4Address("10.250.1.11")
VIP6 = ipaddress.IPv6Address("fd0e:1b:1::c8")
GEN6 = ipaddress.IPv6Address("fd0e:1b:1::11")

# Restores a fixed-length frame from a template, then runs the responder (or nothing). Written
# out per length in Python: bcc does not allow map calls inside C macros.
_BENCH_VARIANT = r"""
static __always_inline int oelb_restore_LEN(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct oelb_bench_frame *tpl = oelb_bench_tpl.lookup(&key);
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (!tpl || data + LEN > end)
		return -1;
	__builtin_memcpy(data, tpl->data, LEN);
	return 0;
}

int oelb_bench_respond_LEN(struct xdp_md *ctx)
{
	return oelb_restore_LEN(ctx) ? XDP_ABORTED : oelb_respond(ctx);
}

int oelb_bench_restore_LEN(struct xdp_md *ctx)
{
	return oelb_restore_LEN(ctx) ? XDP_ABORTED : XDP_TX;
}
"""
_BENCH_SOURCE = (
    "struct oelb_bench_frame { __u8 data[128]; };\n"
    "BPF_ARRAY(oelb_bench_tpl, struct oelb_bench_frame, 1);\n"
    + _BENCH_VARIANT.replace("LEN", "64")
    + _BENCH_VARIANT.replace("LEN", "86")
)

# Generator side: transmit every test-run frame, rewritten from the template each time (live
# frames recycle pages that the responder rewrote into replies); count ARP replies coming back.
_GEN_SOURCE = r"""
struct gen_frame { __u8 data[60]; };
BPF_ARRAY(gen_tpl, struct gen_frame, 1);
BPF_PERCPU_ARRAY(gen_replies, __u64, 1);

int gen_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	struct gen_frame *tpl = gen_tpl.lookup(&key);

	if (!tpl || data + 60 > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, tpl->data, 60);
	return XDP_TX;
}

int gen_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 key = 0;
	__u64 *count;

	if (data + 22 > end)
		return XDP_PASS;
	/* ethertype ARP and opcode 2 (reply) */
	if (p[12] != 0x08 || p[13] != 0x06 || p[20] != 0 || p[21] != 2)
		return XDP_PASS;
	count = gen_replies.lookup(&key);
	if (count)
		*count += 1;
	return XDP_DROP;
}
"""


def arp_request(*, pad_to: int = 64) -> bytes:
    frame = (
        b"\xff" * 6
        + GEN_MAC
        + b"\x08\x06"
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
        + GEN_MAC
        + GEN4.packed
        + bytes(6)
        + VIP4.packed
    )
    return frame + bytes(pad_to - len(frame))


def arp_miss() -> bytes:
    frame = bytearray(arp_request())
    frame[38:42] = ipaddress.IPv4Address("10.250.1.201").packed
    return bytes(frame)


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ns_request() -> bytes:
    """86 bytes: NS for VIP6 to its solicited-node group, with a source link-layer option."""
    group = ipaddress.IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + VIP6.packed[13:])
    icmp = struct.pack("!BBHI", 135, 0, 0, 0) + VIP6.packed + b"\x01\x01" + GEN_MAC
    pseudo = GEN6.packed + group.packed + struct.pack("!IxxxB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", _checksum(pseudo + icmp)) + icmp[4:]
    ip6 = struct.pack("!IHBB", 0x60000000, len(icmp), 58, 255) + GEN6.packed + group.packed
    return b"\x33\x33" + group.packed[12:] + GEN_MAC + b"\x86\xdd" + ip6 + icmp


# --- 1. per-packet cost ---------------------------------------------------------------------------


def bench_cost(pin_root: Path, *, repeats: int, runs: int) -> tuple[list[Row], dict[str, float]]:
    program = load_program(
        pin_dir=pin_root / f"bench{secrets.token_hex(3)}", extra_source=_BENCH_SOURCE
    )
    try:
        responder = XdpResponder(program, (), generic=True)
        responder.sync([VipEntry(1, VIP4, OUR_MAC), VipEntry(1, VIP6, OUR_MAC)])
        responder.refresh_gate(3600.0)
        tpl_fd = int(program.bpf[b"oelb_bench_tpl"].map_fd)
        cases = {
            "ARP hit": (arp_request(), 64, 3),
            "NS hit": (ns_request(), 86, 3),
            "ARP miss": (arp_miss(), 64, 2),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        floors: dict[int, list[float]] = {64: [], 86: []}
        fds = {
            length: (
                program.extra_fd(f"oelb_bench_respond_{length}"),
                program.extra_fd(f"oelb_bench_restore_{length}"),
            )
            for length in floors
        }
        for _ in range(repeats):
            for name, (frame, length, verdict) in cases.items():
                assert len(frame) == length, (name, len(frame))
                template = frame + bytes(128 - len(frame))
                bpfsys.map_update(tpl_fd, struct.pack("I", 0), template)
                respond_fd, restore_fd = fds[length]
                result = bpfsys.prog_test_run(respond_fd, frame, repeat=runs)
                if result.retval != verdict:
                    raise SystemExit(f"{name}: verdict {result.retval}, expected {verdict}")
                samples[name].append(result.duration_ns)
                floors[length].append(
                    bpfsys.prog_test_run(restore_fd, frame, repeat=runs).duration_ns
                )
        counts = responder.counters()
    finally:
        program.close()
    floor = {length: statistics.median(values) for length, values in floors.items()}
    rows = []
    for name, (_frame, length, _verdict) in cases.items():
        net = [s - floor[length] for s in samples[name]]
        targets = (ARP_HIT_NS,) if name == "ARP hit" else ()
        rows.append(Row(f"XDP cost: {name} (minus restore)", "ns", net, targets))
    rows.append(Row("XDP cost: restore only, 64 B (harness floor)", "ns", floors[64]))
    info = {"arp_replies": float(counts["arp_reply"]), "ns_replies": float(counts["ns_reply"])}
    return rows, info


# --- 2. replies per second over veth --------------------------------------------------------------

_SIOCETHTOOL = 0x8946
_ETHTOOL_SGRO = 0x0000002C


def set_gro(iface: str, on: bool) -> None:
    """Enable GRO on a veth (in this thread's netns): it gives the veth a NAPI context, which
    frames transmitted by XDP on the peer need when this end runs no native XDP program."""
    value = ctypes.create_string_buffer(struct.pack("II", _ETHTOOL_SGRO, int(on)))
    ifreq = struct.pack("16sQ", iface.encode(), ctypes.addressof(value)) + bytes(16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)


class VethRig:
    """Generator namespace <-veth-> node namespace, built inside a testbed (torn down with it)."""

    def __init__(self, testbed: Testbed, pin_root: Path) -> None:
        self.gen_ns = f"{testbed.run_id}-gen"
        self.node_ns = f"{testbed.run_id}-node"
        for ns in (self.gen_ns, self.node_ns):
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.gen_ns, "link", "add", "veth0", "type", "veth", "peer", "name",
             "veth0", "netns", self.node_ns])  # fmt: skip
        run(["ip", "-n", self.gen_ns, "link", "set", "veth0", "address", GEN_MAC.hex(":"), "up"])
        run(["ip", "-n", self.node_ns, "link", "set", "veth0", "address", OUR_MAC.hex(":"), "up"])
        run(["ip", "-n", self.gen_ns, "addr", "add", f"{GEN4}/24", "dev", "veth0"])
        run(["ip", "-n", self.node_ns, "addr", "add", f"{VIP4}/24", "dev", "veth0"])
        self.pin_root = pin_root
        import bcc

        self.gen = bcc.BPF(text=_GEN_SOURCE.encode())
        self.tx_fd = int(self.gen.load_func(b"gen_tx", bcc.BPF.XDP).fd)
        self.count_fd = int(self.gen.load_func(b"gen_count", bcc.BPF.XDP).fd)
        self.replies_fd = int(self.gen[b"gen_replies"].map_fd)
        tpl_fd = int(self.gen[b"gen_tpl"].map_fd)
        bpfsys.map_update(tpl_fd, struct.pack("I", 0), arp_request(pad_to=60))
        with in_netns(self.gen_ns):
            self.gen_ifindex = socket.if_nametoindex("veth0")
            attach("veth0", self.count_fd, generic=False)

    def replies(self) -> int:
        raw = bpfsys.map_lookup(self.replies_fd, struct.pack("I", 0), 8 * bpfsys.possible_cpus())
        return sum(struct.unpack(f"{bpfsys.possible_cpus()}Q", raw or b""))

    def flood(self, frames: int) -> float:
        """Send ``frames`` ARP requests; replies per second until the last reply arrived."""
        frame = arp_request(pad_to=60)
        start_count = self.replies()
        with in_netns(self.gen_ns):
            start = time.perf_counter()
            bpfsys.prog_test_run(
                self.tx_fd,
                frame,
                repeat=frames,
                ctx=bpfsys.xdp_ctx(len(frame), ingress_ifindex=self.gen_ifindex),
                flags=bpfsys.BPF_F_TEST_XDP_LIVE_FRAMES,
                batch_size=256,
            )
        last, last_change = self.replies(), time.perf_counter()
        while time.perf_counter() - last_change < 0.05:
            time.sleep(0.002)
            now = self.replies()
            if now != last:
                last, last_change = now, time.perf_counter()
        return (last - start_count) / (last_change - start)

    def with_node(self, setup: str) -> XdpResponder | None:
        """Configure the node end: "xdp-native", "xdp-generic" or "kernel"."""
        with in_netns(self.node_ns):
            set_gro("veth0", setup != "xdp-native")
            if setup == "kernel":
                return None
            program = load_program(pin_dir=self.pin_root / f"veth{secrets.token_hex(3)}")
            attach("veth0", program.prog_fd, generic=setup == "xdp-generic")
            responder = XdpResponder(program, ("veth0",), generic=setup == "xdp-generic")
            responder.sync([VipEntry.on("veth0", VIP4)])
            responder.refresh_gate(3600.0)
            return responder

    def without_node(self, responder: XdpResponder | None) -> None:
        if responder is not None:
            with in_netns(self.node_ns):
                responder.close(detach=True)

    def close(self) -> None:
        for ns in (self.gen_ns, self.node_ns):
            run(["ip", "netns", "del", ns], check=False)
        self.gen.cleanup()


def bench_veth(pin_root: Path, *, repeats: int, frames: int) -> tuple[list[Row], dict[str, float]]:
    rows: dict[str, Row] = {}
    extra: dict[str, float] = {}
    with Testbed() as testbed:
        rig = VethRig(testbed, pin_root)
        try:
            for setup in ("kernel", "xdp-generic", "xdp-native"):
                responder = rig.with_node(setup)
                try:
                    rig.flood(min(frames, 10000))  # warm up: neighbour entries, caches
                    count = frames if setup != "kernel" else max(frames // 4, 10000)
                    samples = [rig.flood(count) / 1e6 for _ in range(repeats)]
                    if responder is not None:
                        extra[f"{setup} arp_reply counter"] = float(
                            read_counters(responder.program.counters_fd)["arp_reply"]
                        )
                finally:
                    rig.without_node(responder)
                rows[setup] = Row(f"ARP replies over veth: {setup}", "Mpps", samples)
        finally:
            rig.close()
    return list(rows.values()), extra


def veth_ratios(rows: list[Row]) -> tuple[list[Row], dict[str, float]]:
    """The native rate's targets: >= 2.5 Mpps, and >= 3x the kernel's rate in the same rig (a
    row of its own, so the report quotes the ratio it judged)."""
    by_setup = {r.name.rsplit(": ", 1)[-1]: r for r in rows}
    kernel = by_setup["kernel"].stat("p50")
    native = by_setup["xdp-native"]
    native.targets = (NATIVE_MPPS,)
    ratios: dict[str, float] = {}
    if kernel:
        for setup in ("xdp-native", "xdp-generic"):
            value = by_setup[setup].stat("p50")
            if value is not None:
                ratios[f"{setup} / kernel (p50)"] = value / kernel
    judged = ratios.get("xdp-native / kernel (p50)")
    ratio_row = Row(
        "ARP replies over veth: xdp-native / kernel",
        "x",
        [] if judged is None else [judged],
        (NATIVE_OVER_KERNEL,),
    )
    return [*rows, ratio_row], ratios


# --- report --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200_000, help="test-run repetitions")
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames per veth flood")
    parser.add_argument("--skip-veth", action="store_true")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/dataplane.py needs root (BPF, namespaces)", file=sys.stderr)
        return 2
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="oelb-bench-") as tmp:
        pin_root = Path(tmp) / "bpffs"
        ensure_bpffs(pin_root)  # a private bpffs instance, unmounted below
        try:
            rows, counters = bench_cost(pin_root, repeats=args.repeats, runs=args.runs)
            if not args.skip_veth:
                veth_rows, veth_counters = bench_veth(
                    pin_root, repeats=args.repeats, frames=args.frames
                )
                veth_rows, ratios = veth_ratios(veth_rows)
                rows += veth_rows
                counters.update(veth_counters)
        finally:
            run(["umount", "-l", str(pin_root)], check=False)
    return publish(
        "dataplane",
        title=f"dataplane (XDP): {args.repeats} repeats, kernel {platform.release()}",
        rows=rows,
        ratios=ratios,
        args=vars(args) | {"results": str(args.results or "")},
        extra={"kernel": platform.release(), "counters": counters},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
