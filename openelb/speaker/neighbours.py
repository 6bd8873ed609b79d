"""Unsticking the kernel's neighbour entries of peers we hold dead, so a healed link carries
heartbeats at once.

While a link is cut, the heartbeats to a peer keep failing ARP/ND: its neighbour entry goes
INCOMPLETE, then FAILED, and the kernel re-probes only every ``retrans_time`` (1 s). Once the link
heals, heartbeats wait up to that long for the next probe (measured here: ~0.6 s after a 3.5 s
cut), and so does the heal of the partition: both owners answer meanwhile. Deleting such an
entry (never a usable one) makes the next heartbeat create a fresh one, which probes at once.
Done at most every ``period`` per peer while it is dead: one ARP request or NS each, bounded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger(__name__)

NUD_INCOMPLETE = 0x01
NUD_FAILED = 0x20
STUCK = NUD_INCOMPLETE | NUD_FAILED
"""Entry states that hold heartbeats back (no link-layer address known)."""


class NeighbourUnsticker:
    """Deletes INCOMPLETE/FAILED neighbour entries of given addresses (this thread's netns)."""

    def __init__(self, *, period: float = 0.1) -> None:
        self.period = period
        self._last: dict[str, float] = {}
        self._ipr: Any = None
        self.deleted = 0

    def unstick(self, addresses: Iterable[str], *, now: float) -> int:
        """Delete the stuck entries of ``addresses`` not handled in the last ``period``."""
        due = [a for a in addresses if now - self._last.get(a, -1e9) >= self.period]
        deleted = 0
        for address in due:
            self._last[address] = now
            try:
                deleted += self._unstick_one(address)
            except (OSError, ValueError, NetlinkError) as exc:  # never costs the control loop
                log.debug("cannot check the neighbour entry of %s: %s", address, exc)
        self.deleted += deleted
        return deleted

    @property
    def watched(self) -> bool:
        return bool(self._last)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop bookkeeping of addresses no longer watched."""
        wanted = set(keep)
        self._last = {a: t for a, t in self._last.items() if a in wanted}

    def _unstick_one(self, address: str) -> int:
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        if self._ipr is None:
            from pyroute2 import IPRoute

            self._ipr = IPRoute()
        deleted = 0
        for entry in self._ipr.get_neighbours(family=family, dst=str(ip)):
            if entry["state"] & STUCK:
                self._ipr.neigh("del", dst=str(ip), ifindex=entry["ifindex"], family=family)
                deleted += 1
        return deleted

    def close(self) -> None:
        if self._ipr is not None:
            with contextlib.suppress(Exception):
                self._ipr.close()
            self._ipr = None
