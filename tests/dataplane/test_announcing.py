"""Announcements move a real Linux client's neighbour entry; probes find a host holding an IP."""

from __future__ import annotations

import time

import pytest

from openelb.dataplane.announcing import AnnounceSender, claimant
from openelb.dataplane.responder import DataplaneError
from openelb.lab.netns import Host, Testbed, in_netns
from tests.dataplane import frame_cases as fc

VIP4 = "10.250.0.200"
VIP6 = "fd0e:1b::c8"
OLD_MAC = "02:0e:1b:00:ee:ee"


def _moved(client: Host, ip: str, mac: str, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = client.neighbour(ip)
        if entry is not None and entry[0] == mac:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.netns
@pytest.mark.parametrize("state", ["reachable", "stale"])
def test_announce_moves_the_client_to_the_new_mac_for_ipv4_and_ipv6(
    testbed: Testbed, state: str
) -> None:
    node, client = testbed.add_hosts("node", "client")
    for ip in (VIP4, VIP6):
        client.run(["ip", "neigh", "replace", ip, "lladdr", OLD_MAC, "dev", "eth0", "nud", state])
    with in_netns(node.netns), AnnounceSender() as sender:
        assert sender.open("eth0").hex(":") == node.mac
        cap = client.capture("arp or icmp6")
        try:
            sent = sender.announce("eth0", [VIP4, VIP6])
            assert _moved(client, VIP4, node.mac) and _moved(client, VIP6, node.mac)
            time.sleep(0.2)  # let tcpdump write the last frames
        finally:
            frames = cap.stop()
    assert sent == 3  # GARP request form, unsolicited NA, GARP reply form
    garps = [f.arp for f in frames if f.arp is not None]
    assert [(a.op, a.spa, a.tpa, a.sha) for a in garps][:2] == [
        (1, VIP4, VIP4, node.mac),
        (2, VIP4, VIP4, node.mac),
    ]
    assert garps[1].tha == node.mac  # reply form: target MAC = sender MAC
    nas = [f.icmp6 for f in frames if f.icmp6 is not None and f.icmp6.type == 136]
    assert nas and nas[0].dst == "ff02::1" and nas[0].flags == 0x20 and nas[0].target == VIP6


@pytest.mark.netns
def test_announce_with_an_explicit_mac(testbed: Testbed) -> None:
    node, client = testbed.add_hosts("node", "client")
    client.run(["ip", "neigh", "replace", VIP4, "lladdr", OLD_MAC, "dev", "eth0", "nud", "stale"])
    other = bytes.fromhex("020e1b00dddd")
    with in_netns(node.netns), AnnounceSender() as sender:
        assert sender.announce("eth0", [VIP4], mac=other) == 2
    assert _moved(client, VIP4, other.hex(":"))


@pytest.mark.netns
def test_probe_finds_the_host_holding_an_address_and_none_for_a_free_one(
    testbed: Testbed,
) -> None:
    node, holder = testbed.add_hosts("node", "holder")
    with in_netns(node.netns), AnnounceSender() as sender:
        assert sender.probe("eth0", str(holder.ipv4.ip), wait=0.5) == bytes.fromhex(
            holder.mac.replace(":", "")
        )
        assert sender.probe("eth0", str(holder.ipv6.ip), wait=0.5, count=2) == bytes.fromhex(
            holder.mac.replace(":", "")
        )
        assert sender.probe("eth0", VIP4, wait=0.05) is None
        assert sender.probe("eth0", VIP6, wait=0.05) is None


@pytest.mark.netns
def test_bad_input_is_refused_clearly(testbed: Testbed) -> None:
    (node,) = testbed.add_hosts("node")
    with in_netns(node.netns), AnnounceSender() as sender:
        with pytest.raises(DataplaneError, match="not an IP address"):
            sender.announce("eth0", ["10.250.0.300"])
        with pytest.raises(DataplaneError, match="nope0"):
            sender.open("nope0")
        with pytest.raises(DataplaneError, match="6 bytes"):
            sender.announce("eth0", [VIP4], mac=b"\x01")
        with pytest.raises(ValueError, match="wait > 0"):
            sender.probe("eth0", VIP4, wait=0)
        assert sender.announce("eth0", []) == 0


def test_claimant_recognises_replies_announcements_and_probes_from_others() -> None:
    own = fc.OWNER_MAC
    reply = fc.arp(op=2, sha=fc.OTHER_MAC, spa=fc.VIP4, tpa=fc.CLIENT4)
    assert claimant(reply, fc.VIP4, own) == fc.OTHER_MAC
    rival_probe = fc.arp(sha=fc.OTHER_MAC, spa=bytes(4), tpa=fc.VIP4)
    assert claimant(rival_probe, fc.VIP4, own) == fc.OTHER_MAC
    assert claimant(fc.arp(sha=own, spa=fc.VIP4), fc.VIP4, own) is None  # our own frame
    assert claimant(fc.arp(), fc.VIP4, own) is None  # someone asking for it is no claim
    advert = fc.na(
        target=fc.VIP6, dst=fc.ALL_NODES, eth_dst=fc.BROADCAST, mac=fc.OTHER_MAC, flags=0x20
    )
    assert claimant(advert, fc.VIP6, own) == fc.OTHER_MAC
    rival_dad = fc.ns(src=fc.ZERO6, slla=None)
    assert claimant(rival_dad, fc.VIP6, own) == fc.CLIENT_MAC
    assert claimant(fc.ns(), fc.VIP6, own) is None
    assert claimant(b"\x00" * 8, fc.VIP4, own) is None
