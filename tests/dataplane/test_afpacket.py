"""The AF_PACKET fallback responder in namespaces: real arping and ndisc6 get the owner's MAC."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from openelb.dataplane import packet
from openelb.dataplane.afpacket import AfPacketResponder, open_afpacket
from openelb.dataplane.announcing import AnnounceSender
from openelb.dataplane.multicast import SolicitedNodeGroups
from openelb.dataplane.responder import COUNTER_REASONS, DataplaneError, VipEntry, open_responder
from openelb.lab.netns import Host, Testbed, in_netns
from openelb.lab.pcap import Frame

pytestmark = pytest.mark.netns

VIP4 = "10.250.0.200"
VIP6 = "fd0e:1b::c8"

MODULES = [
    pytest.param(packet.compiled_impl(), id="c-packet"),
    pytest.param(packet.python_impl, id="py-packet"),
]


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(params=MODULES)
def node(
    request: pytest.FixtureRequest, testbed: Testbed
) -> Iterator[tuple[Host, Host, AfPacketResponder]]:
    """A node answering for VIP4 and VIP6 with the AF_PACKET responder, and a client."""
    module = request.param
    if module is None:
        pytest.fail("compiled packet module is not built: run `make setup`")
    owner, client = testbed.add_hosts("node", "client")
    groups = SolicitedNodeGroups()
    with in_netns(owner.netns):
        responder = AfPacketResponder(["eth0"], reason="test", packet_module=module)
        responder.sync([VipEntry.on("eth0", VIP4), VipEntry.on("eth0", VIP6)])
        groups.join("eth0", VIP6)
    responder.refresh_gate(60.0)
    try:
        yield owner, client, responder
    finally:
        responder.close(detach=True)
        groups.close()


def test_arping_gets_the_owner_mac(node: tuple[Host, Host, AfPacketResponder]) -> None:
    owner, client, responder = node
    out = client.run(["arping", "-c", "2", "-w", "3", "-I", "eth0", VIP4], check=False).stdout
    macs = {m.lower() for m in re.findall(r"\[([0-9A-Fa-f:]{17})\]", out)}
    assert macs == {owner.mac}, out  # answered by us, and by nobody else (not the kernel)
    counters = responder.counters()
    assert counters["arp_reply"] >= 1 and set(counters) == set(COUNTER_REASONS)


def test_ndisc6_gets_the_owner_mac(node: tuple[Host, Host, AfPacketResponder]) -> None:
    owner, client, responder = node
    out = client.run(["ndisc6", "-1", "-r", "3", "-w", "1000", VIP6, "eth0"], check=False).stdout
    assert f"Target link-layer address: {owner.mac.upper()}" in out, out
    assert responder.counters()["ns_reply"] >= 1


def test_the_client_caches_the_owner_mac_for_ipv4_and_ipv6(
    node: tuple[Host, Host, AfPacketResponder],
) -> None:
    owner, client, _ = node
    client.run(["ping", "-c", "1", "-W", "1", VIP4], check=False)  # no one holds the IP itself
    client.run(["ping", "-6", "-c", "1", "-W", "1", VIP6], check=False)
    assert client.neighbour(VIP4)[0] == owner.mac  # type: ignore[index]
    assert client.neighbour(VIP6)[0] == owner.mac  # type: ignore[index]


def test_nothing_is_answered_once_the_gate_closes(
    node: tuple[Host, Host, AfPacketResponder],
) -> None:
    _, client, responder = node
    responder.close_gate()
    assert not responder.gate_open()
    done = client.run(["arping", "-c", "1", "-w", "1", "-I", "eth0", VIP4], check=False)
    assert "reply from" not in done.stdout.lower()
    assert _wait_for(lambda: responder.counters()["gate_closed"] >= 1)


def test_a_removed_vip_is_no_longer_answered(node: tuple[Host, Host, AfPacketResponder]) -> None:
    _, client, responder = node
    (entry4,) = [e for e in responder.entries() if e.version == 4]
    responder.remove(entry4)
    done = client.run(["arping", "-c", "1", "-w", "1", "-I", "eth0", VIP4], check=False)
    assert "reply from" not in done.stdout.lower()
    assert _wait_for(lambda: responder.counters()["miss"] >= 1)


def test_another_host_announcing_our_vip_is_reported_as_a_conflict(
    node: tuple[Host, Host, AfPacketResponder],
) -> None:
    _, client, responder = node
    with in_netns(client.netns), AnnounceSender() as sender:
        sender.announce("eth0", [VIP4, VIP6])
    seen = responder.conflicts(timeout=3.0)
    deadline = time.monotonic() + 3.0
    while len({c.ip.version for c in seen}) < 2 and time.monotonic() < deadline:
        seen += responder.conflicts(timeout=0.2)
    claimed = {(str(c.ip), c.mac.hex(":")) for c in seen}
    assert (VIP4, client.mac) in claimed and (VIP6, client.mac) in claimed
    assert responder.counters()["conflict"] >= 2


def test_sync_reports_changes_and_refuses_foreign_interfaces(
    node: tuple[Host, Host, AfPacketResponder],
) -> None:
    owner, _, responder = node
    with in_netns(owner.netns):
        keep = VipEntry.on("eth0", VIP4)
        other = VipEntry.on("eth0", "10.250.0.201")
        result = responder.sync([keep, other])
        assert result.added == (other,) and result.unchanged == 1 and len(result.removed) == 1
        assert responder.entries() == {keep, other}
        with pytest.raises(DataplaneError, match="not one this responder listens on"):
            responder.add(VipEntry.on("lo", "10.250.0.202"))
    assert responder.gate_handle() is None and responder.mode == "afpacket"
    expected = "rx-ring" if responder.packet_module == "compiled" else "recv"
    assert responder.receive_path == expected


def test_open_responder_falls_back_to_afpacket_by_name(testbed: Testbed) -> None:
    (owner,) = testbed.add_hosts("node")
    with in_netns(owner.netns):
        responder = open_responder(["eth0"], mode="afpacket")
    try:
        assert responder.mode == "afpacket"
        assert isinstance(responder, AfPacketResponder)
    finally:
        responder.close(detach=True)


def test_opening_on_a_missing_interface_says_which(testbed: Testbed) -> None:
    (owner,) = testbed.add_hosts("node")
    with in_netns(owner.netns), pytest.raises(DataplaneError, match="nope0"):
        open_afpacket(["nope0"], reason="")


def test_refresh_gate_rejects_a_non_positive_age(
    node: tuple[Host, Host, AfPacketResponder],
) -> None:
    with pytest.raises(ValueError, match="max_age"):
        node[2].refresh_gate(0)


def test_ipaddress_types_round_trip_in_entries(node: tuple[Host, Host, AfPacketResponder]) -> None:
    assert {e.ip for e in node[2].entries()} == {
        ipaddress.ip_address(VIP4),
        ipaddress.ip_address(VIP6),
    }


@pytest.mark.parametrize("ring", [True, False], ids=["rx-ring", "recvmmsg"])
def test_compiled_core_answers_through_either_receive_path(testbed: Testbed, ring: bool) -> None:
    from openelb.dataplane.afpacket import open_listener

    compiled = packet.compiled_impl()
    assert compiled is not None, "compiled packet module is not built: run `make setup`"
    owner, client = testbed.add_hosts("node", "client")
    with in_netns(owner.netns):
        sock = open_listener("eth0")
    core = compiled.ResponderCore(sock.fileno(), 8, ring)  # type: ignore[call-arg]
    try:
        assert core.uses_ring is ring  # type: ignore[attr-defined]
        mac = bytes.fromhex(owner.mac.replace(":", ""))
        core.set_table({ipaddress.ip_address(VIP4).packed: mac})
        arping = client.spawn(["arping", "-c", "3", "-w", "3", "-I", "eth0", VIP4])
        assert _wait_for(lambda: core.service() >= 0 and core.counters[0] >= 1)
        arping.popen.wait(5)
        assert f"[{owner.mac.upper()}]" in arping.log()
    finally:
        core.close()
        sock.close()


def _send_tagged_requests(client: Host, *, count: int = 3) -> None:
    """ARP requests for VIP4 in VLAN 100, sent raw (this kernel has no 8021q module)."""
    mac = bytes.fromhex(client.mac.replace(":", ""))
    request = (
        b"\xff" * 6
        + mac
        + b"\x81\x00\x00\x64"
        + b"\x08\x06"
        + bytes.fromhex("000108000604")
        + b"\x00\x01"
        + mac
        + client.ipv4.ip.packed
        + bytes(6)
        + ipaddress.IPv4Address(VIP4).packed
        + bytes(14)
    )
    with in_netns(client.netns), socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind(("eth0", 0))
        for _ in range(count):
            sock.send(request)
            time.sleep(0.1)


def _assert_tagged_reply(frames: list[Frame], owner: Host, client: Host) -> None:
    replies = [f for f in frames if f.arp is not None and f.arp.op == 2]
    assert replies, [f.data.hex() for f in frames]
    assert replies[0].data[12:16] == b"\x81\x00\x00\x64"  # the tag, kept
    assert replies[0].arp.sha == owner.mac and replies[0].dst == client.mac  # type: ignore[union-attr]


def test_a_tagged_request_is_answered_with_its_vlan_tag(
    node: tuple[Host, Host, AfPacketResponder],
) -> None:
    """A request in VLAN 100 gets its reply in VLAN 100, as from the XDP program: the kernel
    strips the tag before AF_PACKET sees the frame, the responder puts it back."""
    owner, client, _ = node
    cap = client.capture("vlan 100 and arp")
    try:
        _send_tagged_requests(client)
    finally:
        frames = cap.stop()
    _assert_tagged_reply(frames, owner, client)


def test_the_recvmmsg_path_keeps_vlan_tags_too(testbed: Testbed) -> None:
    from openelb.dataplane.afpacket import open_listener

    compiled = packet.compiled_impl()
    assert compiled is not None, "compiled packet module is not built: run `make setup`"
    owner, client = testbed.add_hosts("node", "client")
    with in_netns(owner.netns):
        sock = open_listener("eth0")
    core = compiled.ResponderCore(sock.fileno(), 8, False)  # type: ignore[call-arg]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            core.service()
            time.sleep(0.005)

    core.set_table({ipaddress.ip_address(VIP4).packed: bytes.fromhex(owner.mac.replace(":", ""))})
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        cap = client.capture("vlan 100 and arp")
        try:
            _send_tagged_requests(client)
        finally:
            frames = cap.stop()
        _assert_tagged_reply(frames, owner, client)
    finally:
        stop.set()
        server.join(5)
        core.close()
        sock.close()
