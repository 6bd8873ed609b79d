"""Pure-Python twin of the compiled heartbeat pacer (``ext/_heartbeat.pyx``), same API.

Used when the extension is not built or ``OPENELB_NO_EXTENSIONS=1`` forces it. It is a plain
Python thread, so GIL contention and pauses show up as send jitter (measured before: 60 ms max
under load against 12 ms for the native thread); the exported jitter histogram makes that visible.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable

from openelb.speaker.realtime import prioritise_current_thread

IMPLEMENTATION = "python"

SLOT_SIZE = 1024
MAX_DESTS = 64
LATENESS_SAMPLES = 4096
_SYS_BPF = 321  # x86_64
_BPF_MAP_UPDATE_ELEM = 2
_libc = ctypes.CDLL(None, use_errno=True)


def stamp_gate(map_fd: int, key: int, deadline_ns: int) -> bool:
    """BPF_MAP_UPDATE_ELEM ``map_fd[key] = deadline_ns`` (u32 key, u64 value); True on success."""
    k = ctypes.c_uint32(key)
    v = ctypes.c_uint64(deadline_ns)
    attr = struct.pack("=IIQQQ", map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    return int(_libc.syscall(_SYS_BPF, _BPF_MAP_UPDATE_ELEM, buf, len(attr))) == 0


class Pacer:
    """Sends ring datagrams every ``interval_ns`` from a Python thread."""

    def __init__(self, fd: int, interval_ns: int, capacity: int) -> None:
        if fd < 0:
            raise ValueError("fd must be an open socket")
        if interval_ns <= 0:
            raise ValueError("interval must be > 0 ns")
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._sock = socket.socket(fileno=fd)  # shares the fd; detached, never closed by us
        self._interval = interval_ns
        self.capacity = capacity
        self._lock = threading.Lock()
        self._ring: deque[bytes] = deque()
        self._dests: list[tuple[str, int]] = []
        self._gate: tuple[int, int, int] = (-1, 0, 0)
        self._lateness: list[int] = []
        self._stats = {
            "sent": 0,
            "send_errors": 0,
            "starved": 0,
            "gate_errors": 0,
            "lateness_dropped": 0,
        }
        self._running = False
        self._thread: threading.Thread | None = None
        self.realtime_error: str | None = "not started"
        """None once the pacer thread runs under SCHED_RR, else why it does not."""

    def __del__(self) -> None:
        self._sock.detach()

    def set_destinations(self, destinations: Iterable[tuple[str, int]]) -> None:
        dests = [(str(ipaddress.ip_address(ip)), int(port)) for ip, port in destinations]
        if len(dests) > MAX_DESTS:
            raise ValueError(f"at most {MAX_DESTS} destinations, got {len(dests)}")
        with self._lock:
            self._dests = dests

    def push(self, datagrams: Iterable[bytes]) -> int:
        taken = 0
        for data in datagrams:
            if len(data) > SLOT_SIZE:
                raise ValueError(f"datagram of {len(data)} bytes exceeds the slot size {SLOT_SIZE}")
            with self._lock:
                if len(self._ring) >= self.capacity:
                    break
                self._ring.append(bytes(data))
            taken += 1
        return taken

    def clear(self) -> None:
        with self._lock:
            self._ring.clear()

    def pending(self) -> int:
        return len(self._ring)

    def set_gate(self, map_fd: int, key: int, window_ns: int) -> None:
        with self._lock:
            self._gate = (map_fd, key, window_ns)

    def drain_lateness(self) -> list[int]:
        with self._lock:
            out, self._lateness = self._lateness, []
        return out

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("pacer already started")
        self._running = True
        self._thread = threading.Thread(target=self._run, name="openelb-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        with self._lock:
            self._running = False
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        self.realtime_error = prioritise_current_thread()
        next_at = time.monotonic_ns()
        while True:
            delay = next_at - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            now = time.monotonic_ns()
            with self._lock:
                if not self._running:
                    return
                if len(self._lateness) < LATENESS_SAMPLES:
                    self._lateness.append(now - next_at)
                else:
                    self._stats["lateness_dropped"] += 1
                if self._ring:
                    data = self._ring.popleft()
                    for dest in self._dests:
                        try:
                            self._sock.sendto(data, socket.MSG_DONTWAIT, dest)
                            self._stats["sent"] += 1
                        except OSError:
                            self._stats["send_errors"] += 1
                    map_fd, key, window = self._gate
                    if map_fd >= 0 and not stamp_gate(map_fd, key, now + window):
                        self._stats["gate_errors"] += 1
                else:
                    self._stats["starved"] += 1
            next_at += self._interval
            if next_at < now - self._interval:
                next_at = now + self._interval
