"""The XDP program against the packet fixtures, through BPF_PROG_TEST_RUN (no interfaces)."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openelb.dataplane import bpfsys, xdp_layout
from openelb.dataplane.responder import VipEntry
from openelb.dataplane.xdp import XdpResponder, read_counters
from openelb.dataplane.xdp_loader import LoadedProgram, load_program
from tests.dataplane.fixtures import CASES, OWNED, Case

pytestmark = pytest.mark.bpf

XDP_PASS, XDP_TX = 2, 3


@pytest.fixture(scope="module")
def program(bpffs: Path) -> Iterator[LoadedProgram]:
    loaded = load_program(pin_dir=bpffs / "program-tests")
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture(scope="module")
def responder(program: LoadedProgram) -> XdpResponder:
    """A responder over the loaded program, attached to nothing (frames come from test runs)."""
    resp = XdpResponder(program, (), generic=True)
    resp.sync(VipEntry(ifindex, ip, mac) for ifindex, ip, mac in OWNED)
    return resp


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fixture(case: Case, program: LoadedProgram, responder: XdpResponder) -> None:
    if case.gate_open:
        responder.refresh_gate(60.0)
    else:
        responder.close_gate()
    responder.conflicts()  # drain
    before = read_counters(program.counters_fd)

    run = bpfsys.prog_test_run(program.prog_fd, case.frame)

    after = read_counters(program.counters_fd)
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert moved == ({case.reason: 1} if case.reason else {}), case.description
    if case.verdict == "tx":
        assert run.retval == XDP_TX, case.description
        assert run.data.hex() == (case.reply or b"").hex(), case.description
    else:
        assert run.retval == XDP_PASS, case.description
        assert run.data == case.frame, "a passed frame must not be modified"
    conflicts = responder.conflicts(0.0)
    if case.conflict_mac is not None:
        assert [(c.ifindex, c.mac) for c in conflicts] == [(1, case.conflict_mac)]
        assert conflicts[0].monotonic_ns > 0
    else:
        assert conflicts == []


def test_gate_deadline_is_written_as_monotonic_ns(responder: XdpResponder) -> None:
    responder.refresh_gate(5.0)
    assert responder.gate_open()
    handle = responder.gate_handle()
    raw = bpfsys.map_lookup(handle.map_fd, struct.pack("I", handle.key), handle.value_size)
    assert raw is not None
    # Another thread stamping the map directly (as the speaker's heartbeat thread will).
    bpfsys.map_update(handle.map_fd, struct.pack("I", handle.key), struct.pack("Q", 1))
    assert not responder.gate_open()
    responder.refresh_gate(5.0)


def test_sync_makes_minimal_changes(responder: XdpResponder) -> None:
    owned = {VipEntry(i, ip, mac) for i, ip, mac in OWNED}
    assert responder.entries() == owned
    result = responder.sync(owned)
    assert not result.changed and result.unchanged == 2
    v4 = next(e for e in owned if e.version == 4)
    moved = VipEntry(v4.ifindex, v4.ip, bytes.fromhex("020000000001"))
    extra = VipEntry(7, v4.ip, v4.mac)
    result = responder.sync({moved, extra} | {e for e in owned if e.version == 6})
    assert result.updated == (moved,) and result.added == (extra,) and result.removed == ()
    result = responder.sync(owned)
    assert result.removed == (extra,) and result.updated == (v4,)
    assert responder.entries() == owned


def test_counters_name_every_reason(responder: XdpResponder) -> None:
    assert list(responder.counters()) == list(xdp_layout.REASON_INDEX)


def test_the_gate_closes_by_itself_when_not_refreshed(
    program: LoadedProgram, responder: XdpResponder
) -> None:
    # The deadline userspace writes (time.monotonic_ns) and the program's clock
    # (bpf_ktime_get_coarse_ns) are the same CLOCK_MONOTONIC: a stale stamp silences the node.
    request = next(c for c in CASES if c.name == "arp-request-broadcast").frame
    responder.refresh_gate(1.0)
    assert bpfsys.prog_test_run(program.prog_fd, request).retval == XDP_TX
    time.sleep(1.2)
    assert not responder.gate_open()
    assert bpfsys.prog_test_run(program.prog_fd, request).retval == XDP_PASS
    responder.refresh_gate(60.0)
