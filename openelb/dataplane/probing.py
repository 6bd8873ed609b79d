"""Address conflict probes (RFC 5227 / IPv6 DAD) for many addresses at once, without blocking.

A probe is a question with a wait: send an ARP probe (sender IP 0.0.0.0) or a DAD Neighbor
Solicitation, then listen ~30 ms for a host that claims the address. Done one address at a time
inside the speaker's control loop, a node that gains 1,000 VIPs in one step stalled for over 30 s,
its heartbeats stopped, and its peers declared it dead (measured at 10,000 Services). So
:class:`ProbeBatch` sends the probes of every address gained in a step in one burst, listens on one
receive socket per interface and EtherType, and is polled by the loop: :meth:`ProbeBatch.poll`
reads whatever frames are queued without waiting and hands back the addresses that are decided
(claimed at once; unclaimed once their wait has passed). One batch costs one wait, not one per
address.

The receive sockets exist only while probes are pending: an AF_PACKET socket bound to ARP sees
every ARP frame on the segment, which is work nobody needs between batches.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from openelb import metrics
from openelb.dataplane import packet
from openelb.dataplane.frames import ETH_P_ARP, ETH_P_IPV6, ICMPV6_NA, ICMPV6_NS, MAX_VLAN_TAGS
from openelb.dataplane.responder import DataplaneError, IPAddress

SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
_RCVBUF = 4 << 20
"""A batch's probes can draw many frames at once (peers' announcements too): room for them."""


class SendFrames(Protocol):
    """What a batch needs from the announcer: our MAC on a NIC and a way to send frames there."""

    def open(self, iface: str) -> bytes: ...

    def send(self, iface: str, frames: list[bytes]) -> int: ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A decided probe: ``claimer`` is the MAC of a host that claims ``ip``, or None (free)."""

    iface: str
    ip: str
    claimer: bytes | None


@dataclass(slots=True)
class _Pending:
    iface: str
    ip: str
    packed: bytes
    frame: bytes
    kind: str
    started: float
    deadline: float
    sent: int = 0


class ProbeBatch:
    """Pending conflict probes, sent together and answered as frames arrive (see the module doc).

    Not thread-safe: one control loop calls :meth:`start`, :meth:`poll` and :meth:`cancel`.
    """

    def __init__(
        self,
        sender: SendFrames,
        *,
        wait: float = 0.03,
        count: int = 1,
        packet_module: packet.PacketModule | None = None,
    ) -> None:
        if wait <= 0 or count < 1:
            raise ValueError(f"probe needs wait > 0 and count >= 1, got {wait} and {count}")
        self.wait = wait
        self.count = count
        self._sender = sender
        self._packet = packet.impl if packet_module is None else packet_module
        self._pending: dict[str, _Pending] = {}
        self._by_packed: dict[bytes, str] = {}  # the wire form of each pending address
        # (iface, ethertype) -> receive socket, open while a probe of that kind is pending
        self._sockets: dict[tuple[str, int], socket.socket] = {}
        self._own: dict[str, bytes] = {}

    # --- queries ---------------------------------------------------------------------------------

    def pending(self) -> frozenset[str]:
        return frozenset(self._pending)

    def __contains__(self, ip: object) -> bool:
        return ip in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do (a repeat to send or a wait to end)."""
        times = [self._next_time(p) for p in self._pending.values()]
        return min(times) if times else None

    def sockets(self) -> list[socket.socket]:
        """The receive sockets open now (a caller may ``select`` on them)."""
        return list(self._sockets.values())

    # --- commands --------------------------------------------------------------------------------

    def start(self, iface: str, ips: Iterable[IPAddress | str], *, now: float) -> None:
        """Probe every address in ``ips`` on ``iface``: first probes leave now, in one burst.

        An address already pending keeps its first probe's deadline. Raises
        :class:`DataplaneError` (nothing pending added) if the interface cannot be used.
        """
        own = self._sender.open(iface)
        self._own[iface] = own
        fresh: list[_Pending] = []
        for ip in ips:
            address = _address(ip)
            key = str(address)
            if key in self._pending or any(p.ip == key for p in fresh):
                continue
            if address.version == 4:
                frame, kind = self._packet.build_arp_probe(own, address.packed), "arp_probe"
            else:
                frame, kind = self._packet.build_dad_ns(own, address.packed), "dad_ns"
            fresh.append(_Pending(iface, key, address.packed, frame, kind, now, now + self.wait))
        if not fresh:
            return
        # Listen before sending: an answer within microseconds must not slip past.
        for ethertype in {ETH_P_ARP if p.kind == "arp_probe" else ETH_P_IPV6 for p in fresh}:
            self._listen(iface, ethertype)
        for p in fresh:
            self._pending[p.ip] = p
            self._by_packed[p.packed] = p.ip
        self._send_due(now, fresh)

    def poll(self, *, now: float | None = None) -> list[ProbeResult]:
        """Read queued frames (never waits), send repeats due; the probes decided by now."""
        decided: list[ProbeResult] = []
        if not self._pending:
            return decided
        for (iface, _), sock in list(self._sockets.items()):
            decided += self._read(iface, sock)
        now = time.monotonic() if now is None else now
        self._send_due(now, list(self._pending.values()))
        for p in [p for p in self._pending.values() if p.deadline <= now]:
            self._forget(p.ip)
            decided.append(ProbeResult(p.iface, p.ip, None))
        self._close_idle()
        return decided

    def cancel(self, ip: str) -> None:
        """Forget ``ip`` (lost, or taken over on failover): it is neither claimed nor free."""
        if ip in self._pending:
            self._forget(ip)
            self._close_idle()

    def wait_all(self, *, timeout: float | None = None) -> list[ProbeResult]:
        """Block until every pending probe is decided (the one-shot :meth:`probe` path)."""
        out: list[ProbeResult] = []
        limit = None if timeout is None else time.monotonic() + timeout
        while self._pending:
            out += self.poll()
            deadline = self.next_deadline()
            if deadline is None:
                break
            if limit is not None:
                deadline = min(deadline, limit)
                if time.monotonic() >= limit:
                    break
            left = deadline - time.monotonic()
            if left > 0:
                select.select(self.sockets(), [], [], left)
        return out

    def close(self) -> None:
        self._pending.clear()
        self._by_packed.clear()
        self._close_idle()

    # --- internals -------------------------------------------------------------------------------

    def _forget(self, ip: str) -> None:
        p = self._pending.pop(ip)
        self._by_packed.pop(p.packed, None)

    def _next_time(self, p: _Pending) -> float:
        if p.sent < self.count:
            return p.started + self.wait * p.sent / self.count
        return p.deadline

    def _send_due(self, now: float, probes: list[_Pending]) -> None:
        by_iface: dict[tuple[str, str], list[bytes]] = {}
        for p in probes:
            while p.sent < self.count and p.started + self.wait * p.sent / self.count <= now:
                by_iface.setdefault((p.iface, p.kind), []).append(p.frame)
                p.sent += 1
        for (iface, kind), frames in by_iface.items():
            try:
                sent = self._sender.send(iface, frames)
            except DataplaneError:
                sent = 0  # unsent probes wait out their deadline: no answer means free
            if sent:
                metrics.frames_sent(iface, kind, sent)

    def _read(self, iface: str, sock: socket.socket) -> list[ProbeResult]:
        decided: list[ProbeResult] = []
        own = self._own.get(iface, b"")
        while True:
            try:
                frame = sock.recv(2048)
            except BlockingIOError:
                return decided
            except OSError:
                return decided  # the NIC went away: pending probes end at their deadline
            claim = claimed(frame, own)
            if claim is None:
                continue
            packed, mac = claim
            ip = self._by_packed.get(packed)
            if ip is not None and self._pending[ip].iface == iface:
                self._forget(ip)
                decided.append(ProbeResult(iface, ip, mac))

    def _listen(self, iface: str, ethertype: int) -> None:
        if (iface, ethertype) in self._sockets:
            return
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind((iface, ethertype))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise DataplaneError(f"cannot listen on {iface!r}: {exc.strerror}") from exc
        self._sockets[(iface, ethertype)] = sock

    def _close_idle(self) -> None:
        needed = {
            (p.iface, ETH_P_ARP if p.kind == "arp_probe" else ETH_P_IPV6)
            for p in self._pending.values()
        }
        for key in [k for k in self._sockets if k not in needed]:
            self._sockets.pop(key).close()


def _address(ip: IPAddress | str) -> IPAddress:
    try:
        return ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError as exc:
        raise DataplaneError(f"not an IP address: {ip!r}") from exc


def claimed(frame: bytes, own: bytes) -> tuple[bytes, bytes] | None:
    """The address (packed) another host claims in ``frame`` and that host's MAC, else None.

    IPv4: any ARP whose sender IP is set (a reply or announcement claims it), or a probe (sender
    IP 0.0.0.0) for its target from another MAC. IPv6: an NA for its target (the MAC from the
    target link-layer option, else the Ethernet source), or another host's DAD solicitation.
    Frames from ``own`` MAC are never claims.
    """
    o, ethertype = 14, int.from_bytes(frame[12:14]) if len(frame) >= 14 else 0
    for _ in range(MAX_VLAN_TAGS):
        if ethertype not in (0x8100, 0x88A8) or len(frame) < o + 4:
            break
        ethertype, o = int.from_bytes(frame[o + 2 : o + 4]), o + 4
    if ethertype == ETH_P_ARP and len(frame) >= o + 28:
        sha, spa, tpa = frame[o + 8 : o + 14], frame[o + 14 : o + 18], frame[o + 24 : o + 28]
        if sha == own:
            return None
        return bytes(spa if spa != bytes(4) else tpa), bytes(sha)
    icmp = o + 40
    if ethertype != ETH_P_IPV6 or len(frame) < icmp + 24:
        return None
    if frame[o + 6] != 58 or frame[6:12] == own:
        return None
    target = bytes(frame[icmp + 8 : icmp + 24])
    if frame[icmp] == ICMPV6_NA:
        opt = icmp + 24
        while opt + 8 <= len(frame) and frame[opt + 1]:
            if frame[opt] == 2:
                return target, bytes(frame[opt + 2 : opt + 8])
            opt += frame[opt + 1] * 8
        return target, bytes(frame[6:12])
    if frame[icmp] == ICMPV6_NS and frame[o + 8 : o + 24] == bytes(16):
        return target, bytes(frame[6:12])
    return None
