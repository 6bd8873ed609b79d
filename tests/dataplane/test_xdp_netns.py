"""The XDP responder on real interfaces: real arping and ndisc6 from a client get the owner's
MAC, in native and generic mode; the kernel does not answer as well; the liveness gate and a
speaker restart behave on the wire."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from openelb.dataplane.responder import Responder, VipEntry, open_responder
from openelb.dataplane.xdp_loader import attach_pass_program, attached_program_id
from openelb.lab.netns import Testbed, in_netns

pytestmark = [pytest.mark.bpf, pytest.mark.netns]

VIRTUAL_MAC = bytes.fromhex("020e1b00aaaa")
_REPLY = re.compile(r"reply from \S+ \[([0-9A-Fa-f:]+)\]")
_TARGET_LL = re.compile(r"Target link-layer address: ([0-9A-Fa-f:]+)")


def _mac(raw: bytes) -> str:
    return raw.hex(":")


class Rig:
    """A client and a node on the testbed switch, the node running the XDP responder."""

    def __init__(self, testbed: Testbed, bpffs: Path, mode: str) -> None:
        self.testbed = testbed
        self.client, self.node = testbed.add_hosts("client", "node")
        self.vip4 = ipaddress.IPv4Address(testbed.subnet4[200])
        self.vip6 = ipaddress.IPv6Address(testbed.subnet6[0xC8])
        self.bpffs = bpffs
        self.mode = mode
        self.instance = f"n{secrets.token_hex(4)}"
        if mode == "xdp-native":
            # Native XDP_TX on veth needs a program on the receiving peer (the switch port).
            with in_netns(testbed.switch_netns):
                attach_pass_program(self.node.port)

    def open(self) -> Responder:
        with in_netns(self.node.netns):
            return open_responder(
                ["eth0"], mode=self.mode, pin_root=self.bpffs, instance=self.instance
            )  # type: ignore[arg-type]

    def entries(self, mac: bytes | None = None) -> list[VipEntry]:
        with in_netns(self.node.netns):
            return [VipEntry.on("eth0", self.vip4, mac), VipEntry.on("eth0", self.vip6, mac)]

    def close(self, responder: Responder, *, detach: bool = True) -> None:
        with in_netns(self.node.netns):
            responder.close(detach=detach)

    def arping(self, count: int = 3, *, wait: int = 3) -> list[str]:
        cmd = ["arping", "-c", str(count), "-w", str(wait), "-I", "eth0"]
        out = self.client.run([*cmd, str(self.vip4)], check=False).stdout
        return [m.lower() for m in _REPLY.findall(out)]

    def ndisc6(self) -> list[str]:
        out = self.client.run(
            ["ndisc6", "-n", "-m", "-r", "1", "-w", "1000", str(self.vip6), "eth0"], check=False
        ).stdout
        return [m.lower() for m in _TARGET_LL.findall(out)]


@pytest.fixture(params=["xdp-native", "xdp-generic"])
def rig(request: pytest.FixtureRequest, testbed: Testbed, bpffs: Path) -> Rig:
    return Rig(testbed, bpffs, request.param)


@contextlib.contextmanager
def running(rig: Rig, mac: bytes | None = None) -> Iterator[Responder]:
    responder = rig.open()
    try:
        responder.sync(rig.entries(mac))
        responder.refresh_gate(60.0)
        yield responder
    finally:
        rig.close(responder)


def test_arping_and_ndisc6_get_the_owner_mac(rig: Rig) -> None:
    with running(rig) as responder:
        assert responder.mode == rig.mode
        assert rig.arping() == [rig.node.mac] * 3
        assert rig.ndisc6() == [rig.node.mac]
        counters = responder.counters()
        assert counters["arp_reply"] >= 3 and counters["ns_reply"] >= 1
        prog_id, mode = attached_program_id("eth0", rig.node.netns)
        assert prog_id > 0 and mode == rig.mode.removeprefix("xdp-")
    assert attached_program_id("eth0", rig.node.netns) == (0, "")


def test_the_kernel_does_not_answer_as_well(rig: Rig) -> None:
    # The node's kernel holds the VIPs too and would answer with the NIC's MAC; the program
    # answers with a virtual MAC and consumes the request, so only that MAC comes back.
    node = rig.node
    node.run(["ip", "addr", "add", f"{rig.vip4}/32", "dev", "eth0"])
    node.run(["ip", "addr", "add", f"{rig.vip6}/128", "dev", "eth0", "nodad"])
    assert rig.arping(1) == [node.mac]  # the kernel answers before the program runs
    with running(rig, VIRTUAL_MAC):
        cap = rig.client.capture("arp or icmp6")
        assert rig.arping() == [_mac(VIRTUAL_MAC)] * 3
        assert rig.ndisc6() == [_mac(VIRTUAL_MAC)]
        frames = cap.stop()
    arp_replies = [f.arp for f in frames if f.arp and f.arp.op == 2]
    advertisements = [f for f in frames if f.icmp6 and f.icmp6.type == 136]
    assert [a.sha for a in arp_replies] == [_mac(VIRTUAL_MAC)] * 3
    assert [f.src for f in advertisements] == [_mac(VIRTUAL_MAC)]


def test_a_closed_gate_stops_the_answers(rig: Rig) -> None:
    with running(rig) as responder:
        responder.close_gate()
        assert rig.arping(2, wait=1) == []
        assert responder.counters()["gate_closed"] >= 2
        responder.refresh_gate(60.0)
        assert rig.arping(1) == [rig.node.mac]


def test_a_restarted_speaker_reuses_the_pinned_program_and_maps(rig: Rig) -> None:
    first = rig.open()
    try:
        first.sync(rig.entries())
        first.refresh_gate(60.0)
        rig.close(first, detach=False)  # the speaker process goes away, the program stays
        assert rig.arping(1) == [rig.node.mac]
        second = rig.open()
    except BaseException:
        rig.close(first)
        raise
    try:
        assert second.entries() == set(rig.entries())
        assert second.counters()["arp_reply"] >= 1  # counters survive too
        assert second.gate_open()
        assert rig.arping(1) == [rig.node.mac]
    finally:
        rig.close(second)
    assert not (rig.bpffs / rig.instance).exists()


def test_auto_mode_takes_generic_xdp_on_veth_and_says_why(testbed: Testbed, bpffs: Path) -> None:
    rig = Rig(testbed, bpffs, "auto")
    with running(rig) as responder:
        assert responder.mode == "xdp-generic"
        assert "xdp-native" in responder.reason and "veth" in responder.reason
        assert rig.arping(1) == [rig.node.mac]


def test_a_missing_interface_is_a_clear_error(testbed: Testbed, bpffs: Path) -> None:
    from openelb.dataplane.responder import DataplaneError

    node = testbed.add_host("node")
    with in_netns(node.netns), pytest.raises(DataplaneError, match="nope0"):
        open_responder(["nope0"], mode="xdp-generic", pin_root=bpffs, instance="missing")
