"""Fault injection: the failures a controller must survive, on demand and counted.

Rules apply to the next N requests that match (method and a path substring, both optional), in
the order they were added. Refused connections are not a rule: stop the server (and
``restart()`` it on the same port) for that.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class FaultRule:
    action: str
    """``fail`` (answer with ``status``), ``hang`` (stall, then serve) or ``reset`` (TCP RST)."""
    remaining: int
    status: int = 500
    retry_after: float | None = None
    seconds: float | None = None
    path_contains: str | None = None
    methods: frozenset[str] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_contains is None or self.path_contains in path


class Faults:
    """The pending fault rules; thread-safe, consumed by the HTTP handler per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._release = threading.Event()
        self.injected = 0
        """How many requests a rule has hit so far (tests assert the fault really happened)."""

    def add(
        self,
        action: str,
        count: int,
        *,
        status: int = 500,
        retry_after: float | None = None,
        seconds: float | None = None,
        path_contains: str | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        rule = FaultRule(
            action,
            count,
            status=status,
            retry_after=retry_after,
            seconds=seconds,
            path_contains=path_contains,
            methods=frozenset(m.upper() for m in methods) if methods is not None else None,
        )
        with self._lock:
            self._rules.append(rule)

    def take(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.matches(method, path):
                    rule.remaining -= 1
                    self.injected += 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def hang(self, seconds: float | None) -> None:
        """Stall a request for ``seconds`` (None: until :meth:`clear`)."""
        self._release.wait(seconds)

    def release_hangs(self) -> None:
        with self._lock:
            release, self._release = self._release, threading.Event()
        release.set()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
        self.release_hangs()
