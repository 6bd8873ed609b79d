"""Read tcpdump's pcap files and decode the few headers the tests assert on.

Captures are the ground truth of what went over the wire (PureLB's habit): the tests look at the
Ethernet, ARP and ICMPv6 fields of real frames rather than at what the code believes it sent.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_LINKTYPE_ETHERNET = 1

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
_VLAN_TYPES = (0x8100, 0x88A8)
_IPPROTO_ICMPV6 = 58
_IPPROTO_UDP = 17


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True)
class Arp:
    op: int
    sha: str
    spa: str
    tha: str
    tpa: str


@dataclass(frozen=True)
class Icmp6:
    src: str
    dst: str
    hop_limit: int
    type: int
    code: int
    body: bytes
    """Everything after the 4-byte ICMPv6 header (checksum not verified here)."""

    @property
    def target(self) -> str:
        """Target address of a Neighbor Solicitation/Advertisement."""
        return str(ipaddress.IPv6Address(self.body[4:20]))

    @property
    def flags(self) -> int:
        """First byte of an NA's flags word (R=0x80, S=0x40, O=0x20)."""
        return self.body[0]


@dataclass(frozen=True)
class Frame:
    """One captured Ethernet frame with its capture timestamp (seconds, ns resolution)."""

    ts: float
    data: bytes

    @property
    def dst(self) -> str:
        return mac_str(self.data[0:6])

    @property
    def src(self) -> str:
        return mac_str(self.data[6:12])

    def _payload(self) -> tuple[int, int]:
        """(EtherType, offset of the payload), skipping up to two VLAN tags."""
        offset = 12
        ethertype = struct.unpack_from("!H", self.data, offset)[0]
        for _ in range(2):
            if ethertype not in _VLAN_TYPES:
                break
            offset += 4
            ethertype = struct.unpack_from("!H", self.data, offset)[0]
        return ethertype, offset + 2

    @property
    def ethertype(self) -> int:
        return self._payload()[0] if len(self.data) >= 14 else -1

    @property
    def arp(self) -> Arp | None:
        if len(self.data) < 14:
            return None
        ethertype, off = self._payload()
        if ethertype != ETH_P_ARP or len(self.data) < off + 28:
            return None
        op = struct.unpack_from("!H", self.data, off + 6)[0]
        d = self.data
        return Arp(
            op=op,
            sha=mac_str(d[off + 8 : off + 14]),
            spa=str(ipaddress.IPv4Address(d[off + 14 : off + 18])),
            tha=mac_str(d[off + 18 : off + 24]),
            tpa=str(ipaddress.IPv4Address(d[off + 24 : off + 28])),
        )

    @property
    def icmp6(self) -> Icmp6 | None:
        if len(self.data) < 14:
            return None
        ethertype, off = self._payload()
        if ethertype != ETH_P_IPV6 or len(self.data) < off + 44:
            return None
        d = self.data
        if d[off + 6] != _IPPROTO_ICMPV6:  # no extension headers in NDP
            return None
        return Icmp6(
            src=str(ipaddress.IPv6Address(d[off + 8 : off + 24])),
            dst=str(ipaddress.IPv6Address(d[off + 24 : off + 40])),
            hop_limit=d[off + 7],
            type=d[off + 40],
            code=d[off + 41],
            body=bytes(d[off + 44 :]),
        )

    @property
    def udp(self) -> tuple[str, int, str, int, bytes] | None:
        """(src ip, src port, dst ip, dst port, payload) for IPv4/IPv6 UDP, else None."""
        if len(self.data) < 14:
            return None
        ethertype, off = self._payload()
        d = self.data
        if ethertype == ETH_P_IP and len(d) >= off + 20 and d[off + 9] == _IPPROTO_UDP:
            ihl = (d[off] & 0x0F) * 4
            src, dst = d[off + 12 : off + 16], d[off + 16 : off + 20]
            off += ihl
        elif ethertype == ETH_P_IPV6 and len(d) >= off + 40 and d[off + 6] == _IPPROTO_UDP:
            src, dst = d[off + 8 : off + 24], d[off + 24 : off + 40]
            off += 40
        else:
            return None
        if len(d) < off + 8:
            return None
        sport, dport = struct.unpack_from("!HH", d, off)
        return (
            str(ipaddress.ip_address(src)),
            sport,
            str(ipaddress.ip_address(dst)),
            dport,
            bytes(d[off + 8 :]),
        )


def read_pcap(path: Path) -> list[Frame]:
    """Parse a classic pcap file (micro- or nanosecond timestamps, Ethernet link type)."""
    data = path.read_bytes()
    if len(data) < 24:
        return []  # tcpdump killed before writing its header: nothing was captured
    for endian in ("<", ">"):
        magic = struct.unpack_from(endian + "I", data, 0)[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        raise ValueError(f"{path}: not a pcap file (magic {data[:4].hex()})")
    scale = 1e-9 if magic == _MAGIC_NS else 1e-6
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    if linktype != _LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, expected Ethernet (1)")
    frames = []
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, offset)
        offset += 16
        if offset + incl > len(data):
            break  # a record cut short by an abrupt stop
        frames.append(Frame(sec + frac * scale, data[offset : offset + incl]))
        offset += incl
    return frames
