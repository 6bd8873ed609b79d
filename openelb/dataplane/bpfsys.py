"""The few bpf(2) commands the data plane needs, over ctypes, without bcc.

bcc compiles and loads the program; everything afterwards (map updates from the speaker, the
gate refresh, reading per-CPU counters, pinning, opening pinned objects, BPF_PROG_TEST_RUN)
goes through this thin wrapper so it costs one syscall and works on pinned objects that no bcc
object in this process created.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_SYS_BPF: Final = 321  # x86_64
_ATTR_SIZE: Final = 128

BPF_MAP_LOOKUP_ELEM: Final = 1
BPF_MAP_UPDATE_ELEM: Final = 2
BPF_MAP_DELETE_ELEM: Final = 3
BPF_MAP_GET_NEXT_KEY: Final = 4
BPF_OBJ_PIN: Final = 6
BPF_OBJ_GET: Final = 7
BPF_PROG_TEST_RUN: Final = 10
BPF_OBJ_GET_INFO_BY_FD: Final = 15

BPF_ANY: Final = 0
BPF_F_TEST_XDP_LIVE_FRAMES: Final = 1 << 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    """A bpf(2) command failed; ``errno`` is set."""


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    ret = _libc.syscall(_SYS_BPF, cmd, attr, _ATTR_SIZE)
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"bpf({what}): {os.strerror(err)}")
    return int(ret)


def _attr(*fields: tuple[str, int, object]) -> ctypes.Array[ctypes.c_char]:
    """A zeroed bpf_attr with ``(struct format, offset, value)`` fields written in."""
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    for fmt, offset, value in fields:
        struct.pack_into(fmt, buf, offset, value)
    return buf


def _addr(buf: ctypes.Array[ctypes.c_char] | None) -> int:
    return 0 if buf is None else ctypes.addressof(buf)


@functools.cache
def possible_cpus() -> int:
    """Slots in a per-CPU map value (``/sys/devices/system/cpu/possible``, e.g. ``0-1``)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def obj_pin(fd: int, path: Path) -> None:
    """Pin a map or program at ``path`` (on bpffs)."""
    name = ctypes.create_string_buffer(os.fsencode(path))
    _bpf(BPF_OBJ_PIN, _attr(("Q", 0, _addr(name)), ("I", 8, fd)), f"pin {path}")


def obj_get(path: Path) -> int:
    """Open the object pinned at ``path``; a new fd the caller closes."""
    name = ctypes.create_string_buffer(os.fsencode(path))
    return _bpf(BPF_OBJ_GET, _attr(("Q", 0, _addr(name))), f"open {path}")


@dataclass(frozen=True)
class MapInfo:
    """What the kernel says about a map (checked before re-using a pinned one)."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int


def map_info(fd: int) -> MapInfo:
    info = ctypes.create_string_buffer(80)
    _bpf(
        BPF_OBJ_GET_INFO_BY_FD,
        _attr(("I", 0, fd), ("I", 4, len(info)), ("Q", 8, _addr(info))),
        "map info",
    )
    kind, ident, key_size, value_size, max_entries = struct.unpack_from("5I", info, 0)
    return MapInfo(kind, ident, key_size, value_size, max_entries)


def prog_id(fd: int) -> int:
    """The kernel's id of a loaded program (to tell whether an interface runs ours)."""
    info = ctypes.create_string_buffer(232)
    _bpf(
        BPF_OBJ_GET_INFO_BY_FD,
        _attr(("I", 0, fd), ("I", 4, len(info)), ("Q", 8, _addr(info))),
        "prog info",
    )
    return int(struct.unpack_from("I", info, 4)[0])


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    kbuf, vbuf = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value)
    _bpf(
        BPF_MAP_UPDATE_ELEM,
        _attr(("I", 0, fd), ("Q", 8, _addr(kbuf)), ("Q", 16, _addr(vbuf)), ("Q", 24, flags)),
        "map update",
    )


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value under ``key``, or None when absent."""
    kbuf, vbuf = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value_size)
    try:
        _bpf(
            BPF_MAP_LOOKUP_ELEM,
            _attr(("I", 0, fd), ("Q", 8, _addr(kbuf)), ("Q", 16, _addr(vbuf))),
            "map lookup",
        )
    except BpfError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return vbuf.raw


def map_delete(fd: int, key: bytes) -> bool:
    """Delete ``key``; False when it was not there."""
    kbuf = ctypes.create_string_buffer(key, len(key))
    try:
        _bpf(BPF_MAP_DELETE_ELEM, _attr(("I", 0, fd), ("Q", 8, _addr(kbuf))), "map delete")
    except BpfError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def map_keys(fd: int, key_size: int) -> list[bytes]:
    """Every key of a hash map (a snapshot; concurrent changes may be missed or repeated)."""
    keys: list[bytes] = []
    nxt = ctypes.create_string_buffer(key_size)
    prev: ctypes.Array[ctypes.c_char] | None = None
    while True:
        try:
            _bpf(
                BPF_MAP_GET_NEXT_KEY,
                _attr(("I", 0, fd), ("Q", 8, _addr(prev)), ("Q", 16, _addr(nxt))),
                "map next key",
            )
        except BpfError as exc:
            if exc.errno == errno.ENOENT:
                return keys
            raise
        keys.append(nxt.raw)
        prev = ctypes.create_string_buffer(nxt.raw, key_size)


@dataclass(frozen=True)
class TestRun:
    """Outcome of one BPF_PROG_TEST_RUN."""

    __test__ = False

    retval: int
    data: bytes
    duration_ns: int
    """Mean time per repetition, measured by the kernel."""


def prog_test_run(
    prog_fd: int,
    data: bytes,
    *,
    repeat: int = 1,
    ctx: bytes = b"",
    flags: int = 0,
    out_size: int = 0,
    batch_size: int = 0,
) -> TestRun:
    """Run a program on ``data`` (BPF_PROG_TEST_RUN); ``ctx`` is an optional ``xdp_md``.

    With ``BPF_F_TEST_XDP_LIVE_FRAMES`` the frames the program returns XDP_TX for are really
    transmitted on ``ctx``'s ingress interface (in the calling thread's netns): a packet
    generator without pktgen."""
    data_in = ctypes.create_string_buffer(data, len(data))
    live = bool(flags & BPF_F_TEST_XDP_LIVE_FRAMES)
    # Live frames are transmitted, not copied back: the kernel wants no output buffer then.
    out_len = 0 if live else out_size or len(data) + 256
    data_out = ctypes.create_string_buffer(out_len) if out_len else None
    ctx_in = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    attr = _attr(
        ("I", 0, prog_fd),
        ("I", 8, len(data)),
        ("I", 12, out_len),
        ("Q", 16, _addr(data_in)),
        ("Q", 24, _addr(data_out)),
        ("I", 32, repeat),
        ("I", 40, len(ctx)),
        ("Q", 48, _addr(ctx_in)),
        ("I", 64, flags),
        ("I", 72, batch_size),
    )
    _bpf(BPF_PROG_TEST_RUN, attr, "prog test run")
    retval, _, size_out = struct.unpack_from("III", attr, 4)
    duration = struct.unpack_from("I", attr, 36)[0]
    out = data_out.raw[:size_out] if data_out is not None else b""
    return TestRun(retval, out, duration)


BPF_PROG_LOAD: Final = 5
BPF_PROG_TYPE_XDP: Final = 6


def prog_load_xdp(insns: bytes, *, name: str = "oelb_pass") -> int:
    """Load raw XDP instructions (8 bytes each) without a compiler; returns the program fd."""
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = _attr(
        ("I", 0, BPF_PROG_TYPE_XDP),
        ("I", 4, len(insns) // 8),
        ("Q", 8, _addr(code)),
        ("Q", 16, _addr(license_)),
        ("16s", 48, name.encode()[:15]),
    )
    return _bpf(BPF_PROG_LOAD, attr, "prog load")


def xdp_ctx(data_len: int, *, ingress_ifindex: int = 0, rx_queue: int = 0) -> bytes:
    """A ``struct xdp_md`` for BPF_PROG_TEST_RUN: the frame as received on ``ingress_ifindex``."""
    return struct.pack("6I", 0, data_len, 0, ingress_ifindex, rx_queue, 0)
