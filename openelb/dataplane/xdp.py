"""The XDP responder: the ``Responder`` the speaker uses when the XDP program can run.

One program (``bpf/responder.c``) is attached to every announce interface, native mode first
(in the driver, fastest) else generic (after the skb is built, works on any NIC). Its maps and
the program are pinned under ``pin_root/instance``: a restarted speaker loads the program
again against the same maps and swaps it in atomically, so the node never stops answering.
Map writes, the gate and the counters go through :mod:`openelb.dataplane.bpfsys` (one syscall
each), so a sync of a few changes costs microseconds.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import struct
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from openelb.dataplane import bpfsys, xdp_layout
from openelb.dataplane.responder import (
    COUNTER_REASONS,
    Conflict,
    DataplaneError,
    GateHandle,
    IPAddress,
    Responder,
    SyncResult,
    VipEntry,
)
from openelb.dataplane.xdp_loader import (
    LoadedProgram,
    attach,
    detach,
    link_kind,
    load_program,
    pin_program,
)

log = logging.getLogger(__name__)

_GATE_KEY = struct.pack("I", xdp_layout.GATE_KEY)
_U64 = struct.Struct("Q")


def gate_deadline(max_age: float) -> int:
    """The gate value that keeps it open for ``max_age`` seconds from now (CLOCK_MONOTONIC)."""
    return time.monotonic_ns() + int(max_age * 1e9)


class XdpResponder:
    """Answers ARP/NS for VIP entries with the XDP program on ``interfaces``."""

    def __init__(
        self,
        program: LoadedProgram,
        interfaces: Sequence[str],
        *,
        generic: bool,
        reason: str = "",
    ) -> None:
        self.program = program
        self.interfaces = tuple(interfaces)
        self.generic = generic
        self.mode = "xdp-generic" if generic else "xdp-native"
        self.reason = reason
        self._events: list[Conflict] = []
        self._closed = False
        program.open_events(lambda raw: self._events.append(xdp_layout.decode_conflict(raw)))

    # --- entries ---------------------------------------------------------------------------------

    def _map_fd(self, ip: IPAddress) -> int:
        return self.program.vips4_fd if ip.version == 4 else self.program.vips6_fd

    def add(self, entry: VipEntry) -> None:
        key = xdp_layout.encode_key(entry.ifindex, entry.ip)
        bpfsys.map_update(self._map_fd(entry.ip), key, xdp_layout.encode_vip(entry.mac))

    def remove(self, entry: VipEntry) -> None:
        key = xdp_layout.encode_key(entry.ifindex, entry.ip)
        bpfsys.map_delete(self._map_fd(entry.ip), key)

    def entries(self) -> set[VipEntry]:
        found: set[VipEntry] = set()
        for fd, key_size in (
            (self.program.vips4_fd, 8),
            (self.program.vips6_fd, 20),
        ):
            for key in bpfsys.map_keys(fd, key_size):
                value = bpfsys.map_lookup(fd, key, 8)
                if value is None:  # removed between the key walk and the lookup
                    continue
                ifindex, ip = xdp_layout.decode_key(key)
                found.add(VipEntry(ifindex, ip, xdp_layout.decode_vip(value)))
        return found

    def sync(self, entries: Iterable[VipEntry]) -> SyncResult:
        desired: dict[tuple[int, IPAddress], VipEntry] = {}
        for entry in entries:
            desired[(entry.ifindex, entry.ip)] = entry
        current = {(e.ifindex, e.ip): e for e in self.entries()}
        added = [e for k, e in desired.items() if k not in current]
        updated = [e for k, e in desired.items() if k in current and current[k].mac != e.mac]
        removed = [e for k, e in current.items() if k not in desired]
        # Answer for new entries before dropping old ones: a handover never has a hole.
        for entry in (*updated, *added):
            self.add(entry)
        for entry in removed:
            self.remove(entry)
        return SyncResult(
            added=tuple(added),
            removed=tuple(removed),
            updated=tuple(updated),
            unchanged=len(desired) - len(added) - len(updated),
        )

    # --- counters, conflicts ---------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return read_counters(self.program.counters_fd)

    def conflicts(self, timeout: float = 0.0) -> list[Conflict]:
        self.program.poll_events(timeout)
        events, self._events = self._events, []
        return events

    # --- gate ------------------------------------------------------------------------------------

    def refresh_gate(self, max_age: float) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age}")
        bpfsys.map_update(self.program.gate_fd, _GATE_KEY, _U64.pack(gate_deadline(max_age)))

    def close_gate(self) -> None:
        bpfsys.map_update(self.program.gate_fd, _GATE_KEY, _U64.pack(0))

    def gate_open(self) -> bool:
        raw = bpfsys.map_lookup(self.program.gate_fd, _GATE_KEY, 8)
        return raw is not None and _U64.unpack(raw)[0] > time.monotonic_ns()

    def gate_handle(self) -> GateHandle:
        return GateHandle(self.program.gate_fd, xdp_layout.GATE_KEY, 8)

    # --- lifecycle -------------------------------------------------------------------------------

    def close(self, *, detach: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if detach:
            for iface in self.interfaces:
                try:
                    _detach(iface, generic=self.generic)
                except DataplaneError as exc:
                    log.warning("%s", exc)
            shutil.rmtree(self.program.pin_dir, ignore_errors=True)
        self.program.close()

    def __enter__(self) -> XdpResponder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(detach=True)


_detach = detach


def read_counters(counters_fd: int) -> dict[str, int]:
    """Per-reason totals of a (pinned) per-CPU counters map, summed over CPUs."""
    cpus = bpfsys.possible_cpus()
    totals: dict[str, int] = {}
    for index, name in enumerate(COUNTER_REASONS):
        raw = bpfsys.map_lookup(counters_fd, struct.pack("I", index), 8 * cpus)
        totals[name] = sum(struct.unpack(f"{cpus}Q", raw)) if raw else 0
    return totals


def preload_xdp(*, pin_root: Path, instance: str, max_vips: int = 16384) -> LoadedProgram:
    """Compile and load the responder now, attached nowhere yet (``open_xdp(program=...)``).

    Compiling takes about a second of CPU: a speaker does it before it joins the cluster, so
    the first VIP (or an Eip appearing later) only costs an attach of a few milliseconds.
    """
    _check_instance(instance)
    return load_program(pin_dir=pin_root / instance, max_vips=max_vips)


def _check_instance(instance: str) -> None:
    if not instance or "/" in instance or instance in (".", ".."):
        raise DataplaneError(f"bad data plane instance name {instance!r}")


def open_xdp(
    interfaces: Sequence[str],
    *,
    generic: bool,
    pin_root: Path,
    instance: str,
    reason: str = "",
    max_vips: int = 16384,
    native_on_veth: bool = True,
    program: LoadedProgram | None = None,
) -> Responder:
    """Load (re-using pinned maps) the XDP responder and attach it to ``interfaces``.

    ``native_on_veth=False`` (what ``open_responder`` passes in auto mode) refuses native mode on
    veth interfaces, where it would attach fine and then silently drop every reply unless the
    peer runs an XDP program. ``program``: one loaded earlier by :func:`preload_xdp` (the
    responder takes it over on success; on failure it stays the caller's). Raises
    :class:`DataplaneError` saying why when the program cannot load or attach; then nothing
    stays attached by this call (interfaces that already ran a previous speaker's program keep
    it).
    """
    _check_instance(instance)
    if not generic and not native_on_veth:
        for iface in interfaces:
            if link_kind(iface) == "veth":
                raise DataplaneError(
                    f"{iface} is a veth: native XDP replies (XDP_TX) are dropped unless its "
                    "peer runs an XDP program too; attach one there (attach_pass_program) and "
                    "ask for xdp-native explicitly"
                )
    owned = program is None
    if program is None:
        program = load_program(pin_dir=pin_root / instance, max_vips=max_vips)
    attached: list[str] = []
    try:
        for iface in interfaces:
            attach(iface, program.prog_fd, generic=generic)
            attached.append(iface)
        pin_program(program)
    except (DataplaneError, OSError) as exc:
        for iface in attached:
            with contextlib.suppress(DataplaneError):
                detach(iface, generic=generic)
        if owned:
            program.close()
        if isinstance(exc, DataplaneError):
            raise
        raise DataplaneError(f"pinning the XDP program failed: {exc}") from exc
    responder = XdpResponder(program, interfaces, generic=generic, reason=reason)
    log.info(
        "XDP responder (%s) on %s, maps pinned in %s",
        responder.mode,
        ", ".join(interfaces),
        program.pin_dir,
    )
    return responder


__all__ = ["XdpResponder", "gate_deadline", "open_xdp", "preload_xdp", "read_counters"]
