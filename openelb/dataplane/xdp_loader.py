"""Compile, load, pin and attach the XDP responder (``bpf/``) with bcc.

Separate from :mod:`openelb.dataplane.xdp` (the Responder the speaker uses) because tests and
benchmarks load the program without attaching it, and because the bcc specifics live here:

- bcc rewrites map calls only in the main source text, so the headers in ``bpf/`` are inlined
  into one text before compiling (the files stay split on disk, katran/cilium style);
- maps are declared ``BPF_TABLE_PINNED`` under ``OELB_PIN_DIR``: the first load creates and pins
  them, later loads (a restarted speaker) re-use them with their entries, counters and gate;
- the program itself is pinned too, and attaching a new one to an interface replaces the old
  one atomically, so answers never stop during a restart.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from openelb.dataplane import bpfsys
from openelb.dataplane.responder import DataplaneError
from openelb.dataplane.xdp_layout import ConflictEvent, Key4, Key6, Vip

log = logging.getLogger(__name__)

BPF_SOURCE_DIR: Final = Path(os.environ.get("OPENELB_BPF_DIR", Path(__file__).parents[2] / "bpf"))
"""The C sources (``OPENELB_BPF_DIR`` overrides; the default is the source tree's ``bpf/``)."""

ENTRY: Final = "responder.c"
PROGRAM: Final = "oelb_xdp"
PASS_PROGRAM: Final = "oelb_pass"

XDP_FLAGS_SKB_MODE: Final = 1 << 1
XDP_FLAGS_DRV_MODE: Final = 1 << 2

_BPF_FS_TYPE: Final = "bpf"
_PINNED_MAPS: Final = {
    # name -> (key size, value size) the program expects, to spot stale pins of older layouts
    "vips4": (ctypes.sizeof(Key4), ctypes.sizeof(Vip)),
    "vips6": (ctypes.sizeof(Key6), ctypes.sizeof(Vip)),
    "counters": (4, 8),
    "gate": (4, 8),
}
_INCLUDE = re.compile(r'^#include "([^"]+)"\s*$')


def program_source(entry: Path | None = None) -> str:
    """The program as one text with the local ``#include "x.h"`` files inlined (each once)."""
    seen: set[Path] = set()

    def inline(path: Path) -> list[str]:
        try:
            text = path.read_text()
        except OSError as exc:
            raise DataplaneError(f"cannot read the XDP program source {path}: {exc}") from exc
        lines: list[str] = []
        for line in text.splitlines():
            match = _INCLUDE.match(line)
            if match is None:
                lines.append(line)
                continue
            child = (path.parent / match.group(1)).resolve()
            if child not in seen:
                seen.add(child)
                lines.extend(inline(child))
        return lines

    return "\n".join(inline(entry or BPF_SOURCE_DIR / ENTRY)) + "\n"


def _mounts() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[1].replace("\\040", " "), parts[2]))
    return out


def on_bpffs(path: Path) -> bool:
    """Whether ``path`` lies on a bpf filesystem (the deepest mount containing it is bpffs)."""
    best, fstype = "", ""
    target = str(path)
    for mountpoint, kind in _mounts():
        inside = target == mountpoint or target.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best):
            best, fstype = mountpoint, kind
    return fstype == _BPF_FS_TYPE


def ensure_bpffs(pin_root: Path) -> None:
    """Make ``pin_root`` usable for pins: mount bpffs at /sys/fs/bpf (as systemd does) when the
    root is below it, else at ``pin_root`` itself."""
    if on_bpffs(pin_root):
        pin_root.mkdir(parents=True, exist_ok=True)
        return
    sys_bpf = Path("/sys/fs/bpf")
    where = sys_bpf if pin_root.is_relative_to(sys_bpf) else pin_root
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "bpf", "bpf", str(where)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise DataplaneError(
            f"{pin_root} is not on a bpf filesystem and mounting one at {where} failed: "
            f"{done.stderr.strip()}"
        )
    log.info("mounted a bpf filesystem at %s for the data plane's pins", where)
    pin_root.mkdir(parents=True, exist_ok=True)


def drop_stale_pins(pin_dir: Path) -> list[str]:
    """Unlink pinned maps whose layout differs from this program's (left by an older version);
    bcc cannot load the program against them. Returns the names removed."""
    removed: list[str] = []
    for name, (key_size, value_size) in _PINNED_MAPS.items():
        path = pin_dir / name
        if not path.exists():
            continue
        try:
            fd = bpfsys.obj_get(path)
        except OSError:
            path.unlink()
            removed.append(name)
            continue
        try:
            info = bpfsys.map_info(fd)
        finally:
            os.close(fd)
        if (info.key_size, info.value_size) != (key_size, value_size):
            path.unlink()
            removed.append(name)
    if removed:
        log.warning("removed pinned maps of another layout in %s: %s", pin_dir, removed)
    return removed


@dataclass
class LoadedProgram:
    """The responder loaded into the kernel (not necessarily attached)."""

    bpf: Any
    """The bcc BPF object (owns the ring buffer reader)."""
    prog_fd: int
    vips4_fd: int
    vips6_fd: int
    counters_fd: int
    gate_fd: int
    pin_dir: Path

    def extra_fd(self, name: str) -> int:
        """fd of another function of the same text (benchmark variants)."""
        import bcc

        return int(self.bpf.load_func(name.encode(), bcc.BPF.XDP).fd)

    def open_events(self, callback: Callable[[bytes], None]) -> None:
        """Call ``callback`` with each raw conflict record on ``poll_events``."""

        def on_event(_ctx: object, data: int, size: int) -> int:
            callback(ctypes.string_at(data, min(size, ctypes.sizeof(ConflictEvent))))
            return 0

        self.bpf[b"oelb_events"].open_ring_buffer(on_event)

    def poll_events(self, timeout: float) -> None:
        self.bpf.ring_buffer_poll(max(0, int(timeout * 1000)))

    def close(self) -> None:
        """Close this process's handles; pinned and attached objects stay in the kernel."""
        with contextlib.suppress(Exception):
            self.bpf.cleanup()


def load_program(
    *,
    pin_dir: Path,
    max_vips: int = 16384,
    extra_source: str = "",
    extra_cflags: tuple[str, ...] = (),
) -> LoadedProgram:
    """Compile and load the responder, creating or re-using the maps pinned in ``pin_dir``."""
    try:
        import bcc
    except ImportError as exc:
        raise DataplaneError(f"bcc is not importable ({exc}); `make setup` installs it") from exc
    if '"' in str(pin_dir) or "\\" in str(pin_dir):
        raise DataplaneError(f"pin directory {pin_dir} must not contain quotes or backslashes")
    ensure_bpffs(pin_dir.parent)
    pin_dir.mkdir(parents=True, exist_ok=True)
    drop_stale_pins(pin_dir)
    cflags = [f'-DOELB_PIN_DIR="{pin_dir}"', f"-DOELB_MAX_VIPS={int(max_vips)}", *extra_cflags]
    text = program_source() + extra_source
    try:
        module = bcc.BPF(text=text.encode(), cflags=cflags)
        fn = module.load_func(PROGRAM.encode(), bcc.BPF.XDP)
    except Exception as exc:  # bcc raises bare Exception on compile and verifier errors
        raise DataplaneError(f"the XDP program did not compile or load: {exc}") from exc
    return LoadedProgram(
        bpf=module,
        prog_fd=int(fn.fd),
        vips4_fd=int(module[b"oelb_vips4"].map_fd),
        vips6_fd=int(module[b"oelb_vips6"].map_fd),
        counters_fd=int(module[b"oelb_counters"].map_fd),
        gate_fd=int(module[b"oelb_gate"].map_fd),
        pin_dir=pin_dir,
    )


def pin_program(program: LoadedProgram) -> None:
    """Pin the program as ``<pin_dir>/prog``, replacing a previous speaker's pin."""
    path = program.pin_dir / "prog"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    bpfsys.obj_pin(program.prog_fd, path)


def attach(iface: str, prog_fd: int, *, generic: bool) -> None:
    """Attach (or atomically replace) the XDP program of ``iface`` in this thread's netns."""
    from bcc.libbcc import lib

    flags = XDP_FLAGS_SKB_MODE if generic else XDP_FLAGS_DRV_MODE
    if lib.bpf_attach_xdp(iface.encode(), prog_fd, flags) < 0:
        err = ctypes.get_errno()
        mode = "generic" if generic else "native"
        raise DataplaneError(f"attaching XDP ({mode}) to {iface} failed: {os.strerror(err)}")


def detach(iface: str, *, generic: bool) -> None:
    """Remove the XDP program of ``iface`` (in the given mode); absent is fine."""
    from bcc.libbcc import lib

    flags = XDP_FLAGS_SKB_MODE if generic else XDP_FLAGS_DRV_MODE
    if lib.bpf_attach_xdp(iface.encode(), -1, flags) < 0:
        err = ctypes.get_errno()
        raise DataplaneError(f"detaching XDP from {iface} failed: {os.strerror(err)}")


def link_kind(iface: str) -> str:
    """The link type of ``iface`` in this thread's netns ("veth", "bridge", "" for a NIC)."""
    import json

    done = subprocess.run(
        ["ip", "-json", "-details", "link", "show", "dev", iface],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DataplaneError(f"no interface named {iface!r} on this node")
    info = json.loads(done.stdout)[0].get("linkinfo", {})
    return str(info.get("info_kind", ""))


def attached_program_id(iface: str, netns: str | None = None) -> tuple[int, str]:
    """(program id, "native" | "generic" | "") of the XDP program on ``iface``."""
    import json

    cmd = ["ip", "-json", "-details", "link", "show", "dev", iface]
    if netns:
        cmd[1:1] = ["-n", netns]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DataplaneError(f"no interface {iface}: {done.stderr.strip()}")
    info = json.loads(done.stdout)[0].get("xdp", {})
    mode = {1: "native", 2: "generic", 3: "offload"}.get(int(info.get("mode", 0)), "")
    prog = info.get("prog", {}) or {}
    return int(prog.get("id", 0)), mode


_PASS_INSNS: Final = bytes.fromhex(
    "b700000002000000"  # r0 = XDP_PASS
    "9500000000000000"  # exit
)


def attach_pass_program(iface: str, *, generic: bool = False) -> None:
    """Attach a program that passes everything to ``iface`` (the peer of a veth that runs the
    responder in native mode needs one, or XDP_TX frames are dropped: ENV.md)."""
    fd = bpfsys.prog_load_xdp(_PASS_INSNS)
    try:
        attach(iface, fd, generic=generic)
    finally:
        os.close(fd)
