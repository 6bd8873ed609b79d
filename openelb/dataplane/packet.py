"""Facade over the packet module: the compiled one when built, else the pure-Python twin.

``OPENELB_NO_EXTENSIONS=1`` forces the pure-Python module. ``IMPLEMENTATION`` says which one is
in use ("compiled" or "python"); ``FALLBACK_REASON`` says why the compiled one is not. Callers use
the names re-exported here; tests reach both implementations through ``compiled_impl()`` and
``python_impl``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from openelb.dataplane import _packet_py
from openelb.dataplane.frames import ArpFrame, NsFrame, Reason

__all__ = [
    "FALLBACK_REASON",
    "IMPLEMENTATION",
    "PacketModule",
    "Reason",
    "ResponderCoreLike",
    "compiled_impl",
    "impl",
    "python_impl",
]


class ResponderCoreLike(Protocol):
    """The batched receive/decide/send loop of the AF_PACKET responder (one per socket)."""

    @property
    def batch(self) -> int: ...
    @property
    def table(self) -> dict[bytes, bytes]: ...
    @property
    def counters(self) -> list[int]:
        """Frames seen per ``Reason`` value since creation."""

    def set_table(self, table: Mapping[bytes, bytes]) -> None: ...
    def service(self, gate_open: bool = True, max_batches: int = 4) -> int:
        """Drain what is queued on the socket (bounded, never blocking); frames received."""

    def take_conflicts(self) -> list[tuple[bytes, bytes]]:
        """(IP, MAC) of each conflicting claim seen since the last call."""

    def close(self) -> None: ...


class PacketModule(Protocol):
    """The API both implementations provide (checked by mypy against each module)."""

    IMPLEMENTATION: str

    def build_garp(self, mac: bytes, ip: bytes, reply: bool = False) -> bytes: ...
    def build_arp_probe(self, mac: bytes, ip: bytes) -> bytes: ...
    def build_arp_reply(self, *, mac: bytes, ip: bytes, dst_mac: bytes, dst_ip: bytes) -> bytes: ...
    def build_na(
        self, *, mac: bytes, ip: bytes, dst_mac: bytes, dst_ip: bytes, solicited: bool = True
    ) -> bytes: ...
    def build_unsolicited_na(self, mac: bytes, ip: bytes) -> bytes: ...
    def build_dad_ns(self, mac: bytes, ip: bytes) -> bytes: ...
    def build_garp_batch(
        self, mac: bytes, ips: Sequence[bytes], reply: bool = False
    ) -> list[bytes]: ...
    def build_unsolicited_na_batch(self, mac: bytes, ips: Sequence[bytes]) -> list[bytes]: ...
    def parse_arp(self, frame: bytes) -> ArpFrame | None: ...
    def parse_ns(self, frame: bytes) -> NsFrame | None: ...
    def decide(
        self, frame: bytes, owned: dict[bytes, bytes], gate_open: bool = True
    ) -> tuple[Reason, bytes | None]: ...
    def send_frames(self, fd: int, frames: Iterable[bytes]) -> int: ...
    def ResponderCore(self, fd: int, batch: int = 64) -> ResponderCoreLike: ...  # noqa: N802


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


impl, FALLBACK_REASON = _choose()
"""The module in use, and why it is the pure-Python one (empty when compiled)."""

IMPLEMENTATION: str = impl.IMPLEMENTATION
build_garp = impl.build_garp
build_arp_probe = impl.build_arp_probe
build_arp_reply = impl.build_arp_reply
build_na = impl.build_na
build_unsolicited_na = impl.build_unsolicited_na
build_dad_ns = impl.build_dad_ns
build_garp_batch = impl.build_garp_batch
build_unsolicited_na_batch = impl.build_unsolicited_na_batch
parse_arp = impl.parse_arp
parse_ns = impl.parse_ns
decide = impl.decide
send_frames = impl.send_frames
ResponderCore = impl.ResponderCore
