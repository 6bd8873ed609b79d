"""Waiting for an outcome in the VIP-mode tests: poll a predicate until it holds or time is up.

Deadlines are generous because these tests share a loaded 2-CPU machine; a test asserts that the
outcome came, never how fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    """True as soon as ``predicate()`` is truthy; after ``timeout`` seconds, its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
