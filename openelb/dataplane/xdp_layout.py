"""Python mirrors of the XDP program's map keys, values, events and constants (``bpf/``).

Kept by hand and checked against the C source by ``tests/dataplane/test_xdp_layout.py``
(sizes and offsets compiled by clang, constants read from the headers), so a change on one side
without the other fails the tests instead of corrupting maps.
"""

from __future__ import annotations

import ctypes
import ipaddress
from typing import Final

from openelb.dataplane.responder import COUNTER_REASONS, Conflict, IPAddress

MAX_VLANS: Final = 2
NS_MAX_CHUNKS: Final = 9
AF_INET: Final = 2
AF_INET6: Final = 10
GATE_KEY: Final = 0

REASON_INDEX: Final = {name: index for index, name in enumerate(COUNTER_REASONS)}
"""Counter reason -> index in the per-CPU counters array (``enum oelb_reason``)."""


class Key4(ctypes.Structure):
    """``struct oelb_key4``: {ifindex, IPv4 in network order}."""

    _fields_ = (("ifindex", ctypes.c_uint32), ("ip", ctypes.c_ubyte * 4))


class Key6(ctypes.Structure):
    """``struct oelb_key6``: {ifindex, IPv6}."""

    _fields_ = (("ifindex", ctypes.c_uint32), ("ip", ctypes.c_ubyte * 16))


class Vip(ctypes.Structure):
    """``struct oelb_vip``: {mac, flags}."""

    _fields_ = (("mac", ctypes.c_ubyte * 6), ("flags", ctypes.c_uint16))


class ConflictEvent(ctypes.Structure):
    """``struct oelb_conflict``: one ring buffer record."""

    _fields_ = (
        ("ts_ns", ctypes.c_uint64),
        ("ifindex", ctypes.c_uint32),
        ("family", ctypes.c_uint16),
        ("mac", ctypes.c_ubyte * 6),
        ("ip", ctypes.c_ubyte * 16),
        ("pad", ctypes.c_uint32),
    )


def encode_key(ifindex: int, ip: IPAddress) -> bytes:
    """Map key bytes for the map of ``ip``'s family."""
    if ip.version == 4:
        return bytes(Key4(ifindex, (ctypes.c_ubyte * 4)(*ip.packed)))
    return bytes(Key6(ifindex, (ctypes.c_ubyte * 16)(*ip.packed)))


def decode_key(raw: bytes) -> tuple[int, IPAddress]:
    if len(raw) == ctypes.sizeof(Key4):
        key4 = Key4.from_buffer_copy(raw)
        return key4.ifindex, ipaddress.IPv4Address(bytes(key4.ip))
    key6 = Key6.from_buffer_copy(raw)
    return key6.ifindex, ipaddress.IPv6Address(bytes(key6.ip))


def encode_vip(mac: bytes, flags: int = 0) -> bytes:
    return bytes(Vip((ctypes.c_ubyte * 6)(*mac), flags))


def decode_vip(raw: bytes) -> bytes:
    """The MAC of a map value."""
    return bytes(Vip.from_buffer_copy(raw).mac)


def decode_conflict(raw: bytes) -> Conflict:
    event = ConflictEvent.from_buffer_copy(raw[: ctypes.sizeof(ConflictEvent)])
    ip: IPAddress
    if event.family == AF_INET:
        ip = ipaddress.IPv4Address(bytes(event.ip[:4]))
    else:
        ip = ipaddress.IPv6Address(bytes(event.ip))
    return Conflict(event.ifindex, ip, bytes(event.mac), event.ts_ns)
