"""Capped exponential backoff with jitter, shared by watches, the work queue and the elector.

Jitter spreads the retries of many clients (every speaker of a cluster reconnects when the
apiserver comes back), so no thundering herd follows an outage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays ``initial * factor**n`` capped at ``maximum``, each scaled by ``1 +- jitter``."""

    initial: float = 0.2
    """First delay, seconds."""
    maximum: float = 30.0
    """Cap, seconds (jitter never exceeds it)."""
    factor: float = 2.0
    """Growth per consecutive failure."""
    jitter: float = 0.2
    """Relative spread: 0.2 gives delays in [0.8d, 1.2d] (then capped)."""
    rng: random.Random = field(default_factory=random.Random, repr=False)
    failures: int = 0
    """Consecutive failures so far (``reset`` on success)."""

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("backoff needs factor >= 1 and 0 <= jitter < 1")

    def next(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        delay = self.delay_for(self.failures)
        self.failures += 1
        return delay

    def delay_for(self, failures: int) -> float:
        """Delay after ``failures`` earlier consecutive failures (jittered, capped)."""
        base = min(self.maximum, self.initial * self.factor ** min(failures, 64))
        spread = 1.0 + self.jitter * (2.0 * self.rng.random() - 1.0)
        return min(self.maximum, base * spread)

    def reset(self) -> None:
        """A success: the next failure waits ``initial`` again."""
        self.failures = 0


__all__ = ["Backoff"]
