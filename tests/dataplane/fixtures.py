"""ARP/NDP packet fixtures as data: frame in, verdict, frame out, counter reason.

The single source of truth for what a responder must do with a frame. The XDP program is
checked against them through BPF_PROG_TEST_RUN (``test_xdp_program.py``); the userspace
responders (compiled and pure Python) are meant to be checked against the same cases byte for
byte. Every case runs with the entries in :data:`OWNED` installed on interface :data:`IFINDEX`
and the liveness gate open unless ``gate_open`` is False.

Reply conventions (shared by every implementation):
- ARP: the reply is the request rewritten in place (same length, VLAN tags and Ethernet padding
  kept): Ethernet to the requester's sender hardware address, from our MAC; op 2; sha/spa ours;
  tha/tpa the requester's (tpa 0.0.0.0 for an RFC 5227 probe).
- NS: the reply is an NA of exactly L2 + 40 + 32 bytes (VLAN tags kept): Ethernet to the
  requester's Ethernet source (33:33:00:00:00:01 for DAD), from our MAC; IPv6 version 6, traffic
  class and flow label 0, hop limit 255, from the target to the requester (ff02::1 for DAD);
  flags S|O (O only for DAD); one target link-layer address option with our MAC.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

IFINDEX = 1
"""BPF_PROG_TEST_RUN runs frames as received on the loopback device (ifindex 1)."""

OUR_MAC = bytes.fromhex("020e1b0000c8")
PEER_MAC = bytes.fromhex("020e1b000011")
OTHER_MAC = bytes.fromhex("020e1b0000ee")
BROADCAST = b"\xff" * 6

VIP4 = ipaddress.IPv4Address("10.250.0.200")
PEER4 = ipaddress.IPv4Address("10.250.0.11")
GATEWAY4 = ipaddress.IPv4Address("10.250.0.1")
NOT_OURS4 = ipaddress.IPv4Address("10.250.0.201")

VIP6 = ipaddress.IPv6Address("fd0e:1b::c8")
PEER6 = ipaddress.IPv6Address("fd0e:1b::11")
NOT_OURS6 = ipaddress.IPv6Address("fd0e:1b::c9")
ALL_NODES = ipaddress.IPv6Address("ff02::1")
UNSPECIFIED6 = ipaddress.IPv6Address("::")

OWNED: tuple[tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address, bytes], ...] = (
    (IFINDEX, VIP4, OUR_MAC),
    (IFINDEX, VIP6, OUR_MAC),
)
"""(ifindex, VIP, MAC) entries installed for every case."""


@dataclass(frozen=True)
class Case:
    """One frame and what a responder must do with it."""

    name: str
    description: str
    frame: bytes
    verdict: str
    """"tx" (answer with ``reply``) or "pass" (leave the frame to the kernel)."""
    reply: bytes | None = None
    reason: str | None = None
    """The counter that goes up by one (None: not an ARP/NDP frame we count)."""
    gate_open: bool = True
    conflict_mac: bytes | None = None
    """For conflicts: the other host's MAC the responder must report."""


# --- frame builders (independent of every implementation under test) -----------------------------


def eth(dst: bytes, src: bytes, ethertype: int, *, vlans: Tags = ()) -> bytes:
    """Ethernet header with ``vlans`` as (TPID, VID) tags, outermost first."""
    out = dst + src
    for tpid, vid in vlans:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", ethertype)


def arp(
    op: int,
    sha: bytes,
    spa: ipaddress.IPv4Address | str,
    tha: bytes,
    tpa: ipaddress.IPv4Address | str,
    *,
    hrd: int = 1,
    pro: int = 0x0800,
    hln: int = 6,
    pln: int = 4,
) -> bytes:
    return (
        struct.pack("!HHBBH", hrd, pro, hln, pln, op)
        + sha
        + ipaddress.IPv4Address(spa).packed
        + tha
        + ipaddress.IPv4Address(tpa).packed
    )


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv6(
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    icmp: bytes,
    *,
    hop_limit: int = 255,
    fix_checksum: bool = True,
    payload_len: int | None = None,
    flow: int = 0,
) -> bytes:
    """IPv6 header + ICMPv6 message, with the ICMPv6 checksum computed unless told not to."""
    if fix_checksum:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(icmp), 58)
        icmp = icmp[:2] + b"\x00\x00" + icmp[4:]
        icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
    length = len(icmp) if payload_len is None else payload_len
    header = struct.pack("!IHBB", 0x60000000 | flow, length, 58, hop_limit)
    return header + src.packed + dst.packed + icmp


def ns(target: ipaddress.IPv6Address, *options: bytes, code: int = 0) -> bytes:
    return struct.pack("!BBHI", 135, code, 0, 0) + target.packed + b"".join(options)


def na(target: ipaddress.IPv6Address, flags: int, *options: bytes) -> bytes:
    return struct.pack("!BBHB3x", 136, 0, 0, flags) + target.packed + b"".join(options)


def lla(kind: int, mac: bytes) -> bytes:
    """Source (1) or target (2) link-layer address option."""
    return struct.pack("!BB", kind, 1) + mac


def solicited_node(ip: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + ip.packed[13:])


def multicast_mac(ip: ipaddress.IPv6Address) -> bytes:
    return b"\x33\x33" + ip.packed[12:]


NA_S, NA_O = 0x40, 0x20
Tags = tuple[tuple[int, int], ...]
"""VLAN tags as (TPID, VID), outermost first."""


def arp_reply_for(
    request_sha: bytes,
    request_spa: ipaddress.IPv4Address | str,
    *,
    vlans: Tags = (),
    pad: int = 0,
) -> bytes:
    frame = eth(request_sha, OUR_MAC, 0x0806, vlans=vlans) + arp(
        2, OUR_MAC, VIP4, request_sha, request_spa
    )
    return frame + bytes(pad)


def na_reply_for(
    to_mac: bytes,
    to_ip: ipaddress.IPv6Address,
    *,
    dad: bool = False,
    vlans: Tags = (),
) -> bytes:
    flags = NA_O if dad else NA_S | NA_O
    return eth(to_mac, OUR_MAC, 0x86DD, vlans=vlans) + ipv6(
        VIP6, to_ip, na(VIP6, flags, lla(2, OUR_MAC))
    )


# --- the cases -----------------------------------------------------------------------------------

_REQ = arp(1, PEER_MAC, PEER4, bytes(6), VIP4)
_REPLY = arp_reply_for(PEER_MAC, PEER4)
_Q = (0x8100, 10)
_AD = (0x88A8, 20)

_NS_SN = solicited_node(VIP6)
_NS_FRAME = eth(multicast_mac(_NS_SN), PEER_MAC, 0x86DD) + ipv6(
    PEER6, _NS_SN, ns(VIP6, lla(1, PEER_MAC))
)
_NA_REPLY = na_reply_for(PEER_MAC, PEER6)


def _ns_frame(
    *,
    src: ipaddress.IPv6Address = PEER6,
    dst: ipaddress.IPv6Address = _NS_SN,
    eth_dst: bytes | None = None,
    target: ipaddress.IPv6Address = VIP6,
    options: tuple[bytes, ...] = (lla(1, PEER_MAC),),
    vlans: Tags = (),
    **ip_kwargs: object,
) -> bytes:
    dst_mac = eth_dst if eth_dst is not None else multicast_mac(dst)
    return eth(dst_mac, PEER_MAC, 0x86DD, vlans=vlans) + ipv6(
        src,
        dst,
        ns(target, *options, code=int(ip_kwargs.pop("code", 0))),
        **ip_kwargs,
    )


_bad_checksum = bytearray(_NS_FRAME)
_bad_checksum[14 + 40 + 2] ^= 0xFF

CASES: tuple[Case, ...] = (
    # ARP ------------------------------------------------------------------------------------------
    Case(
        "arp-request-broadcast",
        "ARP request for an owned VIP, to broadcast: unicast reply",
        eth(BROADCAST, PEER_MAC, 0x0806) + _REQ,
        "tx",
        _REPLY,
        "arp_reply",
    ),
    Case(
        "arp-request-unicast",
        "ARP request to our MAC (a refresh): answered",
        eth(OUR_MAC, PEER_MAC, 0x0806) + _REQ,
        "tx",
        _REPLY,
        "arp_reply",
    ),
    Case(
        "arp-request-other-mac",
        "ARP request for our VIP sent to another host's MAC",
        eth(OTHER_MAC, PEER_MAC, 0x0806) + _REQ,
        "pass",
        None,
        "not_for_us",
    ),
    Case(
        "arp-probe",
        "RFC 5227 probe (sender IP 0.0.0.0) for our VIP: reply with tpa 0.0.0.0",
        eth(BROADCAST, PEER_MAC, 0x0806) + arp(1, PEER_MAC, "0.0.0.0", bytes(6), VIP4),
        "tx",
        arp_reply_for(PEER_MAC, "0.0.0.0"),
        "probe_reply",
    ),
    Case(
        "arp-miss",
        "ARP request for an address we do not own",
        eth(BROADCAST, PEER_MAC, 0x0806) + arp(1, PEER_MAC, PEER4, bytes(6), NOT_OURS4),
        "pass",
        None,
        "miss",
    ),
    Case(
        "arp-garp-conflict",
        "Gratuitous ARP for our VIP from another MAC: conflict, passed",
        eth(BROADCAST, OTHER_MAC, 0x0806) + arp(1, OTHER_MAC, VIP4, bytes(6), VIP4),
        "pass",
        None,
        "conflict",
        conflict_mac=OTHER_MAC,
    ),
    Case(
        "arp-reply-conflict",
        "ARP reply claiming our VIP from another MAC: conflict",
        eth(PEER_MAC, OTHER_MAC, 0x0806) + arp(2, OTHER_MAC, VIP4, PEER_MAC, PEER4),
        "pass",
        None,
        "conflict",
        conflict_mac=OTHER_MAC,
    ),
    Case(
        "arp-request-from-vip-holder",
        "A host using our VIP as its source asks for the gateway: requests are not checked "
        "for conflicts (only announcements are), so this is a plain miss",
        eth(BROADCAST, OTHER_MAC, 0x0806) + arp(1, OTHER_MAC, VIP4, bytes(6), GATEWAY4),
        "pass",
        None,
        "miss",
    ),
    Case(
        "arp-garp-own",
        "Gratuitous ARP for our VIP with our own MAC: no conflict, nothing to answer",
        eth(BROADCAST, OUR_MAC, 0x0806) + arp(1, OUR_MAC, VIP4, bytes(6), VIP4),
        "pass",
        None,
        "not_request",
    ),
    Case(
        "arp-garp-other-address",
        "Gratuitous ARP of another host for its own address",
        eth(BROADCAST, PEER_MAC, 0x0806) + arp(1, PEER_MAC, PEER4, bytes(6), PEER4),
        "pass",
        None,
        "not_request",
    ),
    Case(
        "arp-reply-other",
        "An ARP reply between two other hosts",
        eth(PEER_MAC, OTHER_MAC, 0x0806) + arp(2, OTHER_MAC, GATEWAY4, PEER_MAC, PEER4),
        "pass",
        None,
        "not_request",
    ),
    Case(
        "arp-truncated",
        "ARP cut after 20 bytes",
        eth(BROADCAST, PEER_MAC, 0x0806) + _REQ[:20],
        "pass",
        None,
        "malformed",
    ),
    Case(
        "arp-bad-hln",
        "ARP with hardware length 8",
        eth(BROADCAST, PEER_MAC, 0x0806) + arp(1, PEER_MAC, PEER4, bytes(6), VIP4, hln=8),
        "pass",
        None,
        "malformed",
    ),
    Case(
        "arp-bad-protocol",
        "ARP for protocol 0x86dd",
        eth(BROADCAST, PEER_MAC, 0x0806) + arp(1, PEER_MAC, PEER4, bytes(6), VIP4, pro=0x86DD),
        "pass",
        None,
        "malformed",
    ),
    Case(
        "arp-bad-hardware",
        "ARP for hardware type 6 (IEEE 802)",
        eth(BROADCAST, PEER_MAC, 0x0806) + arp(1, PEER_MAC, PEER4, bytes(6), VIP4, hrd=6),
        "pass",
        None,
        "malformed",
    ),
    Case(
        "arp-padded",
        "ARP request padded to the 60-byte Ethernet minimum: padding kept",
        eth(BROADCAST, PEER_MAC, 0x0806) + _REQ + bytes(18),
        "tx",
        arp_reply_for(PEER_MAC, PEER4, pad=18),
        "arp_reply",
    ),
    Case(
        "arp-vlan",
        "ARP request in one 802.1Q tag: the tag is kept",
        eth(BROADCAST, PEER_MAC, 0x0806, vlans=(_Q,)) + _REQ,
        "tx",
        arp_reply_for(PEER_MAC, PEER4, vlans=(_Q,)),
        "arp_reply",
    ),
    Case(
        "arp-qinq",
        "ARP request in 802.1ad + 802.1Q tags: both kept",
        eth(BROADCAST, PEER_MAC, 0x0806, vlans=(_AD, _Q)) + _REQ,
        "tx",
        arp_reply_for(PEER_MAC, PEER4, vlans=(_AD, _Q)),
        "arp_reply",
    ),
    Case(
        "arp-three-tags",
        "ARP request behind three VLAN tags: passed untouched",
        eth(BROADCAST, PEER_MAC, 0x0806, vlans=(_AD, _Q, _Q)) + _REQ,
        "pass",
        None,
        "too_many_vlans",
    ),
    Case(
        "arp-gate-closed",
        "ARP request for our VIP while the liveness gate is closed",
        eth(BROADCAST, PEER_MAC, 0x0806) + _REQ,
        "pass",
        None,
        "gate_closed",
        gate_open=False,
    ),
    Case(
        "arp-header-only",
        "An Ethernet header saying ARP and nothing after it (the shortest frame a NIC hands over)",
        eth(BROADCAST, PEER_MAC, 0x0806),
        "pass",
        None,
        "malformed",
    ),
    Case(
        "vlan-truncated",
        "An 802.1Q tag cut short",
        eth(BROADCAST, PEER_MAC, 0x8100) + b"\x00",
        "pass",
    ),
    Case("ipv4-udp", "Ordinary IPv4 traffic", eth(OUR_MAC, PEER_MAC, 0x0800) + bytes(28), "pass"),
    # NDP ------------------------------------------------------------------------------------------
    Case(
        "ns-multicast",
        "NS to the solicited-node group with a source link-layer option",
        _NS_FRAME,
        "tx",
        _NA_REPLY,
        "ns_reply",
    ),
    Case(
        "ns-unicast",
        "NS to the VIP itself and our MAC (neighbour unreachability detection)",
        _ns_frame(dst=VIP6, eth_dst=OUR_MAC),
        "tx",
        _NA_REPLY,
        "ns_reply",
    ),
    Case(
        "ns-no-sllao",
        "NS without a source link-layer option: answered to the Ethernet "
        "source (the frame grows by 8 bytes)",
        _ns_frame(options=()),
        "tx",
        _NA_REPLY,
        "ns_reply",
    ),
    Case(
        "ns-sllao-and-nonce",
        "NS with a source link-layer and a nonce option (the frame shrinks)",
        _ns_frame(options=(lla(1, PEER_MAC), b"\x0e\x01" + bytes(6))),
        "tx",
        _NA_REPLY,
        "ns_reply",
    ),
    Case(
        "ns-dad",
        "DAD probe (source ::) for our VIP: NA to ff02::1 with S=0, O=1",
        _ns_frame(src=UNSPECIFIED6, options=()),
        "tx",
        na_reply_for(multicast_mac(ALL_NODES), ALL_NODES, dad=True),
        "dad_reply",
    ),
    Case(
        "ns-dad-with-sllao",
        "DAD probe carrying a source link-layer option (RFC 4861 7.1.1: invalid)",
        _ns_frame(src=UNSPECIFIED6),
        "pass",
        None,
        "invalid",
    ),
    Case(
        "ns-dad-to-unicast",
        "DAD probe not sent to the solicited-node group (invalid)",
        _ns_frame(src=UNSPECIFIED6, dst=VIP6, eth_dst=OUR_MAC, options=()),
        "pass",
        None,
        "invalid",
    ),
    Case(
        "ns-hop-limit",
        "NS with hop limit 64 (it crossed a router): invalid",
        _ns_frame(hop_limit=64),
        "pass",
        None,
        "invalid",
    ),
    Case("ns-code", "NS with ICMPv6 code 1: invalid", _ns_frame(code=1), "pass", None, "invalid"),
    Case(
        "ns-target-multicast",
        "NS whose target is a multicast address: invalid",
        _ns_frame(target=ipaddress.IPv6Address("ff02::c8"), dst=_NS_SN),
        "pass",
        None,
        "invalid",
    ),
    Case(
        "ns-bad-checksum",
        "NS with a wrong ICMPv6 checksum: invalid",
        bytes(_bad_checksum),
        "pass",
        None,
        "invalid",
    ),
    Case(
        "ns-wrong-destination",
        "NS for our VIP sent to another host's unicast address",
        _ns_frame(dst=PEER6, eth_dst=OUR_MAC),
        "pass",
        None,
        "invalid",
    ),
    Case(
        "ns-zero-length-option",
        "NS with an option of length 0: invalid",
        _ns_frame(options=(b"\x01\x00" + PEER_MAC,)),
        "pass",
        None,
        "invalid",
    ),
    Case(
        "ns-option-overruns",
        "NS whose option claims 16 bytes in an 8-byte space",
        _ns_frame(options=(b"\x01\x02" + PEER_MAC,)),
        "pass",
        None,
        "malformed",
    ),
    Case(
        "ns-truncated",
        "NS whose IPv6 payload length says 32 but the frame stops at 24",
        _ns_frame(options=(), payload_len=32),
        "pass",
        None,
        "malformed",
    ),
    Case(
        "ns-short",
        "ICMPv6 type 135 with only 8 bytes of message",
        eth(multicast_mac(_NS_SN), PEER_MAC, 0x86DD) + ipv6(PEER6, _NS_SN, ns(VIP6)[:8]),
        "pass",
        None,
        "malformed",
    ),
    Case(
        "ns-too-many-options",
        "NS with seven options (longer than the program checks)",
        _ns_frame(options=(lla(1, PEER_MAC),) + (b"\x0e\x01" + bytes(6),) * 6),
        "pass",
        None,
        "malformed",
    ),
    Case(
        "ns-miss",
        "NS for an address we do not own",
        _ns_frame(target=NOT_OURS6, dst=solicited_node(NOT_OURS6)),
        "pass",
        None,
        "miss",
    ),
    Case(
        "ns-other-mac",
        "NS for our VIP sent to another host's MAC",
        _ns_frame(dst=VIP6, eth_dst=OTHER_MAC),
        "pass",
        None,
        "not_for_us",
    ),
    Case(
        "ns-vlan",
        "NS in an 802.1Q tag: the NA carries the tag",
        _ns_frame(vlans=(_Q,)),
        "tx",
        na_reply_for(PEER_MAC, PEER6, vlans=(_Q,)),
        "ns_reply",
    ),
    Case(
        "ns-qinq-no-sllao",
        "NS without options in two tags: tags kept, frame grows",
        _ns_frame(vlans=(_AD, _Q), options=()),
        "tx",
        na_reply_for(PEER_MAC, PEER6, vlans=(_AD, _Q)),
        "ns_reply",
    ),
    Case(
        "ns-gate-closed",
        "NS for our VIP while the liveness gate is closed",
        _NS_FRAME,
        "pass",
        None,
        "gate_closed",
        gate_open=False,
    ),
    Case(
        "na-conflict",
        "Unsolicited NA for our VIP carrying another MAC: conflict",
        eth(multicast_mac(ALL_NODES), OTHER_MAC, 0x86DD)
        + ipv6(VIP6, ALL_NODES, na(VIP6, NA_O, lla(2, OTHER_MAC))),
        "pass",
        None,
        "conflict",
        conflict_mac=OTHER_MAC,
    ),
    Case(
        "na-own",
        "NA for our VIP with our own MAC: nothing to do",
        eth(multicast_mac(ALL_NODES), OUR_MAC, 0x86DD)
        + ipv6(VIP6, ALL_NODES, na(VIP6, NA_O, lla(2, OUR_MAC))),
        "pass",
    ),
    Case(
        "icmpv6-echo",
        "An ICMPv6 echo request",
        eth(OUR_MAC, PEER_MAC, 0x86DD)
        + ipv6(PEER6, VIP6, struct.pack("!BBHHH", 128, 0, 0, 1, 1), hop_limit=64),
        "pass",
    ),
)
