"""Membership of the solicited-node multicast group of every IPv6 VIP, ref-counted.

A Neighbor Solicitation for a VIP is sent to the VIP's solicited-node group (ff02::1:ffXX:XXXX,
Ethernet 33:33:ff:XX:XX:XX). NICs with multicast filters drop it unless the node has joined that
group, and Linux joins it only for addresses on an interface, which Layer 2 VIPs never are. So
the speaker joins the group for each IPv6 VIP it answers for, on the VIP's interface, whatever
the responder (XDP or AF_PACKET).

Several VIPs share a group when their last 24 bits are equal: the group is joined with the first
VIP and left with the last. Memberships belong to sockets held here (the kernel drops them when
a socket closes, so a crashed speaker leaks nothing); a socket's membership list is bounded by
``net.core.optmem_max``, so a new socket is opened when one is full.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import threading
from dataclasses import dataclass, field

from openelb.dataplane.frames import solicited_node
from openelb.dataplane.responder import DataplaneError, interface_index

_FULL = (errno.ENOBUFS, errno.ENOMEM)
"""What setsockopt says when a socket holds as many memberships as optmem allows."""


@dataclass
class _Group:
    sock: socket.socket
    vips: set[ipaddress.IPv6Address] = field(default_factory=set)


class SolicitedNodeGroups:
    """Join/leave the solicited-node group of IPv6 VIPs; one group membership per (interface,
    group), held while at least one VIP needs it. Thread-safe."""

    def __init__(self) -> None:
        self._groups: dict[tuple[int, bytes], _Group] = {}
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @staticmethod
    def _key(
        iface: str, ip: ipaddress.IPv6Address | str
    ) -> tuple[int, bytes, ipaddress.IPv6Address]:
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        if not isinstance(address, ipaddress.IPv6Address):
            raise DataplaneError(
                f"{address} is not IPv6: only IPv6 VIPs have a solicited-node group"
            )
        return interface_index(iface), solicited_node(address.packed), address

    def join(self, iface: str, ip: ipaddress.IPv6Address | str) -> bool:
        """Make ``iface`` receive NS for ``ip``; True when the group was joined just now."""
        ifindex, group, address = self._key(iface, ip)
        with self._lock:
            held = self._groups.get((ifindex, group))
            if held is not None:
                held.vips.add(address)
                return False
            sock = self._membership(ifindex, group, iface)
            self._groups[(ifindex, group)] = _Group(sock, {address})
            return True

    def leave(self, iface: str, ip: ipaddress.IPv6Address | str) -> bool:
        """``ip`` no longer needs its group; True when the group was left (its last VIP)."""
        ifindex, group, address = self._key(iface, ip)
        with self._lock:
            held = self._groups.get((ifindex, group))
            if held is None or address not in held.vips:
                return False
            held.vips.discard(address)
            if held.vips:
                return False
            del self._groups[(ifindex, group)]
            try:
                held.sock.setsockopt(
                    socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, _mreq(group, ifindex)
                )
            except OSError as exc:  # the interface is gone, and the membership with it
                if exc.errno not in (errno.ENODEV, errno.EADDRNOTAVAIL, errno.EINVAL):
                    raise DataplaneError(f"cannot leave {_text(group)} on {iface}: {exc}") from exc
            return True

    def _membership(self, ifindex: int, group: bytes, iface: str) -> socket.socket:
        mreq = _mreq(group, ifindex)
        for sock in self._sockets:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            except OSError as exc:
                if exc.errno in _FULL:
                    continue
                raise DataplaneError(f"cannot join {_text(group)} on {iface}: {exc}") from exc
            return sock
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        except OSError as exc:
            sock.close()
            raise DataplaneError(f"cannot join {_text(group)} on {iface}: {exc}") from exc
        self._sockets.append(sock)
        return sock

    def groups(self) -> dict[tuple[int, str], int]:
        """(ifindex, group) -> how many VIPs hold it."""
        with self._lock:
            return {(i, _text(g)): len(h.vips) for (i, g), h in self._groups.items()}

    def close(self) -> None:
        """Leave every group (closing the sockets drops their memberships)."""
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            self._groups.clear()


def _mreq(group: bytes, ifindex: int) -> bytes:
    return group + struct.pack("@I", ifindex)


def _text(group: bytes) -> str:
    return str(ipaddress.IPv6Address(group))
