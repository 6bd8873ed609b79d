"""The one interface the speaker uses to answer ARP/NDP for the VIPs this node owns.

Three implementations sit behind it: the XDP program in native mode, the same program in generic
(skb) mode, and a userspace AF_PACKET responder built on the packet module. The speaker does not
care which one runs; it syncs the set of owned VIPs, keeps the liveness gate fresh, reads
counters for metrics and polls for conflicts. :func:`open_responder` picks the fastest one that
works here and says why it did not pick a faster one (``Responder.reason``).

Liveness gate contract (shared by every implementation, and by the speaker's native heartbeat
thread, which may stamp the XDP gate map directly):

- the gate is a single unsigned 64-bit DEADLINE in CLOCK_MONOTONIC nanoseconds (the clock of
  ``bpf_ktime_get_ns()`` and of Python's ``time.monotonic_ns()``);
- the responder answers only while ``now < deadline``; otherwise it passes the request up to the
  kernel and counts ``gate_closed``;
- userspace opens or extends the gate by writing ``now + max_age`` (``refresh_gate(max_age)``);
  a hung speaker stops refreshing and its node stops answering within ``max_age``;
- for XDP, :meth:`Responder.gate_handle` gives the map fd and key so C code can do the same with a
  plain ``BPF_MAP_UPDATE_ELEM`` (value: the deadline as a native-endian u64).

Counter names (``Responder.counters()`` keys) are the same for every implementation:
:data:`COUNTER_REASONS`.
"""

from __future__ import annotations

import fcntl
import importlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from openelb.dataplane.xdp_loader import LoadedProgram

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MODES: Final = ("xdp-native", "xdp-generic", "afpacket")
"""Every value ``Responder.mode`` can take, fastest first."""

ModeRequest = Literal["auto", "xdp-native", "xdp-generic", "afpacket"]

COUNTER_REASONS: Final = (
    "arp_reply",  # answered an ARP request for an owned VIP
    "probe_reply",  # answered an RFC 5227 probe (sender IP 0.0.0.0) for an owned VIP
    "ns_reply",  # answered a Neighbor Solicitation with a solicited NA
    "dad_reply",  # answered a DAD NS (source ::) with an NA to ff02::1
    "miss",  # ARP request / NS for an address we do not own
    "conflict",  # someone else claimed an owned VIP (ARP spa == VIP, or an NA for it)
    "malformed",  # truncated or wrong-shaped ARP/NS (bad lengths, options)
    "invalid",  # well-formed NS failing RFC 4861 7.1.1 (hop limit, code, target, destination)
    "not_for_us",  # owned VIP, but the Ethernet destination is neither broadcast nor our MAC
    "not_request",  # ARP reply or announcement (sender IP == target IP): nothing to answer
    "gate_closed",  # owned VIP, but the liveness gate is closed: passed, not answered
    "too_many_vlans",  # more than two VLAN tags: passed untouched
)
"""Reasons a responder counts, in the order of the C enum in ``bpf/consts.h``."""

DEFAULT_PIN_ROOT: Final = Path("/sys/fs/bpf/openelb")
"""Where the XDP program and maps are pinned (one folder per ``instance``)."""

_SIOCGIFHWADDR: Final = 0x8927
_IFNAMSIZ: Final = 16


class DataplaneError(RuntimeError):
    """The data plane could not do what was asked; the message says why and what to do."""


def interface_mac(iface: str) -> bytes:
    """The MAC address of ``iface`` in the calling thread's network namespace."""
    if not iface or len(iface) >= _IFNAMSIZ:
        raise DataplaneError(f"bad interface name {iface!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            raw = fcntl.ioctl(sock.fileno(), _SIOCGIFHWADDR, struct.pack("256s", iface.encode()))
        except OSError as exc:
            raise DataplaneError(f"cannot read the MAC of {iface!r}: {exc.strerror}") from exc
    return bytes(raw[18:24])


def interface_index(iface: str) -> int:
    """The ifindex of ``iface`` in the calling thread's network namespace."""
    try:
        return socket.if_nametoindex(iface)
    except OSError as exc:
        raise DataplaneError(f"no interface named {iface!r} on this node") from exc


@dataclass(frozen=True)
class VipEntry:
    """One owned VIP on one interface, answered with ``mac``."""

    ifindex: int
    """Interface the VIP is announced on (requests on other interfaces are not answered)."""
    ip: IPAddress
    """The VIP, IPv4 (answered over ARP) or IPv6 (answered over NDP)."""
    mac: bytes
    """The 6-byte MAC the replies carry (normally the interface's own)."""

    def __post_init__(self) -> None:
        if len(self.mac) != 6:
            raise ValueError(f"mac must be 6 bytes, got {len(self.mac)}")
        if self.ifindex <= 0:
            raise ValueError(f"ifindex must be positive, got {self.ifindex}")
        if not isinstance(self.ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            raise TypeError(f"ip must be an IPv4Address or IPv6Address, got {type(self.ip)}")
        if self.ip.is_multicast or self.ip.is_unspecified:
            raise ValueError(f"{self.ip} cannot be a VIP (multicast or unspecified)")

    @classmethod
    def on(cls, iface: str, ip: IPAddress | str, mac: bytes | None = None) -> VipEntry:
        """The entry for ``ip`` on interface ``iface``, answered with ``mac`` or the NIC's own."""
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        return cls(interface_index(iface), address, mac or interface_mac(iface))

    @property
    def version(self) -> int:
        return self.ip.version

    def __str__(self) -> str:
        return f"{self.ip}@if{self.ifindex}={self.mac.hex(':')}"


@dataclass(frozen=True)
class SyncResult:
    """What ``Responder.sync`` changed to reach the desired set."""

    added: tuple[VipEntry, ...] = ()
    removed: tuple[VipEntry, ...] = ()
    updated: tuple[VipEntry, ...] = ()
    """Entries kept but with a new MAC (the new values)."""
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.updated)


@dataclass(frozen=True)
class Conflict:
    """Another host claimed a VIP this node answers for (seen in an ARP or an NA)."""

    ifindex: int
    ip: IPAddress
    mac: bytes
    """The other host's MAC (the sender hardware address / target link-layer address)."""
    monotonic_ns: int = 0
    """When it was seen (CLOCK_MONOTONIC), 0 if unknown."""


@dataclass(frozen=True)
class GateHandle:
    """How other code (a C heartbeat thread) stamps the gate: update ``key`` in map ``fd``."""

    map_fd: int
    key: int = 0
    value_size: int = 8


@runtime_checkable
class Responder(Protocol):
    """Answers ARP/NS for a set of VIP entries; one per speaker process."""

    mode: str
    """One of :data:`MODES`."""
    reason: str
    """Why this mode and not a faster one ("" when the fastest one works)."""
    interfaces: tuple[str, ...]
    """The interfaces this responder listens on."""

    def sync(self, entries: Iterable[VipEntry]) -> SyncResult:
        """Make the answered set equal to ``entries`` with the fewest changes."""
        ...

    def add(self, entry: VipEntry) -> None:
        """Start answering for one entry (replaces the MAC of an existing one)."""
        ...

    def remove(self, entry: VipEntry) -> None:
        """Stop answering for one entry (matched on ifindex and ip); absent is fine."""
        ...

    def entries(self) -> set[VipEntry]:
        """The entries answered right now (read back from the data plane)."""
        ...

    def counters(self) -> dict[str, int]:
        """Totals by reason (every name in :data:`COUNTER_REASONS`), summed over CPUs."""
        ...

    def conflicts(self, timeout: float = 0.0) -> list[Conflict]:
        """Conflicts seen since the last call, waiting up to ``timeout`` seconds for one."""
        ...

    def refresh_gate(self, max_age: float) -> None:
        """Open the gate until ``max_age`` seconds from now."""
        ...

    def close_gate(self) -> None:
        """Close the gate now: stop answering until the next refresh."""
        ...

    def gate_open(self) -> bool:
        """Whether the gate's deadline is still in the future."""
        ...

    def gate_handle(self) -> GateHandle | None:
        """The map fd/key to stamp the gate from other code, or None where there is no map."""
        ...

    def close(self, *, detach: bool) -> None:
        """Release resources. ``detach=False`` leaves the XDP program (pinned) answering, so a
        restarted speaker takes over with no gap; ``detach=True`` removes it and its pins."""
        ...


def open_responder(
    interfaces: Sequence[str],
    *,
    mode: ModeRequest = "auto",
    pin_root: Path = DEFAULT_PIN_ROOT,
    instance: str = "default",
    program: LoadedProgram | None = None,
) -> Responder:
    """The fastest responder that works here, listening on ``interfaces``.

    ``program``: the XDP program loaded ahead of time (``xdp.preload_xdp``), used by the XDP
    modes instead of compiling again; it belongs to the returned responder when that is an XDP
    one, and stays the caller's otherwise.

    ``auto`` tries native XDP, then generic XDP, then the AF_PACKET responder, and records in
    ``reason`` (and the log) why each faster one failed. On veth interfaces ``auto`` skips native
    XDP (its replies need an XDP program on the peer, which this node may not control). Any
    other ``mode`` opens exactly that one or raises :class:`DataplaneError` with the reason.

    The AF_PACKET responder is provided by :mod:`openelb.dataplane.afpacket` as
    ``open_afpacket(interfaces, *, reason) -> Responder``.
    """
    if mode not in ("auto", *MODES):
        raise DataplaneError(f"unknown data plane mode {mode!r}; one of auto, {', '.join(MODES)}")
    if not interfaces:
        raise DataplaneError("a responder needs at least one interface")
    wanted = MODES if mode == "auto" else (mode,)
    failures: list[str] = []
    for candidate in wanted:
        reason = "; ".join(failures)
        try:
            if candidate == "afpacket":
                responder = _open_afpacket(interfaces, reason=reason)
            else:
                from openelb.dataplane.xdp import open_xdp

                responder = open_xdp(
                    interfaces,
                    generic=candidate == "xdp-generic",
                    pin_root=pin_root,
                    instance=instance,
                    reason=reason,
                    native_on_veth=mode != "auto",
                    program=program,
                )
        except DataplaneError as exc:
            failures.append(f"{candidate}: {exc}")
            log.warning("data plane %s unavailable: %s", candidate, exc)
            continue
        if failures:
            log.warning("data plane: using %s (%s)", responder.mode, responder.reason)
        else:
            log.info("data plane: using %s", responder.mode)
        return responder
    raise DataplaneError("no data plane could be opened: " + "; ".join(failures))


def _open_afpacket(interfaces: Sequence[str], *, reason: str) -> Responder:
    # Imported by name: the module belongs to the packet module's side of the data plane and
    # this one must work (XDP only) before and without it.
    try:
        afpacket = importlib.import_module("openelb.dataplane.afpacket")
    except ImportError as exc:
        raise DataplaneError(f"the AF_PACKET responder is not available ({exc})") from exc
    opener = getattr(afpacket, "open_afpacket", None)
    if opener is None:
        raise DataplaneError("openelb.dataplane.afpacket has no open_afpacket()")
    responder: Responder = opener(interfaces, reason=reason)
    return responder


__all__ = [
    "COUNTER_REASONS",
    "DEFAULT_PIN_ROOT",
    "MODES",
    "Conflict",
    "DataplaneError",
    "GateHandle",
    "IPAddress",
    "Responder",
    "SyncResult",
    "VipEntry",
    "interface_index",
    "interface_mac",
    "open_responder",
]
