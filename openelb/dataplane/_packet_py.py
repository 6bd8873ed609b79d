"""Pure-Python twin of the compiled packet module (``ext/_packet.pyx``), same API.

Used when the extension is not built or ``OPENELB_NO_EXTENSIONS=1`` forces it; the test suite
runs every packet test against both implementations and checks they give the same bytes.

Replies are built the way the XDP program builds them, by rewriting the request in place: an
ARP reply keeps the request's length (padding included) and VLAN tags; an NA is the request's
Ethernet header and tags followed by a fresh IPv6 header and a 32-byte NA with the target
link-layer address option.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence

from openelb.dataplane.frames import (
    ALL_NODES,
    ALL_NODES_MAC,
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IPV6,
    ICMPV6_NA,
    ICMPV6_NS,
    MAX_VLAN_TAGS,
    NA_FLAG_OVERRIDE,
    NA_FLAG_SOLICITED,
    NS_ICMP_LEN,
    NS_ICMP_MAX,
    REASON_COUNT,
    VLAN_TPIDS,
    ArpFrame,
    NsFrame,
    Reason,
    claimed_address,
    solicited_node,
    solicited_node_mac,
)

IMPLEMENTATION = "python"

_ARP_HEADER = b"\x00\x01\x08\x00\x06\x04"  # htype Ethernet, ptype IPv4, hlen 6, plen 4
_ZERO4 = bytes(4)
_ZERO6 = bytes(6)
_ZERO16 = bytes(16)
_SNM_PREFIX = bytes.fromhex("ff0200000000000000000001ff")
_MAX_FRAME = 2048
_SOL_PACKET = 263
_PACKET_AUXDATA = 8
_AUX_SPACE = socket.CMSG_SPACE(20)  # struct tpacket_auxdata
_VLAN_VALID = 0x10  # TP_STATUS_VLAN_VALID
_VLAN_TPID_VALID = 0x40  # TP_STATUS_VLAN_TPID_VALID


def _retag(frame: bytes, aux: bytes) -> bytes:
    """Put back the VLAN tag the kernel took off (``aux``: struct tpacket_auxdata)."""
    status, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", aux[:20])
    if not status & _VLAN_VALID or len(frame) < 12:
        return frame
    tag = struct.pack("!HH", tpid if status & _VLAN_TPID_VALID else 0x8100, tci)
    return frame[:12] + tag + frame[12:]


_MAX_CONFLICTS = 1024


def _check(mac: bytes, ip: bytes, ip_len: int) -> None:
    if len(mac) != 6:
        raise ValueError(f"mac must be 6 bytes, got {len(mac)}")
    if len(ip) != ip_len:
        family = "IPv4" if ip_len == 4 else "IPv6"
        raise ValueError(f"ip must be {ip_len} bytes ({family}), got {len(ip)}")


# --- builders -------------------------------------------------------------------------------------


def build_garp(mac: bytes, ip: bytes, reply: bool = False) -> bytes:
    """Gratuitous ARP for ``ip`` (4 bytes) from ``mac`` (6 bytes), to broadcast.

    Request form (default): sender IP = target IP = ``ip``, target MAC zero; Linux applies it to
    an existing entry in any state. Reply form: target MAC = sender MAC (a reply whose target MAC
    is ff:ff.. is ignored within the 1 s locktime).
    """
    _check(mac, ip, 4)
    op = b"\x00\x02" if reply else b"\x00\x01"
    target_mac = mac if reply else _ZERO6
    return BROADCAST_MAC + mac + b"\x08\x06" + _ARP_HEADER + op + mac + ip + target_mac + ip


def build_arp_probe(mac: bytes, ip: bytes) -> bytes:
    """RFC 5227 probe for ``ip``: broadcast request, sender IP 0.0.0.0, target MAC zero."""
    _check(mac, ip, 4)
    return (
        BROADCAST_MAC + mac + b"\x08\x06" + _ARP_HEADER + b"\x00\x01" + mac + _ZERO4 + _ZERO6 + ip
    )


def build_arp_reply(*, mac: bytes, ip: bytes, dst_mac: bytes, dst_ip: bytes) -> bytes:
    """Unicast ARP reply "``ip`` is at ``mac``" to the requester ``dst_mac``/``dst_ip``."""
    _check(mac, ip, 4)
    _check(dst_mac, dst_ip, 4)
    return dst_mac + mac + b"\x08\x06" + _ARP_HEADER + b"\x00\x02" + mac + ip + dst_mac + dst_ip


def _icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    data = src + dst + struct.pack("!I3xB", len(message), 58) + message
    if len(data) % 2:
        data += b"\x00"
    total = sum(int(v) for v in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv6_icmp(src: bytes, dst: bytes, message: bytes) -> bytes:
    """IPv6 header (hop limit 255, as NDP requires) + ICMPv6 ``message`` with its checksum."""
    csum = _icmpv6_checksum(src, dst, message)
    message = message[:2] + struct.pack("!H", csum) + message[4:]
    return struct.pack("!IHBB", 0x60000000, len(message), 58, 255) + src + dst + message


def _na_message(mac: bytes, target: bytes, flags: int) -> bytes:
    # type, code, checksum (filled later), flags, reserved, target, TLLA option (type 2, len 1)
    return bytes((ICMPV6_NA, 0, 0, 0, flags, 0, 0, 0)) + target + b"\x02\x01" + mac


def build_na(
    *, mac: bytes, ip: bytes, dst_mac: bytes, dst_ip: bytes, solicited: bool = True
) -> bytes:
    """Neighbor Advertisement "``ip`` is at ``mac``" to ``dst_ip``: O=1, S as given, TLLA."""
    _check(mac, ip, 16)
    _check(dst_mac, dst_ip, 16)
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_SOLICITED if solicited else 0)
    return dst_mac + mac + b"\x86\xdd" + _ipv6_icmp(ip, dst_ip, _na_message(mac, ip, flags))


def build_unsolicited_na(mac: bytes, ip: bytes) -> bytes:
    """Unsolicited NA for ``ip`` to ff02::1: Override=1 (moves the MAC), Solicited=0, TLLA.

    It is also the answer to a DAD solicitation (RFC 4862 5.4.3 defender).
    """
    return build_na(mac=mac, ip=ip, dst_mac=ALL_NODES_MAC, dst_ip=ALL_NODES, solicited=False)


def build_dad_ns(mac: bytes, ip: bytes) -> bytes:
    """DAD Neighbor Solicitation for ``ip``: source ::, to its solicited-node group, no SLLA."""
    _check(mac, ip, 16)
    message = bytes((ICMPV6_NS, 0, 0, 0, 0, 0, 0, 0)) + ip
    return (
        solicited_node_mac(ip)
        + mac
        + b"\x86\xdd"
        + _ipv6_icmp(_ZERO16, solicited_node(ip), message)
    )


def build_garp_batch(mac: bytes, ips: Sequence[bytes], reply: bool = False) -> list[bytes]:
    """One gratuitous ARP per address (see ``build_garp``)."""
    return [build_garp(mac, ip, reply) for ip in ips]


def build_unsolicited_na_batch(mac: bytes, ips: Sequence[bytes]) -> list[bytes]:
    """One unsolicited NA per address (see ``build_unsolicited_na``)."""
    return [build_unsolicited_na(mac, ip) for ip in ips]


# --- parsing --------------------------------------------------------------------------------------


def _l2(frame: bytes) -> tuple[int, int, tuple[int, ...]] | None:
    """(EtherType, offset of the L3 header, VLAN TCIs) or None when truncated."""
    if len(frame) < 14:
        return None
    ethertype = (frame[12] << 8) | frame[13]
    offset = 14
    tags: list[int] = []
    while ethertype in VLAN_TPIDS and len(tags) < MAX_VLAN_TAGS:
        if len(frame) < offset + 4:
            return None
        tags.append(((frame[offset] << 8) | frame[offset + 1]) & 0xFFFF)
        ethertype = (frame[offset + 2] << 8) | frame[offset + 3]
        offset += 4
    return ethertype, offset, tuple(tags)


def parse_arp(frame: bytes) -> ArpFrame | None:
    """The ARP (Ethernet/IPv4) frame in ``frame``, or None when it is not one or is malformed."""
    l2 = _l2(frame)
    if l2 is None or l2[0] != ETH_P_ARP:
        return None
    _, o, tags = l2
    if len(frame) < o + 28 or frame[o : o + 6] != _ARP_HEADER:
        return None
    return ArpFrame(
        eth_dst=bytes(frame[0:6]),
        eth_src=bytes(frame[6:12]),
        vlan_tags=tags,
        op=(frame[o + 6] << 8) | frame[o + 7],
        sha=bytes(frame[o + 8 : o + 14]),
        spa=bytes(frame[o + 14 : o + 18]),
        tha=bytes(frame[o + 18 : o + 24]),
        tpa=bytes(frame[o + 24 : o + 28]),
    )


def _ns_options(frame: bytes, start: int, end: int) -> tuple[bool, bytes | None]:
    """Walk NDP options: (all well-formed, source link-layer address if present)."""
    lladdr: bytes | None = None
    while start < end:
        if start + 2 > end:
            return False, None
        length = frame[start + 1] * 8
        if length == 0 or start + length > end:
            return False, None
        if frame[start] == 1 and length >= 8:
            lladdr = bytes(frame[start + 2 : start + 8])
        start += length
    return True, lladdr


def _ns_at(frame: bytes) -> tuple[int, int, tuple[int, ...]] | None:
    """(L3 offset, ICMPv6 length, tags) of an NS, or None when this is not an IPv6 NS at all."""
    l2 = _l2(frame)
    if l2 is None or l2[0] != ETH_P_IPV6:
        return None
    _, o, tags = l2
    if len(frame) < o + 41 or frame[o + 6] != 58 or frame[o + 40] != ICMPV6_NS:
        return None
    return o, (frame[o + 4] << 8) | frame[o + 5], tags


def parse_ns(frame: bytes) -> NsFrame | None:
    """The Neighbor Solicitation in ``frame``, or None when it is not one or is malformed."""
    at = _ns_at(frame)
    if at is None:
        return None
    o, plen, tags = at
    icmp = o + 40
    if plen < NS_ICMP_LEN or plen & 7 or plen > NS_ICMP_MAX or len(frame) < icmp + plen:
        return None
    ok, lladdr = _ns_options(frame, icmp + 24, icmp + plen)
    if not ok:
        return None
    return NsFrame(
        eth_dst=bytes(frame[0:6]),
        eth_src=bytes(frame[6:12]),
        vlan_tags=tags,
        src=bytes(frame[o + 8 : o + 24]),
        dst=bytes(frame[o + 24 : o + 40]),
        hop_limit=frame[o + 7],
        code=frame[icmp + 1],
        target=bytes(frame[icmp + 8 : icmp + 24]),
        source_lladdr=lladdr,
    )


# --- the decision: which reply, or why none -------------------------------------------------------


def decide(
    frame: bytes, owned: dict[bytes, bytes], gate_open: bool = True
) -> tuple[Reason, bytes | None]:
    """The reply to ``frame`` given the ``owned`` table (IP bytes -> MAC), or why there is none.

    Same rules as the XDP program: ARP requests and RFC 5227 probes whose Ethernet destination is
    broadcast or the owner's MAC; an ARP with an owned sender IP or an NA for an owned target is
    a conflict, never answered; NS per RFC 4861 7.1.1, DAD answered to ff02::1; up to two VLAN
    tags, kept in the reply; nothing while the gate is closed.
    """
    if len(frame) < 14:
        return Reason.PASS, None
    if len(frame) > _MAX_FRAME:
        frame = frame[:_MAX_FRAME]  # as the compiled module: its buffers hold 2048 bytes
    ethertype = (frame[12] << 8) | frame[13]
    o = 14
    for _ in range(MAX_VLAN_TAGS):
        if ethertype not in VLAN_TPIDS:
            break
        if len(frame) < o + 4:
            return Reason.PASS, None
        ethertype = (frame[o + 2] << 8) | frame[o + 3]
        o += 4
    if ethertype == ETH_P_ARP:
        return _decide_arp(frame, o, owned, gate_open)
    if ethertype == ETH_P_IPV6:
        return _decide_nd(frame, o, owned, gate_open)
    if ethertype in VLAN_TPIDS:
        return Reason.TOO_MANY_VLANS, None
    return Reason.PASS, None


def _decide_arp(
    frame: bytes, o: int, owned: dict[bytes, bytes], gate_open: bool
) -> tuple[Reason, bytes | None]:
    if len(frame) < o + 28 or frame[o : o + 6] != _ARP_HEADER:
        return Reason.MALFORMED, None
    sha = frame[o + 8 : o + 14]
    spa = bytes(frame[o + 14 : o + 18])
    tpa = bytes(frame[o + 24 : o + 28])
    # Replies and announcements (sender IP == target IP) ask nothing; one of them for an owned
    # VIP from another MAC is a conflict. Ordinary requests are not checked (as in XDP, where
    # that lookup would cost every request): another owner announces the VIP anyway.
    if frame[o + 6] != 0 or frame[o + 7] != 1 or spa == tpa:
        claimed = owned.get(spa)
        if claimed is not None and claimed != sha:
            return Reason.CONFLICT, None
        return Reason.NOT_REQUEST, None
    mac = owned.get(tpa)
    if mac is None:
        return Reason.MISS, None
    if frame[0:6] != BROADCAST_MAC and frame[0:6] != mac:
        return Reason.NOT_FOR_US, None
    if not gate_open:
        return Reason.GATE_CLOSED, None
    out = bytearray(frame)
    out[0:6] = sha  # RFC 826: to the sender hardware address
    out[6:12] = mac
    out[o + 7] = 2
    out[o + 8 : o + 14] = mac
    out[o + 14 : o + 18] = tpa
    out[o + 18 : o + 24] = sha
    out[o + 24 : o + 28] = spa
    return (Reason.PROBE_REPLY if spa == _ZERO4 else Reason.ARP_REPLY), bytes(out)


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    return sum(int(v) for v in struct.unpack(f"!{len(data) // 2}H", data))


def _checksum_ok(frame: bytes, o: int, plen: int) -> bool:
    icmp = o + 40
    total = (
        _sum16(bytes(frame[o + 8 : o + 40])) + plen + 58 + _sum16(bytes(frame[icmp : icmp + plen]))
    )
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def _na_claim(frame: bytes, o: int, owned: dict[bytes, bytes]) -> tuple[Reason, bytes | None]:
    """An NA for an owned VIP carrying another MAC is a conflict (anything else passes)."""
    icmp = o + 40
    if len(frame) < icmp + 24:
        return Reason.PASS, None
    mac = owned.get(bytes(frame[icmp + 8 : icmp + 24]))
    if mac is None:
        return Reason.PASS, None
    theirs = frame[6:12]
    plen = (frame[o + 4] << 8) | frame[o + 5]
    if len(frame) >= icmp + 32 and plen >= 32 and frame[icmp + 24] == 2 and frame[icmp + 25] == 1:
        theirs = frame[icmp + 26 : icmp + 32]  # the first option, when it is the TLLA
    return (Reason.CONFLICT if theirs != mac else Reason.PASS), None


def _decide_nd(
    frame: bytes, o: int, owned: dict[bytes, bytes], gate_open: bool
) -> tuple[Reason, bytes | None]:
    icmp = o + 40
    if len(frame) < icmp + 4 or frame[o + 6] != 58:
        return Reason.PASS, None
    kind = frame[icmp]
    if kind == ICMPV6_NA:
        return _na_claim(frame, o, owned)
    if kind != ICMPV6_NS:
        return Reason.PASS, None
    plen = (frame[o + 4] << 8) | frame[o + 5]
    if len(frame) < icmp + 24 or plen < NS_ICMP_LEN or plen & 7 or plen > NS_ICMP_MAX:
        return Reason.MALFORMED, None
    # The option walk, chunk by chunk as the XDP program does it (so the same frame gets the
    # same reason when it is both truncated and has a zero-length option).
    chunks, next_opt, has_slla = plen >> 3, 3, False
    for i in range(chunks):
        at = icmp + i * 8
        if at + 8 > len(frame):
            return Reason.MALFORMED, None
        if i >= 3 and i == next_opt:
            if frame[at + 1] == 0:  # RFC 4861 7.1.1: every option longer than zero
                return Reason.INVALID, None
            has_slla = has_slla or frame[at] == 1
            next_opt += frame[at + 1]
    if next_opt != chunks:  # an option runs past the message
        return Reason.MALFORMED, None
    target = bytes(frame[icmp + 8 : icmp + 24])
    src = bytes(frame[o + 8 : o + 24])
    dst = bytes(frame[o + 24 : o + 40])
    dad = src == _ZERO16
    snm = dst[0:13] == _SNM_PREFIX and dst[13:16] == target[13:16]
    if (
        frame[o + 7] != 255
        or frame[icmp + 1] != 0
        or target[0] == 0xFF
        or not _checksum_ok(frame, o, plen)
        or (dad and (has_slla or not snm))
        or (dst != target and not snm)
    ):
        return Reason.INVALID, None
    mac = owned.get(target)
    if mac is None:
        return Reason.MISS, None
    eth_dst = frame[0:6]
    if eth_dst != mac and not (eth_dst[0:2] == b"\x33\x33" and eth_dst[2:6] == dst[12:16]):
        return Reason.NOT_FOR_US, None
    if not gate_open:
        return Reason.GATE_CLOSED, None
    if dad:
        reply_ip, reply_mac, flags = ALL_NODES, ALL_NODES_MAC, NA_FLAG_OVERRIDE
    else:
        reply_ip, reply_mac = src, bytes(frame[6:12])
        flags = NA_FLAG_OVERRIDE | NA_FLAG_SOLICITED
    header = reply_mac + mac + bytes(frame[12:o])
    reply = header + _ipv6_icmp(target, reply_ip, _na_message(mac, target, flags))
    return (Reason.DAD_REPLY if dad else Reason.NS_REPLY), reply


# --- batched socket I/O ---------------------------------------------------------------------------


def send_frames(fd: int, frames: Iterable[bytes]) -> int:
    """Send each frame on the bound AF_PACKET socket ``fd``; returns how many left."""
    sent = 0
    for frame in frames:
        os.write(fd, frame)
        sent += 1
    return sent


class ResponderCore:
    """Receive a batch on an AF_PACKET socket, decide each frame, send the replies.

    ``service()`` drains what is queued (up to ``max_batches`` batches, never blocking); the
    caller owns the socket, polls it for readability and closes it.
    """

    def __init__(self, fd: int, batch: int = 64) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self._sock = socket.socket(fileno=os.dup(fd))
        self._sock.setblocking(False)
        # The kernel strips the outer VLAN tag before AF_PACKET sees a frame; the auxiliary
        # data gives it back (see _retag).
        self._sock.setsockopt(_SOL_PACKET, _PACKET_AUXDATA, 1)
        self.batch = batch
        self.table: dict[bytes, bytes] = {}
        self.counters = [0] * REASON_COUNT
        self._conflicts: list[tuple[bytes, bytes]] = []
        self._buf = bytearray(_MAX_FRAME)

    def set_table(self, table: Mapping[bytes, bytes]) -> None:
        """Replace the owned table (IP bytes -> MAC); takes effect for the next frame."""
        self.table = dict(table)

    def service(self, gate_open: bool = True, max_batches: int = 4) -> int:
        """Handle what is queued (bounded); returns the number of frames received."""
        received = 0
        recvmsg_into, send = self._sock.recvmsg_into, self._sock.send
        buffers, view = [self._buf], memoryview(self._buf)
        counters, table = self.counters, self.table
        for _ in range(self.batch * max_batches):
            try:
                n, ancdata, _, _ = recvmsg_into(buffers, _AUX_SPACE)
            except BlockingIOError:
                break
            received += 1
            frame = bytes(view[:n])
            for level, kind, data in ancdata:
                if level == _SOL_PACKET and kind == _PACKET_AUXDATA and len(data) >= 20:
                    frame = _retag(frame, data)
            reason, reply = decide(frame, table, gate_open)
            counters[reason] += 1
            if reason == Reason.CONFLICT:
                self._note_conflict(frame)
            elif reply is not None:
                try:  # noqa: SIM105 - suppress() costs ~0.3 us per frame here
                    send(reply)
                except BlockingIOError:  # tx queue full: the requester will ask again
                    pass
        return received

    def _note_conflict(self, frame: bytes) -> None:
        claim = claimed_address(frame)
        if claim is not None and len(self._conflicts) < _MAX_CONFLICTS:
            self._conflicts.append(claim)

    def take_conflicts(self) -> list[tuple[bytes, bytes]]:
        """(IP, MAC) of each conflict seen since the last call (bounded, oldest kept)."""
        taken, self._conflicts = self._conflicts, []
        return taken

    def close(self) -> None:
        self._sock.close()
