"""Types and constants shared by both packet module implementations.

The compiled module (``ext/_packet.pyx``) and its pure-Python twin return the same values, so
the parsed views and the reply verdicts are defined once, here, in plain Python.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8)
"""802.1Q and 802.1ad tag protocol identifiers; up to two tags are walked and kept in replies."""
MAX_VLAN_TAGS = 2

ICMPV6_NS = 135
ICMPV6_NA = 136
NA_FLAG_SOLICITED = 0x40
NA_FLAG_OVERRIDE = 0x20

NA_ICMP_LEN = 32
NS_ICMP_LEN = 24
NS_ICMP_MAX = 72
"""Longest NS checked (24 bytes + 6 options of 8, like the XDP program); longer is malformed."""
"""NA header (24 bytes) plus one target link-layer address option (8 bytes)."""

ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_NODES_MAC = bytes.fromhex("333300000001")
BROADCAST_MAC = b"\xff" * 6


class Reason(enum.IntEnum):
    """What the responder did with one frame: a reply kind or the reason it did not reply.

    Values 0..11 are the counter indices of ``responder.COUNTER_REASONS`` (the XDP program's
    ``enum oelb_reason``, same order, checked by a test); ``PASS`` is other traffic, not counted.
    """

    ARP_REPLY = 0
    """Answered an ARP request for an owned address."""
    PROBE_REPLY = 1
    """Answered an RFC 5227 probe (sender IP 0.0.0.0) for an owned address."""
    NS_REPLY = 2
    """Answered a Neighbor Solicitation with a solicited NA (S=1, O=1)."""
    DAD_REPLY = 3
    """Answered a DAD solicitation (source ::) with an NA to ff02::1 (S=0, O=1)."""
    MISS = 4
    """A well-formed request for an address this node does not own."""
    CONFLICT = 5
    """Someone else claimed an owned address: ARP with it as sender IP, or an NA for it."""
    MALFORMED = 6
    """A truncated or wrong-shaped ARP/NS (header fields, lengths, options)."""
    INVALID = 7
    """A well-formed NS failing RFC 4861 7.1.1 (hop limit, code, target, destination)."""
    NOT_FOR_US = 8
    """Owned address, but the Ethernet destination is neither broadcast/multicast nor ours."""
    NOT_REQUEST = 9
    """An ARP frame that is not a request (replies go to the kernel)."""
    GATE_CLOSED = 10
    """Would have answered, but the liveness gate is stale (the speaker stopped refreshing)."""
    TOO_MANY_VLANS = 11
    """More than two VLAN tags: passed untouched."""
    PASS = 12
    """Not ARP or NDP: other traffic, not counted."""

    @property
    def label(self) -> str:
        """The metric label: the lower-case name."""
        return self.name.lower()

    @property
    def replied(self) -> bool:
        return self <= Reason.DAD_REPLY


REASON_COUNT = len(Reason)
"""Counter slots (``PASS`` included, so any reason indexes them)."""


class ArpFrame(NamedTuple):
    """An ARP frame over Ethernet/IPv4, as parsed (addresses raw bytes)."""

    eth_dst: bytes
    eth_src: bytes
    vlan_tags: tuple[int, ...]
    """The TCI of each VLAN tag, outermost first."""
    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes


class NsFrame(NamedTuple):
    """An ICMPv6 Neighbor Solicitation, as parsed (addresses raw bytes)."""

    eth_dst: bytes
    eth_src: bytes
    vlan_tags: tuple[int, ...]
    src: bytes
    dst: bytes
    hop_limit: int
    code: int
    target: bytes
    source_lladdr: bytes | None
    """The source link-layer address option, when present."""


def solicited_node(ip: bytes) -> bytes:
    """The solicited-node multicast group ff02::1:ffXX:XXXX of a 16-byte IPv6 address."""
    if len(ip) != 16:
        raise ValueError(f"ip must be 16 bytes (IPv6), got {len(ip)}")
    return bytes.fromhex("ff0200000000000000000001ff") + ip[13:16]


def solicited_node_mac(ip: bytes) -> bytes:
    """The Ethernet multicast address 33:33:ff:XX:XX:XX of ``ip``'s solicited-node group."""
    return b"\x33\x33\xff" + ip[13:16]


def claimed_address(frame: bytes) -> tuple[bytes, bytes] | None:
    """(IP, MAC) another host claims in an ARP (sender) or NA (target, TLLA or source MAC).

    Used when a frame was counted as a ``CONFLICT``, to report who claimed the address; the rare
    path, so plain Python serves both packet module implementations.
    """
    offset, ethertype = 14, int.from_bytes(frame[12:14]) if len(frame) >= 14 else 0
    for _ in range(MAX_VLAN_TAGS):
        if ethertype not in VLAN_TPIDS or len(frame) < offset + 4:
            break
        ethertype = int.from_bytes(frame[offset + 2 : offset + 4])
        offset += 4
    if ethertype == ETH_P_ARP and len(frame) >= offset + 28:
        return bytes(frame[offset + 14 : offset + 18]), bytes(frame[offset + 8 : offset + 14])
    icmp = offset + 40
    if ethertype == ETH_P_IPV6 and len(frame) >= icmp + 24 and frame[icmp] == ICMPV6_NA:
        # As the XDP program: the first option when it is a target link-layer address,
        # else the Ethernet source.
        plen = int.from_bytes(frame[offset + 4 : offset + 6])
        mac = bytes(frame[6:12])
        if len(frame) >= icmp + 32 and plen >= 32 and frame[icmp + 24 : icmp + 26] == b"\x02\x01":
            mac = bytes(frame[icmp + 26 : icmp + 32])
        return bytes(frame[icmp + 8 : icmp + 24]), mac
    return None
