"""Facade over the packet module: the compiled one when built, else the pure-Python twin.

``OPENELB_NO_EXTENSIONS=1`` forces the pure-Python module. ``IMPLEMENTATION`` says which one is
in use ("compiled" or "python"); ``FALLBACK_REASON`` says why the compiled one is not.
"""

from __future__ import annotations

import os
from typing import Protocol

from openelb.dataplane import _packet_py


class PacketModule(Protocol):
    """The API both implementations provide (checked by mypy against each module)."""

    IMPLEMENTATION: str

    def build_garp(self, mac: bytes, ip: bytes, reply: bool = False) -> bytes: ...


def compiled_impl() -> PacketModule | None:
    """The compiled module, or None when it is not built."""
    try:
        from openelb.dataplane import _packet
    except ImportError:
        return None
    return _packet


python_impl: PacketModule = _packet_py


def _choose() -> tuple[PacketModule, str]:
    if os.environ.get("OPENELB_NO_EXTENSIONS", "") not in ("", "0"):
        return python_impl, "OPENELB_NO_EXTENSIONS is set"
    compiled = compiled_impl()
    if compiled is None:
        return python_impl, "compiled module not built (run `make setup`)"
    return compiled, ""


_impl, FALLBACK_REASON = _choose()

IMPLEMENTATION: str = _impl.IMPLEMENTATION
build_garp = _impl.build_garp
