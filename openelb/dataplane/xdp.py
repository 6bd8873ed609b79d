"""Loader for the XDP responder (bcc): attach, pin, sync maps, read counters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openelb.dataplane.responder import DataplaneError, Responder


def open_xdp(
    interfaces: Sequence[str],
    *,
    generic: bool,
    pin_root: Path,
    instance: str,
    reason: str = "",
) -> Responder:
    """Load (or re-use the pinned) XDP responder and attach it to ``interfaces``."""
    raise DataplaneError("the XDP responder is being written (issue #5)")
