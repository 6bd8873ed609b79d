"""Watch VRRP adverts on the wire, to measure failover where it happens.

keepalived reports *that* this node became master, not how long the VIP was without one. The
node taking over can tell: the previous master's last advert is the last sign of life, so
"became MASTER at t" minus "last advert from another node for this router ID" is the
failover duration (detection plus election) that ``openelb_vrrp_failover_duration_seconds``
records. A raw socket for IP protocol 112 sees a copy of every VRRP packet delivered to this
host (unicast adverts to us, multicast ones keepalived joined); it costs one small read per
advert (10/s per instance and peer at the 0.1 s default).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import select
import socket
import struct
import threading
import time
from contextlib import AbstractContextManager

log = logging.getLogger(__name__)

IPPROTO_VRRP = 112
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("=qq")


def parse_advert(data: bytes, *, family: int) -> tuple[int, int] | None:
    """(router ID, priority) of a VRRP advert; IPv4 raw reads start with the IP header."""
    if family == 4:
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8 or data[0] & 0x0F != 1:  # type 1 = ADVERTISEMENT
        return None
    return data[1], data[2]


class AdvertWatcher:
    """Remembers when each (family, router ID) was last advertised by another node."""

    def __init__(self, *, netns: str | None = None) -> None:
        self._netns = netns
        self._last: dict[tuple[int, int], float] = {}
        self._own: set[str] = set()
        self._sockets: list[tuple[socket.socket, int]] = []
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    def start(self) -> AdvertWatcher:
        try:
            with self._namespace():
                for family, af in ((4, socket.AF_INET), (6, socket.AF_INET6)):
                    sock = socket.socket(af, socket.SOCK_RAW, IPPROTO_VRRP)
                    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                    self._sockets.append((sock, family))
        except OSError as exc:  # no CAP_NET_RAW: failover is then just not measured
            log.warning("cannot watch VRRP adverts (%s); failover duration not recorded", exc)
            return self
        self._thread = threading.Thread(target=self._loop, name="vrrp-adverts", daemon=True)
        self._thread.start()
        return self

    def _namespace(self) -> AbstractContextManager[None]:
        if self._netns is None:
            return contextlib.nullcontext()
        from openelb.lab.netns import in_netns

        return in_netns(self._netns)

    def set_own_addresses(self, addresses: set[str]) -> None:
        """This node's advert sources (its own adverts are not "another node")."""
        self._own = {str(ipaddress.ip_address(a)) for a in addresses}

    def last_foreign(self, family: int, router_id: int) -> float | None:
        """Wall-clock time of the last advert for ``router_id`` from another node, or None."""
        return self._last.get((family, router_id))

    def _loop(self) -> None:
        by_fd = {sock.fileno(): (sock, family) for sock, family in self._sockets}
        while True:
            ready, _, _ = select.select([*by_fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                sock, family = by_fd[fd]
                self.read_one(sock, family)

    def read_one(self, sock: socket.socket, family: int) -> None:
        try:
            data, ancdata, _flags, peer = sock.recvmsg(2048, socket.CMSG_SPACE(_TIMESPEC.size))
        except OSError:
            return
        at = time.time()
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack_from(raw)
                at = sec + nsec / 1e9
        parsed = parse_advert(data, family=family)
        if parsed is None:
            return
        source = str(ipaddress.ip_address(peer[0].split("%")[0]))
        if source in self._own:
            return
        self._last[(family, parsed[0])] = at

    def close(self) -> None:
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(5.0)
        for sock, _family in self._sockets:
            sock.close()
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._stop_w = -1
