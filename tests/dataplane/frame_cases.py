"""Request frames and the verdict every responder must reach: data, one description each.

The packet module's ``decide`` (compiled and pure Python) is run over these; the replies are
built here independently of the module (field by field), so a test compares bytes against a
second implementation rather than against itself.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from openelb.dataplane.frames import Reason

OWNER_MAC = bytes.fromhex("020e1b0000aa")
OTHER_MAC = bytes.fromhex("020e1b0000bb")
CLIENT_MAC = bytes.fromhex("020e1b000011")
VIP4 = ipaddress.IPv4Address("10.250.0.200").packed
VIP6 = ipaddress.IPv6Address("fd0e:1b::c8").packed
NOT_OWNED4 = ipaddress.IPv4Address("10.250.0.201").packed
NOT_OWNED6 = ipaddress.IPv6Address("fd0e:1b::c9").packed
CLIENT4 = ipaddress.IPv4Address("10.250.0.11").packed
CLIENT6 = ipaddress.IPv6Address("fd0e:1b::11").packed
BROADCAST = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1").packed
ZERO6 = bytes(16)

OWNED: dict[bytes, bytes] = {VIP4: OWNER_MAC, VIP6: OWNER_MAC}


def vlan(tci: int, tpid: int = 0x8100) -> bytes:
    return struct.pack("!HH", tpid, tci)


def arp(
    *,
    op: int = 1,
    sha: bytes = CLIENT_MAC,
    spa: bytes = CLIENT4,
    tha: bytes = bytes(6),
    tpa: bytes = VIP4,
    eth_dst: bytes = BROADCAST,
    eth_src: bytes = CLIENT_MAC,
    tags: bytes = b"",
    pad: int = 18,
    header: bytes = bytes.fromhex("000108000604"),
) -> bytes:
    """An ARP frame; ``pad`` zero bytes after it, as a NIC pads a 42-byte frame to 60."""
    body = header + struct.pack("!H", op) + sha + spa + tha + tpa
    return eth_dst + eth_src + tags + b"\x08\x06" + body + bytes(pad)


def checksum(src: bytes, dst: bytes, message: bytes) -> int:
    data = src + dst + struct.pack("!IxxxB", len(message), 58) + message
    data += b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp6(
    *,
    src: bytes,
    dst: bytes,
    message: bytes,
    eth_dst: bytes,
    eth_src: bytes = CLIENT_MAC,
    tags: bytes = b"",
    hop_limit: int = 255,
    payload_len: int | None = None,
) -> bytes:
    csum = checksum(src, dst, message)
    message = message[:2] + struct.pack("!H", csum) + message[4:]
    plen = len(message) if payload_len is None else payload_len
    header = struct.pack("!IHBB", 0x60000000, plen, 58, hop_limit) + src + dst
    return eth_dst + eth_src + tags + b"\x86\xdd" + header + message


def snm(ip: bytes) -> bytes:
    return bytes.fromhex("ff0200000000000000000001ff") + ip[13:]


def snm_mac(ip: bytes) -> bytes:
    return b"\x33\x33\xff" + ip[13:]


def ns(
    *,
    target: bytes = VIP6,
    src: bytes = CLIENT6,
    dst: bytes | None = None,
    eth_dst: bytes | None = None,
    slla: bytes | None = CLIENT_MAC,
    code: int = 0,
    hop_limit: int = 255,
    tags: bytes = b"",
    options: bytes | None = None,
    payload_len: int | None = None,
) -> bytes:
    """A Neighbor Solicitation (to the target's solicited-node group unless ``dst`` is given)."""
    opts = options if options is not None else (b"\x01\x01" + slla if slla else b"")
    message = bytes((135, code, 0, 0, 0, 0, 0, 0)) + target + opts
    dst = snm(target) if dst is None else dst
    return icmp6(
        src=src,
        dst=dst,
        message=message,
        eth_dst=snm_mac(target) if eth_dst is None else eth_dst,
        tags=tags,
        hop_limit=hop_limit,
        payload_len=payload_len,
    )


def na(
    *, target: bytes, dst: bytes, eth_dst: bytes, mac: bytes, flags: int, tags: bytes = b""
) -> bytes:
    """An NA "target is at mac" with the TLLA option, from ``target`` (hop limit 255)."""
    message = bytes((136, 0, 0, 0, flags, 0, 0, 0)) + target + b"\x02\x01" + mac
    return icmp6(src=target, dst=dst, message=message, eth_dst=eth_dst, eth_src=mac, tags=tags)


def arp_reply_to(request: bytes, *, tags: bytes = b"") -> bytes:
    """The reply expected for an ARP ``request`` to an owned VIP: in place, same length."""
    o = 14 + len(tags)
    sha, spa, tpa = request[o + 8 : o + 14], request[o + 14 : o + 18], request[o + 24 : o + 28]
    body = bytes.fromhex("000108000604") + b"\x00\x02" + OWNER_MAC + tpa + sha + spa
    return sha + OWNER_MAC + tags + b"\x08\x06" + body + request[o + 28 :]


@dataclass(frozen=True)
class Case:
    """One frame in, one verdict (and reply) out."""

    description: str
    frame: bytes
    reason: Reason
    reply: bytes | None = None
    owned: dict[bytes, bytes] = field(default_factory=lambda: dict(OWNED))
    gate_open: bool = True


def _corrupt_checksum(frame: bytes) -> bytes:
    out = bytearray(frame)
    out[14 + 40 + 2] ^= 0xFF
    return bytes(out)


def _cases() -> list[Case]:
    q_tag = vlan(100)
    qinq = vlan(200, 0x88A8) + vlan(100)
    req = arp()
    probe = arp(spa=bytes(4))
    unicast = arp(eth_dst=OWNER_MAC)
    tagged = arp(tags=q_tag)
    double = arp(tags=qinq)
    ns_plain = ns()
    ns_unicast = ns(dst=VIP6, eth_dst=OWNER_MAC)
    ns_no_slla = ns(slla=None)
    dad = ns(src=ZERO6, slla=None)
    ns_tagged = ns(tags=qinq)
    return [
        Case("ARP request to broadcast for an owned VIP", req, Reason.ARP_REPLY, arp_reply_to(req)),
        Case(
            "ARP request unicast to the owner's MAC",
            unicast,
            Reason.ARP_REPLY,
            arp_reply_to(unicast),
        ),
        Case(
            "RFC 5227 probe (sender IP 0.0.0.0) is answered",
            probe,
            Reason.PROBE_REPLY,
            arp_reply_to(probe),
        ),
        Case(
            "ARP request with one 802.1Q tag keeps the tag",
            tagged,
            Reason.ARP_REPLY,
            arp_reply_to(tagged, tags=q_tag),
        ),
        Case(
            "ARP request with QinQ tags keeps both",
            double,
            Reason.ARP_REPLY,
            arp_reply_to(double, tags=qinq),
        ),
        Case(
            "ARP request without padding (42 bytes)",
            arp(pad=0),
            Reason.ARP_REPLY,
            arp_reply_to(arp(pad=0)),
        ),
        Case("ARP request for an address not owned", arp(tpa=NOT_OWNED4), Reason.MISS),
        Case(
            "gratuitous ARP request for our VIP by another host",
            arp(sha=OTHER_MAC, spa=VIP4, eth_src=OTHER_MAC),
            Reason.CONFLICT,
        ),
        Case(
            "gratuitous ARP reply for our VIP by another host",
            arp(op=2, sha=OTHER_MAC, spa=VIP4, tha=OTHER_MAC, eth_src=OTHER_MAC),
            Reason.CONFLICT,
        ),
        Case(
            "ARP reply from another host claiming our VIP",
            arp(op=2, sha=OTHER_MAC, spa=VIP4, tpa=CLIENT4, eth_dst=CLIENT_MAC, eth_src=OTHER_MAC),
            Reason.CONFLICT,
        ),
        Case("ARP reply not about our VIPs", arp(op=2, eth_dst=OWNER_MAC), Reason.NOT_REQUEST),
        Case("ARP request unicast to another MAC", arp(eth_dst=OTHER_MAC), Reason.NOT_FOR_US),
        Case("ARP request while the gate is closed", req, Reason.GATE_CLOSED, gate_open=False),
        Case(
            "ARP with hardware length 8",
            arp(header=bytes.fromhex("000108000804")),
            Reason.MALFORMED,
        ),
        Case(
            "ARP for another protocol", arp(header=bytes.fromhex("000186dd0604")), Reason.MALFORMED
        ),
        Case("truncated ARP (27 bytes of 28)", arp(pad=0)[:41], Reason.MALFORMED),
        Case("three VLAN tags", arp(tags=vlan(1) + qinq), Reason.TOO_MANY_VLANS),
        Case("IPv4 packet", BROADCAST + CLIENT_MAC + b"\x08\x00" + bytes(46), Reason.PASS),
        Case("runt frame", BROADCAST + CLIENT_MAC, Reason.PASS),
        Case(
            "NS to the solicited-node group with SLLA",
            ns_plain,
            Reason.NS_REPLY,
            na(target=VIP6, dst=CLIENT6, eth_dst=CLIENT_MAC, mac=OWNER_MAC, flags=0x60),
        ),
        Case(
            "NS unicast to the VIP and our MAC",
            ns_unicast,
            Reason.NS_REPLY,
            na(target=VIP6, dst=CLIENT6, eth_dst=CLIENT_MAC, mac=OWNER_MAC, flags=0x60),
        ),
        Case(
            "NS without a source link-layer option is answered",
            ns_no_slla,
            Reason.NS_REPLY,
            na(target=VIP6, dst=CLIENT6, eth_dst=CLIENT_MAC, mac=OWNER_MAC, flags=0x60),
        ),
        Case(
            "DAD NS (source ::) answered to ff02::1 with S=0",
            dad,
            Reason.DAD_REPLY,
            na(
                target=VIP6,
                dst=ALL_NODES,
                eth_dst=bytes.fromhex("333300000001"),
                mac=OWNER_MAC,
                flags=0x20,
            ),
        ),
        Case(
            "NS with QinQ tags keeps both",
            ns_tagged,
            Reason.NS_REPLY,
            na(target=VIP6, dst=CLIENT6, eth_dst=CLIENT_MAC, mac=OWNER_MAC, flags=0x60, tags=qinq),
        ),
        Case("NS for an address not owned", ns(target=NOT_OWNED6), Reason.MISS),
        Case("NS with hop limit 64 (crossed a router)", ns(hop_limit=64), Reason.INVALID),
        Case("NS with code 1", ns(code=1), Reason.INVALID),
        Case("NS for a multicast target", ns(target=ALL_NODES, dst=snm(ALL_NODES)), Reason.INVALID),
        Case("NS to another unicast address", ns(dst=CLIENT6), Reason.INVALID),
        Case(
            "DAD NS not to the solicited-node group",
            ns(src=ZERO6, slla=None, dst=VIP6),
            Reason.INVALID,
        ),
        Case("DAD NS with a source link-layer option", ns(src=ZERO6), Reason.INVALID),
        Case("NS with a zero-length option", ns(options=b"\x01\x00" + bytes(6)), Reason.INVALID),
        Case(
            "NS with an option running past the end",
            ns(options=b"\x01\x02" + bytes(6)),
            Reason.MALFORMED,
        ),
        Case(
            "NS with seven options (longer than checked)",
            ns(options=(b"\x0e\x01" + bytes(6)) * 7),
            Reason.MALFORMED,
        ),
        Case("NS whose payload length exceeds the frame", ns(payload_len=40), Reason.MALFORMED),
        Case("NS shorter than 24 bytes", ns(payload_len=20), Reason.MALFORMED),
        Case("NS unicast to another MAC", ns(dst=VIP6, eth_dst=OTHER_MAC), Reason.NOT_FOR_US),
        Case("NS while the gate is closed", ns_plain, Reason.GATE_CLOSED, gate_open=False),
        Case(
            "NA from another host for our VIP",
            na(
                target=VIP6,
                dst=ALL_NODES,
                eth_dst=bytes.fromhex("333300000001"),
                mac=OTHER_MAC,
                flags=0x20,
            ),
            Reason.CONFLICT,
        ),
        Case(
            "NA for someone else's address",
            na(
                target=NOT_OWNED6,
                dst=ALL_NODES,
                eth_dst=bytes.fromhex("333300000001"),
                mac=OTHER_MAC,
                flags=0x20,
            ),
            Reason.PASS,
        ),
        Case(
            "ICMPv6 echo request",
            icmp6(src=CLIENT6, dst=VIP6, message=b"\x80\x00" + bytes(6), eth_dst=OWNER_MAC),
            Reason.PASS,
        ),
        Case(
            "request for a VIP on a table with other VIPs only",
            req,
            Reason.MISS,
            owned={NOT_OWNED4: OWNER_MAC},
        ),
        Case(
            "gratuitous ARP for our VIP with our own MAC: no conflict, nothing asked",
            arp(sha=OWNER_MAC, spa=VIP4, eth_src=OWNER_MAC),
            Reason.NOT_REQUEST,
        ),
        Case(
            "gratuitous ARP of another host for its own address",
            arp(spa=CLIENT4, tpa=CLIENT4),
            Reason.NOT_REQUEST,
        ),
        Case("NS with a wrong checksum", _corrupt_checksum(ns()), Reason.INVALID),
        Case(
            "NS whose payload length is not a multiple of 8", ns(payload_len=28), Reason.MALFORMED
        ),
        Case(
            "NA for our VIP with our own MAC",
            na(
                target=VIP6,
                dst=ALL_NODES,
                eth_dst=bytes.fromhex("333300000001"),
                mac=OWNER_MAC,
                flags=0x20,
            ),
            Reason.PASS,
        ),
        Case(
            "NS to the group but an Ethernet multicast of another group",
            ns(eth_dst=bytes.fromhex("3333ff0000c9")),
            Reason.NOT_FOR_US,
        ),
    ]


CASES = _cases()
