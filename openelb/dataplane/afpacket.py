"""The userspace fallback responder: ARP/NS answered from AF_PACKET sockets.

Used where XDP cannot load (no bcc, no kernel headers, no permission). It gives the XDP
program's answers (the same ``decide`` rules, the same bytes) from a thread that receives and
sends in batches (recvmmsg/sendmmsg in the compiled packet module, a plain loop in the
pure-Python one). A classic BPF filter on each socket lets only ARP and ICMPv6 NS/NA through and
outgoing frames are ignored, so the thread never wakes up for other traffic.

Two things differ from XDP and the speaker relies on neither: the kernel still sees every
request (harmless: openelb never puts Layer 2 VIPs on an interface, so the kernel has nothing to
answer), and VLAN tags are stripped by the kernel before AF_PACKET sees a frame, so a tagged VIP
is served on its VLAN sub-interface (``eth0.100``) rather than on the parent.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from openelb import metrics
from openelb.config import AfPacketSettings
from openelb.dataplane import packet
from openelb.dataplane.frames import Reason
from openelb.dataplane.responder import (
    COUNTER_REASONS,
    Conflict,
    DataplaneError,
    GateHandle,
    SyncResult,
    VipEntry,
    interface_index,
)

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_QDISC_BYPASS = 20
SO_ATTACH_FILTER = 26

# Classic BPF: accept ARP, and IPv6 ICMPv6 (next header 58, no extension headers) of type
# NS (135) or NA (136, for conflict detection); drop the rest before it is queued to us.
_FILTER: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 12),  # ldh [12]          EtherType
    (0x15, 6, 0, 0x0806),  # jeq ARP       -> accept
    (0x15, 0, 6, 0x86DD),  # jeq IPv6      else drop
    (0x30, 0, 0, 20),  # ldb [20]          IPv6 next header
    (0x15, 0, 4, 58),  # jeq ICMPv6        else drop
    (0x30, 0, 0, 54),  # ldb [54]          ICMPv6 type
    (0x15, 1, 0, 135),  # jeq NS           -> accept
    (0x15, 0, 1, 136),  # jeq NA           else drop
    (0x06, 0, 0, 2048),  # accept (first 2048 bytes: the packet module's buffer size)
    (0x06, 0, 0, 0),  # drop
)


def attach_filter(sock: socket.socket, program: Sequence[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF ``program`` (code, jt, jf, k) to ``sock`` (SO_ATTACH_FILTER)."""
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_listener(iface: str, *, rcvbuf: int = 1 << 22) -> socket.socket:
    """An AF_PACKET socket on ``iface`` receiving only incoming ARP and NS/NA frames.

    Opened with protocol 0 (receives nothing), filtered, then bound: no unfiltered frame from
    another interface can slip in between.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        # Replies go straight to the driver: a reply is one small frame that must leave now,
        # queueing disciplines have nothing to add (measured: more replies per second).
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        attach_filter(sock, _FILTER)
        sock.bind((iface, ETH_P_ALL))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise DataplaneError(
            f"cannot open an AF_PACKET socket on {iface!r}: {exc.strerror} "
            "(needs CAP_NET_RAW and an existing interface)"
        ) from exc
    return sock


@dataclass
class _Port:
    """One listened interface: its socket, its batch core and its share of the table."""

    iface: str
    ifindex: int
    sock: socket.socket
    core: packet.ResponderCoreLike
    reported: list[int]
    """Counter values already handed to the metrics (the next report adds the difference)."""


class AfPacketResponder:
    """The Responder of mode ``afpacket``: one thread, one filtered socket per interface.

    The liveness gate is a CLOCK_MONOTONIC deadline in ns checked once per batch; it starts
    closed, so nothing is answered until the speaker calls :meth:`refresh_gate`.
    """

    mode = "afpacket"

    def __init__(
        self,
        interfaces: Sequence[str],
        *,
        reason: str = "",
        batch: int = 64,
        poll_interval: float = 0.05,
        packet_module: packet.PacketModule | None = None,
    ) -> None:
        """Listen on ``interfaces`` (names in the caller's network namespace).

        ``packet_module`` overrides the facade's choice (tests and benchmarks compare both).
        """
        if not interfaces:
            raise DataplaneError("a responder needs at least one interface")
        self.reason = reason
        self.interfaces = tuple(dict.fromkeys(interfaces))
        module = packet.impl if packet_module is None else packet_module
        self.packet_module = module.IMPLEMENTATION
        self._poll_ms = max(1, int(poll_interval * 1000))
        self._deadline_ns = 0
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, bytes], VipEntry] = {}
        self._conflicts: queue.Queue[Conflict] = queue.Queue()
        self._ports: list[_Port] = []
        self._stop = threading.Event()
        try:
            for iface in self.interfaces:
                ifindex = interface_index(iface)
                sock = open_listener(iface)
                core = module.ResponderCore(sock.fileno(), batch)
                self._ports.append(_Port(iface, ifindex, sock, core, [0] * len(Reason)))
        except BaseException:
            self._close_sockets()
            raise
        self._by_ifindex = {port.ifindex: port for port in self._ports}
        self.receive_path = (
            "rx-ring"
            if all(getattr(p.core, "uses_ring", False) for p in self._ports)
            else "recvmmsg"
            if self.packet_module == "compiled"
            else "recv"
        )
        """How requests are received: a shared ring (compiled), recvmmsg, or one recv each."""
        self._thread = threading.Thread(
            target=self._run, name=f"afpacket-{','.join(self.interfaces)}", daemon=True
        )
        self._thread.start()
        log.warning(
            "AF_PACKET fallback responder on %s (packet module: %s, %s)%s",
            ", ".join(self.interfaces),
            self.packet_module,
            self.receive_path,
            f": {reason}" if reason else "",
        )
        metrics.dataplane_packet_module(self.packet_module)

    # --- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        by_fd = {port.sock.fileno(): port for port in self._ports}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        while not self._stop.is_set():
            try:
                ready = poller.poll(self._poll_ms)
            except InterruptedError:
                continue
            for fd, _ in ready:
                port = by_fd.get(fd)
                if port is not None:
                    self._serve(port)
            self._report()

    def _serve(self, port: _Port) -> None:
        """One bounded round on one socket: it may be called from tests and benchmarks too."""
        gate_open = time.monotonic_ns() < self._deadline_ns
        try:
            port.core.service(gate_open)
        except OSError as exc:  # the interface went away: keep serving the others
            log.error("AF_PACKET responder on %s: %s", port.iface, exc)
            return
        claims = port.core.take_conflicts()
        if claims:
            now = time.monotonic_ns()
            for ip, mac in claims:
                address = ipaddress.ip_address(ip)
                self._conflicts.put(Conflict(port.ifindex, address, mac, now))
                # Debug only: the speaker logs conflicts once per VIP and claimer per step; a
                # warning per frame here wrote 1.6 M lines in a 10,000-VIP takeover storm.
                log.debug("conflict on %s: %s claimed by %s", port.iface, address, mac.hex(":"))

    def _report(self) -> None:
        for port in self._ports:
            counts = port.core.counters
            if counts == port.reported:
                continue
            for reason in Reason:
                delta = counts[reason] - port.reported[reason]
                if delta and reason is not Reason.PASS:
                    metrics.afpacket_counted(port.iface, reason.label, delta)
            port.reported = list(counts)

    # --- the Responder protocol ----------------------------------------------------------------

    def _port(self, entry: VipEntry) -> _Port:
        port = self._by_ifindex.get(entry.ifindex)
        if port is None:
            raise DataplaneError(
                f"{entry}: interface index {entry.ifindex} is not one this responder listens on "
                f"({', '.join(f'{p.iface}=if{p.ifindex}' for p in self._ports)})"
            )
        return port

    def _publish(self) -> None:
        tables: dict[int, dict[bytes, bytes]] = {port.ifindex: {} for port in self._ports}
        for (ifindex, ip), entry in self._entries.items():
            tables[ifindex][ip] = entry.mac
        for port in self._ports:
            port.core.set_table(tables[port.ifindex])  # one atomic swap per socket

    def sync(self, entries: Iterable[VipEntry]) -> SyncResult:
        desired = {(e.ifindex, e.ip.packed): e for e in entries}
        for entry in desired.values():
            self._port(entry)
        with self._lock:
            current = self._entries
            added = tuple(e for k, e in desired.items() if k not in current)
            removed = tuple(e for k, e in current.items() if k not in desired)
            updated = tuple(
                e for k, e in desired.items() if k in current and current[k].mac != e.mac
            )
            self._entries = desired
            self._publish()
        unchanged = len(desired) - len(added) - len(updated)
        return SyncResult(added=added, removed=removed, updated=updated, unchanged=unchanged)

    def add(self, entry: VipEntry) -> None:
        self._port(entry)
        with self._lock:
            self._entries = {**self._entries, (entry.ifindex, entry.ip.packed): entry}
            self._publish()

    def remove(self, entry: VipEntry) -> None:
        with self._lock:
            key = (entry.ifindex, entry.ip.packed)
            if key in self._entries:
                self._entries = {k: e for k, e in self._entries.items() if k != key}
                self._publish()

    def entries(self) -> set[VipEntry]:
        return set(self._entries.values())

    def counters(self) -> dict[str, int]:
        totals = [0] * len(Reason)
        for port in self._ports:
            for i, value in enumerate(port.core.counters):
                totals[i] += value
        return {name: totals[i] for i, name in enumerate(COUNTER_REASONS)}

    def conflicts(self, timeout: float = 0.0) -> list[Conflict]:
        seen: list[Conflict] = []
        try:
            seen.append(
                self._conflicts.get(timeout=timeout)
                if timeout > 0
                else self._conflicts.get_nowait()
            )
        except queue.Empty:
            return seen
        while True:
            try:
                seen.append(self._conflicts.get_nowait())
            except queue.Empty:
                return seen

    def refresh_gate(self, max_age: float) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be > 0 s, got {max_age}")
        self._deadline_ns = time.monotonic_ns() + int(max_age * 1e9)

    def close_gate(self) -> None:
        self._deadline_ns = 0

    def gate_open(self) -> bool:
        return time.monotonic_ns() < self._deadline_ns

    def gate_handle(self) -> GateHandle | None:
        return None  # no map: the gate lives in this process

    def close(self, *, detach: bool = True) -> None:
        """Stop the thread and close the sockets (``detach`` is moot: nothing outlives us)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._report()
        self._close_sockets()

    def _close_sockets(self) -> None:
        for port in self._ports:
            port.core.close()
            port.sock.close()


def open_afpacket(
    interfaces: Sequence[str], *, reason: str = "", settings: AfPacketSettings | None = None
) -> AfPacketResponder:
    """The AF_PACKET responder on ``interfaces`` (what ``open_responder`` falls back to)."""
    chosen = settings or AfPacketSettings()
    return AfPacketResponder(
        interfaces, reason=reason, batch=chosen.batch, poll_interval=chosen.poll_interval
    )
