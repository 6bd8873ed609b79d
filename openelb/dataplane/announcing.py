"""Gratuitous ARP / unsolicited NA sending and address conflict probes, from open sockets.

Announce latency is the time from "we own this VIP" to the first frame on the wire, so the
sockets are opened ahead of time (``open(iface)`` when an interface is configured) and
``announce()`` only builds frames and hands them to one ``sendmmsg``. What goes out follows what
was measured to move a Linux neighbour entry at once:

- IPv4: the GARP request form (broadcast, sender IP = target IP = VIP), applied by Linux to an
  existing entry in any state; then the reply form with target MAC = sender MAC (a reply whose
  target MAC is ff:ff.. is ignored within the 1 s locktime);
- IPv6: an unsolicited NA to ff02::1 with Override=1, Solicited=0 and the target link-layer
  address (without Override the MAC does not move for 8 s and more).

``probe()`` is RFC 5227 address conflict detection for a newly assigned IPv4 VIP (an ARP probe
with sender IP 0.0.0.0), or a DAD Neighbor Solicitation for IPv6: it returns the MAC of a host
that claims the address, or None. It is never used on failover.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterable

from openelb import metrics
from openelb.dataplane import packet
from openelb.dataplane.probing import ProbeBatch, claimed
from openelb.dataplane.responder import DataplaneError, IPAddress, interface_mac

log = logging.getLogger(__name__)


def _address(ip: IPAddress | str) -> IPAddress:
    try:
        return ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError as exc:
        raise DataplaneError(f"not an IP address: {ip!r}") from exc


class _Link:
    """An open send socket on one interface and that interface's MAC."""

    def __init__(self, iface: str) -> None:
        # Protocol 0: this socket only sends, the kernel queues nothing to it.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.bind((iface, 0))
        except OSError as exc:
            sock.close()
            raise DataplaneError(
                f"cannot open an AF_PACKET socket on {iface!r}: {exc.strerror}"
            ) from exc
        self.iface = iface
        self.sock = sock
        self.mac = interface_mac(iface)


class AnnounceSender:
    """Sends announcements and probes from sockets opened ahead, one per interface.

    Thread-safe: the speaker may announce from several threads; sends on one socket do not
    interleave frames, and opening is serialised.
    """

    def __init__(self, *, packet_module: packet.PacketModule | None = None) -> None:
        """``packet_module`` overrides the facade's choice (benchmarks compare both)."""
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()
        self._packet = packet.impl if packet_module is None else packet_module

    def open(self, iface: str) -> bytes:
        """Open (once) the send socket of ``iface``, in the caller's namespace; its MAC."""
        link = self._links.get(iface)
        if link is None:
            with self._lock:
                link = self._links.get(iface)
                if link is None:
                    link = _Link(iface)
                    self._links[iface] = link
        return link.mac

    def interfaces(self) -> list[str]:
        return sorted(self._links)

    def announce(
        self, iface: str, ips: Iterable[IPAddress | str], *, mac: bytes | None = None
    ) -> int:
        """Announce ``ips`` on ``iface`` as being at ``mac`` (default: the interface's MAC).

        Returns the number of frames sent: two per IPv4 address (request form first, so the
        first frame leaves first), one per IPv6 address. Opens the interface if needed.
        """
        link = self._links.get(iface)
        if link is None:
            self.open(iface)
            link = self._links[iface]
        src = link.mac if mac is None else mac
        if len(src) != 6:
            raise DataplaneError(f"mac must be 6 bytes, got {len(src)}")
        v4: list[bytes] = []
        v6: list[bytes] = []
        for ip in ips:
            address = _address(ip)
            (v4 if address.version == 4 else v6).append(address.packed)
        module = self._packet
        frames = module.build_garp_batch(src, v4)
        frames += module.build_unsolicited_na_batch(src, v6)
        frames += module.build_garp_batch(src, v4, True)
        sent = self._send(link, frames)
        if sent:
            metrics.frames_sent(iface, "garp_request", min(sent, len(v4)))
            metrics.frames_sent(iface, "unsolicited_na", max(0, min(sent - len(v4), len(v6))))
            metrics.frames_sent(iface, "garp_reply", max(0, sent - len(v4) - len(v6)))
        return sent

    def _send(self, link: _Link, frames: list[bytes]) -> int:
        if not frames:
            return 0
        try:
            return self._packet.send_frames(link.sock.fileno(), frames)
        except OSError as exc:
            metrics.send_failed(link.iface)
            log.warning("send on %s failed (%s); reopening its socket", link.iface, exc)
        # The interface may have been recreated (a new ifindex): reopen once and retry.
        fresh = self._reopen(link)
        try:
            return self._packet.send_frames(fresh.sock.fileno(), frames)
        except OSError as exc:
            metrics.send_failed(link.iface)
            raise DataplaneError(f"cannot send on {link.iface!r}: {exc.strerror}") from exc

    def _reopen(self, link: _Link) -> _Link:
        with self._lock:
            current = self._links.get(link.iface)
            if current is None or current is link:
                link.sock.close()
                current = _Link(link.iface)
                self._links[link.iface] = current
            return current

    def send(self, iface: str, frames: list[bytes]) -> int:
        """Send prepared ``frames`` on ``iface`` in one batch (opens it if needed)."""
        link = self._links.get(iface)
        if link is None:
            self.open(iface)
            link = self._links[iface]
        return self._send(link, frames)

    def probe(
        self,
        iface: str,
        ip: IPAddress | str,
        *,
        wait: float = 0.03,
        count: int = 1,
    ) -> bytes | None:
        """Is ``ip`` already in use on ``iface``? The claiming host's MAC, or None.

        Sends ``count`` RFC 5227 probes (IPv4) or DAD solicitations (IPv6), spread over
        ``wait`` seconds, and listens until ``wait`` has passed for an ARP whose sender IP is
        ``ip`` (a reply, or another host's announcement), another host's probe for ``ip``, or an
        NA / DAD solicitation for it. Blocks; the speaker's loop uses a
        :class:`~openelb.dataplane.probing.ProbeBatch` instead, for many addresses at once.
        """
        batch = ProbeBatch(self, wait=wait, count=count, packet_module=self._packet)
        try:
            batch.start(iface, [ip], now=time.monotonic())
            for result in batch.wait_all():
                return result.claimer
            return None
        finally:
            batch.close()

    def close(self) -> None:
        with self._lock:
            for link in self._links.values():
                link.sock.close()
            self._links.clear()

    def __enter__(self) -> AnnounceSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def claimant(frame: bytes, target: bytes, own: bytes) -> bytes | None:
    """The MAC of another host that ``frame`` shows claiming ``target``, else None.

    IPv4: any ARP with sender IP = target (a reply or announcement), or a probe for it from
    another MAC. IPv6: an NA for the target (TLLA, or the Ethernet source), or another host's
    DAD solicitation for it.
    """
    claim = claimed(frame, own)
    return claim[1] if claim is not None and claim[0] == target else None
