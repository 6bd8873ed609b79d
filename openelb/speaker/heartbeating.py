"""The heartbeat transport: one UDP socket, a native sender thread, a receiver thread.

Why the sender is a separate native thread fed from a ring (see ``ext/_heartbeat.pyx``): the
failure detector's deadline is only 5 x 20 ms, so a sender delayed by Python (GC, a busy control
loop, the GIL held by a watch decoding 10,000 objects) would make healthy owners look dead. The
native thread never takes the GIL. Yet a speaker whose control loop is *stuck* must lose its VIPs:
the ring holds only ``hung_after`` worth of datagrams, refilled by :meth:`HeartbeatTransport.tick`
from the control loop, so a stuck loop stops the heartbeats (and the liveness-gate stamps) and the
backups take over.

``hung_after`` defaults to 2 s: longer than any legitimate control-loop iteration we have measured
(building the ownership of 10,000 VIPs: ~0.2 s; a relist of a large cluster: about a second of
Python), so load never causes a false takeover, and still far below any peer's failover time
(MetalLB ~4 s, kube-vip ~15 s) for the rare truly hung speaker.

The receiver thread only reads, decodes and timestamps (kernel receive timestamps, so the jitter
it exports is the network's and the sender's, not our own scheduling), then queues the messages;
the control loop owns the failure detector. Sends of rare messages (GOODBYE, OBITUARY, ALIVE, STOP)
go straight from the caller.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from openelb import metrics
from openelb.speaker import _heartbeat_py, wire

log = logging.getLogger(__name__)

_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_MEMINFO = 55  # u32[9]: the socket's memory counters; index 8 is SK_MEMINFO_DROPS
_MEMINFO = struct.Struct("@9I")
_TIMESPEC = struct.Struct("@qq")
RECEIVE_BUFFER = 4 << 20
"""Bytes the heartbeat socket may queue: ~25 s of a busy node's datagrams (each costs ~1 KB of
buffer in the kernel), where the default ~200 KB overflowed within 2 s of a starved receiver."""


class PacerModule(Protocol):
    IMPLEMENTATION: str
    Pacer: type[_heartbeat_py.Pacer]


def _choose() -> tuple[PacerModule, str]:
    if os.environ.get("OPENELB_NO_EXTENSIONS", "") not in ("", "0"):
        return _heartbeat_py, "OPENELB_NO_EXTENSIONS is set"
    try:
        from openelb.speaker import _heartbeat
    except ImportError:
        return _heartbeat_py, "compiled heartbeat module not built (run `make setup`)"
    return _heartbeat, ""  # type: ignore[return-value]


_impl, FALLBACK_REASON = _choose()
IMPLEMENTATION: str = _impl.IMPLEMENTATION
"""Which pacer is in use by default: "compiled" (native thread) or "python"."""


def pacer_module(implementation: str | None = None) -> PacerModule:
    """The pacer implementation by name ("compiled" | "python"), or the default one."""
    if implementation is None:
        return _impl
    if implementation == "python":
        return _heartbeat_py
    if implementation == "compiled":
        from openelb.speaker import _heartbeat

        return _heartbeat  # type: ignore[return-value]
    raise ValueError(f"unknown heartbeat implementation {implementation!r}")


@dataclass(frozen=True, slots=True)
class Received:
    """A datagram that decoded, when it arrived (monotonic s) and from where."""

    message: wire.Message
    arrived: float
    source: tuple[str, int]


@dataclass(frozen=True, slots=True)
class Gate:
    """The data plane's liveness gate: a BPF array map whose ``key`` entry holds a u64
    CLOCK_MONOTONIC deadline in ns; the XDP program answers only before it."""

    map_fd: int
    key: int = 0
    window: float = 0.1
    """How far ahead each stamp reaches (s): about the detection time, so a SIGKILLed speaker's
    answers stop when the backup takes over."""


class HeartbeatTransport:
    """UDP heartbeats out (native pacer) and every speaker datagram in (receiver thread)."""

    def __init__(
        self,
        *,
        node: str,
        incarnation: int,
        bind: tuple[str, int],
        interval: float = 0.02,
        hung_after: float = 2.0,
        key: bytes | None = None,
        gate: Gate | None = None,
        implementation: str | None = None,
        device: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be > 0 s, got {interval}")
        if hung_after < 2 * interval:
            raise ValueError(
                f"hung_after ({hung_after} s) must cover at least two intervals ({interval} s)"
            )
        self.node = node
        self.incarnation = incarnation
        self.interval = interval
        self.hung_after = hung_after
        self.key = key
        family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if device:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
            self._sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            try:  # past net.core.rmem_max: needs CAP_NET_ADMIN, which a speaker has
                self._sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except OSError:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            # Heartbeats are tiny and latency-critical: ask for the interactive priority band.
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 6)
            self._sock.bind(bind)
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(0.2)
        self._nowait = socket.socket(family, socket.SOCK_DGRAM, fileno=os.dup(self._sock.fileno()))
        self._nowait.settimeout(0.0)
        module = pacer_module(implementation)
        self.implementation = module.IMPLEMENTATION
        capacity = max(2, round(hung_after / interval))
        self._pacer = module.Pacer(self._sock.fileno(), round(interval * 1e9), capacity)
        if gate is not None:
            self._pacer.set_gate(gate.map_fd, gate.key, round(gate.window * 1e9))
        self._sequence = 0
        self.destinations: list[tuple[str, int]] = []
        self._last_stats = self._pacer.stats()
        self._ticked = 0.0
        self.inbox: queue.SimpleQueue[Received | None] = queue.SimpleQueue()
        """Received messages; ``None`` entries are wake-ups (see :meth:`wake`)."""
        self._receiver: threading.Thread | None = None
        self._closing = threading.Event()
        self._reading = threading.Lock()
        # sender -> (incarnation, sequence, kernel arrival ns) of its last heartbeat
        self._last_seen: dict[str, tuple[int, int, int]] = {}
        self.rejected: dict[str, int] = {}
        self._dropped = self._drops()  # the socket's drop count when last asked

    @property
    def address(self) -> tuple[str, int]:
        """The bound (ip, port): what the Lease advertises to the other speakers."""
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Fill the ring, start the sender and the receiver."""
        self.tick()
        self._pacer.start()
        self._receiver = threading.Thread(
            target=self._receive_loop, name="openelb-heartbeat-rx", daemon=True
        )
        self._receiver.start()

    def close(self) -> None:
        """Stop both threads and close the socket (idempotent)."""
        self._closing.set()
        self._pacer.stop()
        if self._receiver is not None:
            self._receiver.join()
            self._receiver = None
        self._nowait.close()
        self._sock.close()

    def __enter__(self) -> HeartbeatTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- control loop side -----------------------------------------------------------------------

    def set_targets(self, targets: Iterable[tuple[str, int]]) -> None:
        """Where heartbeats go from the next period on."""
        self.destinations = list(targets)
        self._pacer.set_destinations(self.destinations)

    def set_incarnation(self, incarnation: int) -> None:
        """A new incarnation (refutation): queued datagrams carry the old one, rebuild them."""
        self.incarnation = incarnation
        self._pacer.clear()
        self.tick()

    def set_gate(self, gate: Gate | None) -> None:
        """Start (or stop, with None) stamping the data plane's liveness gate on every send."""
        if gate is None:
            self._pacer.set_gate(-1, 0, 0)
        else:
            self._pacer.set_gate(gate.map_fd, gate.key, round(gate.window * 1e9))

    def wake(self) -> None:
        """Wake a control loop blocked on :attr:`inbox` (a watch saw a change)."""
        self.inbox.put(None)

    def pause(self) -> None:
        """Drop queued heartbeats: sending stops within one interval (tests, graceful stop)."""
        self._pacer.clear()

    def keep_up(self) -> None:
        """:meth:`tick` if the last one is more than ``hung_after`` / 8 ago (cheap otherwise):
        for the control loop's progress marks inside a long iteration."""
        if time.monotonic() - self._ticked > self.hung_after / 8:
            self.tick()

    def tick(self) -> None:
        """Top the ring up to ``hung_after`` worth of heartbeats; fold the sender's stats in.

        Call it from the control loop at least every ``hung_after`` / 2 s.
        """
        self._ticked = time.monotonic()
        free = self._pacer.capacity - self._pacer.pending()
        if free > 0:
            batch = []
            for _ in range(free):
                self._sequence += 1
                batch.append(
                    wire.heartbeat(
                        sender=self.node,
                        incarnation=self.incarnation,
                        sequence=self._sequence,
                        key=self.key,
                    )
                )
            taken = self._pacer.push(batch)
            self._sequence -= len(batch) - taken
        stats = self._pacer.stats()
        metrics.heartbeat_pacer_observed(
            sent=stats["sent"] - self._last_stats["sent"],
            send_errors=stats["send_errors"] - self._last_stats["send_errors"],
            starved=stats["starved"] - self._last_stats["starved"],
            lateness_ns=self._pacer.drain_lateness(),
        )
        self._last_stats = stats

    def stats(self) -> dict[str, int]:
        """The sender thread's counters (sent, send_errors, starved, gate_errors, ...)."""
        return self._pacer.stats()

    def drain_lateness(self) -> list[int]:
        """Sender lateness samples (ns) since the last tick; for benchmarks."""
        return self._pacer.drain_lateness()

    def send(self, message: wire.Message, to: Iterable[tuple[str, int]]) -> int:
        """Send one message now (GOODBYE, OBITUARY, ALIVE, STOP); returns how many went out."""
        data = wire.encode(message, key=self.key)
        sent = 0
        for dest in to:
            with contextlib.suppress(OSError):
                self._sock.sendto(data, dest)
                sent += 1
        return sent

    # --- receiver thread -------------------------------------------------------------------------

    def drain_now(self) -> int:
        """Read every datagram already queued in the socket into :attr:`inbox`, without waiting.

        The control loop calls this right before asking the detector for verdicts: if the
        receiver thread was starved (GIL, load), heartbeats sitting in the kernel still count,
        so our own pause never becomes a peer's death. When it returns, every datagram that
        reached the socket before the call is in :attr:`inbox` (the receiver thread takes a
        datagram out of the socket and queues it under the same lock).
        """
        count = 0
        with self._reading:
            while True:
                try:
                    self._receive_one()
                except (BlockingIOError, InterruptedError, TimeoutError):
                    return count
                except OSError:
                    return count
                count += 1

    def take_overflowed(self) -> int:
        """Datagrams the kernel dropped for a full receive buffer since the last call (the
        control loop asks right after each drain: see :meth:`FailureDetector.blinded`)."""
        drops = self._drops()
        lost = (drops - self._dropped) & 0xFFFFFFFF
        self._dropped = drops
        if lost:
            metrics.datagrams_overflowed(lost)
        return lost

    def _drops(self) -> int:
        try:
            raw = self._sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
        except OSError:
            return 0  # a kernel without SO_MEMINFO (< 3.17): drops go unnoticed, as before
        return int(_MEMINFO.unpack(raw)[8])

    def _receive_one(self) -> None:
        data, ancdata, _, source = self._nowait.recvmsg(
            wire.MAX_DATAGRAM + 64, socket.CMSG_SPACE(_TIMESPEC.size)
        )
        arrived = time.monotonic()
        kernel_ns = 0
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
                kernel_ns = sec * 1_000_000_000 + nsec
        self.handle_datagram(data, arrived=arrived, source=source, kernel_ns=kernel_ns)

    def _receive_loop(self) -> None:
        # Wait for readability without taking anything, then take and queue under the lock the
        # drain holds: a datagram is never out of the socket yet not in the inbox while a drain
        # runs (the drain's caller relies on that to judge silence).
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        while not self._closing.is_set():
            try:
                if not poller.poll(200):
                    continue
                with self._reading:
                    self._receive_one()
            except (BlockingIOError, InterruptedError, TimeoutError):
                continue
            except OSError:
                if self._closing.is_set():
                    return
                time.sleep(0.01)
            except Exception:
                log.exception("heartbeat receiver: unexpected error (continuing)")

    def handle_datagram(
        self, data: bytes, *, arrived: float, source: tuple[str, int], kernel_ns: int = 0
    ) -> None:
        """Decode one datagram, account for it and queue it (the receiver thread's body)."""
        decoded = wire.decode(data, key=self.key)
        if isinstance(decoded, wire.Rejected):
            self.rejected[decoded.reason] = self.rejected.get(decoded.reason, 0) + 1
            metrics.datagram_rejected(decoded.reason)
            return
        if decoded.kind is wire.Kind.HEARTBEAT:
            self._account(decoded, kernel_ns or int(arrived * 1e9))
        self.inbox.put(Received(decoded, arrived, (str(source[0]), int(source[1]))))

    def _account(self, msg: wire.Message, at_ns: int) -> None:
        jitter: float | None = None
        missed = 0
        last = self._last_seen.get(msg.sender)
        if last is not None and last[0] == msg.incarnation and msg.sequence > last[1]:
            steps = msg.sequence - last[1]
            missed = steps - 1
            if steps == 1:
                jitter = (at_ns - last[2]) / 1e9 - self.interval
        self._last_seen[msg.sender] = (msg.incarnation, msg.sequence, at_ns)
        metrics.heartbeat_received(jitter=jitter, missed=missed)


def resolve_targets(
    names: Iterable[str], addresses: Mapping[str, tuple[str, int]]
) -> list[tuple[str, int]]:
    """Heartbeat addresses of the named peers (peers without a known address are skipped)."""
    out = []
    for name in sorted(set(names)):
        addr = addresses.get(name)
        if addr is not None:
            ipaddress.ip_address(addr[0])  # a bad address in a Lease fails here, loudly
            out.append(addr)
    return out
