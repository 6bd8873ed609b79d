"""A deduplicating work queue of object keys: the loop every reconciler runs.

Semantics as client-go's workqueue, which reconcilers are written against: a key added many times
before a worker takes it is processed once; a key is never processed by two workers at once (an
add while it is processed is held until ``done``); failures are retried with capped, jittered,
per-key exponential backoff until ``forget``.

A key waits for at most one delayed add (the earliest wins, as in client-go's delaying queue),
and taking a key cancels its delayed add: processing it decides afresh whether it needs another
retry. Without that, retries of a key that has since succeeded linger for up to the backoff cap
and a queue that has nothing left to do still looks busy.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass

from openelb.kube.backoff import Backoff


class ShutDown(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by :meth:`KeyQueue.get` once the queue was shut down and drained of nothing."""


@dataclass(frozen=True)
class QueueSnapshot:
    """What a queue holds at one instant (to say why work is not finished)."""

    queued: tuple[str, ...]
    """Keys ready to be taken, in order."""
    delayed: tuple[tuple[str, float], ...]
    """Keys waiting for a delayed add, with the seconds left, soonest first."""
    processing: tuple[str, ...]
    """Keys taken by a worker and not ``done`` yet."""
    failures: tuple[tuple[str, int], ...]
    """Keys with consecutive failures recorded (not ``forget``-ed yet)."""

    @property
    def empty(self) -> bool:
        """Nothing queued, delayed or in progress."""
        return not (self.queued or self.delayed or self.processing)


class KeyQueue:
    """Work queue of string keys (``namespace/name``), thread-safe."""

    def __init__(
        self,
        *,
        retry_initial: float = 0.05,
        retry_maximum: float = 60.0,
        jitter: float = 0.2,
    ) -> None:
        self._backoff = Backoff(initial=retry_initial, maximum=retry_maximum, jitter=jitter)
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        """Heap of delayed adds; an entry is live only while ``_due`` holds its time."""
        self._due: dict[str, float] = {}
        """The one pending delayed add per key: when it is due."""
        self._seq = itertools.count()
        self._failures: dict[str, int] = {}
        self._shutdown = False

    def add(self, key: str) -> None:
        """Queue ``key`` (a no-op if it is already waiting)."""
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (at once when ``delay <= 0``)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            due = time.monotonic() + delay
            if key in self._due and self._due[key] <= due:
                return  # an earlier delayed add covers this one
            self._due[key] = due
            heapq.heappush(self._delayed, (due, next(self._seq), key))
            self._cond.notify()

    def retry(self, key: str) -> float:
        """Re-queue a failed ``key`` after its backoff; returns the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = self._backoff.delay_for(failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """``key`` succeeded: its next failure starts the backoff from the beginning."""
        with self._cond:
            self._failures.pop(key, None)

    def retries(self, key: str) -> int:
        """Consecutive failures recorded for ``key``."""
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> str | None:
        """Next key to process (mark it ``done`` afterwards); None on timeout.

        Raises :class:`ShutDown` after :meth:`shutdown`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    raise ShutDown
                now = time.monotonic()
                self._promote_due(now)
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    self._due.pop(key, None)  # processing now supersedes a later retry
                    return key
                wait = None if deadline is None else deadline - now
                if wait is not None and wait <= 0:
                    return None
                if self._delayed:
                    due = self._delayed[0][0] - now
                    wait = due if wait is None else min(wait, due)
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        """Processing of ``key`` finished; if it was added meanwhile it is queued again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutdown:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        """Wake every waiting worker with :class:`ShutDown`; later adds are ignored."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        """Keys ready to be taken now (delayed ones not counted)."""
        with self._cond:
            return len(self._queue)

    @property
    def pending_delayed(self) -> int:
        """Keys waiting for their delay."""
        with self._cond:
            return len(self._due)

    def snapshot(self) -> QueueSnapshot:
        """What is queued, delayed, in progress and failing right now."""
        with self._cond:
            now = time.monotonic()
            delayed = sorted(self._due.items(), key=lambda item: item[1])
            return QueueSnapshot(
                queued=tuple(self._queue),
                delayed=tuple((key, max(0.0, due - now)) for key, due in delayed),
                processing=tuple(sorted(self._processing)),
                failures=tuple(sorted(self._failures.items())),
            )

    def _promote_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) != due:
                continue  # superseded by an earlier add or cancelled by a take
            del self._due[key]
            if key in self._dirty:
                continue
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)


__all__ = ["KeyQueue", "QueueSnapshot", "ShutDown"]
