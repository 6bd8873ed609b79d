"""When to (re)announce each owned VIP: a burst after gaining it, then an optional refresh.

Measured here: a Linux client or router moves to the new MAC within a millisecond of the first
correct announcement, so repeats only guard against loss. The burst is spread (0, 0.1, 0.5, 1, 2 s
by default) so one lost frame or a switch still learning the port costs little; the refresh
(off by default) keeps switch FDBs warm below their ageing time (commonly 300 s) and is spread
per VIP so 10,000 VIPs do not refresh in the same millisecond.

Pure and clock-injected: the caller asks :meth:`AnnounceScheduler.due` at ``now`` and sends.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Sequence

DEFAULT_BURST: tuple[float, ...] = (0.0, 0.1, 0.5, 1.0, 2.0)


class AnnounceScheduler:
    """A heap of (when, ip, generation); a VIP lost and regained gets a new generation, so stale
    entries of an earlier ownership are skipped instead of searched for and removed."""

    def __init__(
        self, *, burst: Sequence[float] = DEFAULT_BURST, refresh: float | None = None
    ) -> None:
        offsets = tuple(burst)
        if not offsets or offsets[0] != 0.0:
            raise ValueError(f"the burst must start at 0 s (announce at once), got {offsets}")
        if any(b < a for a, b in itertools.pairwise(offsets)):
            raise ValueError(f"burst offsets must not decrease, got {offsets}")
        if refresh is not None and refresh <= 0:
            raise ValueError(f"refresh interval must be > 0 s or None, got {refresh}")
        self.burst = offsets
        self.refresh = refresh
        self._heap: list[tuple[float, str, int, int]] = []
        # ip -> (generation, time the VIP was gained)
        self._owned: dict[str, tuple[int, float]] = {}
        self._generation = 0

    def gain(self, ip: str, *, now: float) -> None:
        """We now own ``ip``: the first announcement is due at ``now``."""
        self._generation += 1
        self._owned[ip] = (self._generation, now)
        for step, offset in enumerate(self.burst):
            heapq.heappush(self._heap, (now + offset, ip, self._generation, step))

    def lose(self, ip: str) -> None:
        """We no longer own ``ip``: cancel what is pending for it."""
        self._owned.pop(ip, None)

    def owned(self) -> frozenset[str]:
        return frozenset(self._owned)

    def due(self, now: float) -> list[str]:
        """VIPs to announce at ``now`` (each at most once per call), in due order."""
        out: list[str] = []
        seen: set[str] = set()
        while self._heap and self._heap[0][0] <= now:
            when, ip, generation, step = heapq.heappop(self._heap)
            current = self._owned.get(ip)
            if current is None or current[0] != generation:
                continue
            if ip not in seen:
                seen.add(ip)
                out.append(ip)
            if step == len(self.burst) - 1 and self.refresh is not None:
                heapq.heappush(self._heap, (when + self._first_refresh(ip), ip, generation, step))
        return out

    def next_deadline(self) -> float | None:
        """When the next announcement is due (stale entries may make this early, never late)."""
        return self._heap[0][0] if self._heap else None

    def _first_refresh(self, ip: str) -> float:
        # A stable per-VIP phase in [0.5, 1.0) x refresh: spread, but never later than the period.
        assert self.refresh is not None
        phase = int.from_bytes(hashlib.sha256(ip.encode()).digest()[:2], "big") / 65536
        return self.refresh * (0.5 + phase / 2)
