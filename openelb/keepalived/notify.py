"""VRRP state transitions from keepalived's notify FIFO, as typed, timestamped values.

keepalived writes one line per transition to ``vrrp_notify_fifo``:
``INSTANCE "oelb_pool1_v4_7" MASTER 190`` (also ``GROUP`` lines and, on stop, ``STOP``). Reading
the FIFO needs no script, no ``script_user`` and no fork per transition, and the speaker sees a
transition within a millisecond. The reader keeps the FIFO open for writing itself, so a
keepalived restart never shows up as end-of-file.

:class:`StateTable` turns instance transitions into per-instance state (and so per-VIP state,
through the plan) and feeds the metrics.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import select
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class VrrpState(enum.Enum):
    """An instance's state as keepalived reports it."""

    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"
    STOP = "STOP"
    """keepalived stopped the instance (it released the VIPs)."""


@dataclass(frozen=True)
class Transition:
    """One line of the FIFO, with when it was read (wall clock, seconds since the epoch)."""

    instance: str
    state: VrrpState
    priority: int
    at: float


def parse_line(line: str, *, at: float) -> Transition | None:
    """A FIFO line to a :class:`Transition`; None for GROUP lines and anything unexpected."""
    parts = line.strip().split()
    if len(parts) < 3 or parts[0] != "INSTANCE":
        return None
    name = parts[1].strip('"')
    try:
        state = VrrpState(parts[2])
    except ValueError:
        log.debug("unknown VRRP state in notify line %r", line)
        return None
    priority = 0
    if len(parts) > 3 and parts[3].isdigit():
        priority = int(parts[3])
    return Transition(name, state, priority, at)


def make_fifo(path: Path) -> None:
    """Create the FIFO, replacing anything else at ``path`` (a stale file from a crash)."""
    try:
        if stat.S_ISFIFO(path.stat().st_mode):
            return
        path.unlink()
    except FileNotFoundError:
        pass
    os.mkfifo(path, 0o600)


class FifoReader:
    """Reads transitions from the FIFO in a daemon thread and hands them to ``on_transition``."""

    def __init__(
        self,
        path: Path,
        on_transition: Callable[[Transition], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._on_transition = on_transition
        self._clock = clock
        make_fifo(path)
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer end: without it, every keepalived exit would be an EOF storm.
        self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self._stop_r, self._stop_w = os.pipe()
        self._buffer = b""
        self._thread = threading.Thread(target=self._loop, name="vrrp-fifo", daemon=True)

    def start(self) -> FifoReader:
        self._thread.start()
        return self

    def read_available(self) -> list[Transition]:
        """Read and parse whatever is in the FIFO now (the loop's one iteration)."""
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return []
        at = self._clock()
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        out = []
        for raw in lines:
            transition = parse_line(raw.decode("utf-8", "replace"), at=at)
            if transition is not None:
                out.append(transition)
        return out

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for transition in self.read_available():
                try:
                    self._on_transition(transition)
                except Exception:  # a faulty callback must not stop state reading
                    log.exception("VRRP transition handler failed for %s", transition)

    def close(self) -> None:
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            self._thread.join(5.0)
        for fd in (self._fd, self._keep, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._stop_w = -1
