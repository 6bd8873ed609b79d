"""Reading keepalived's notify FIFO and turning instance transitions into per-VIP state."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import REGISTRY

from openelb.config import KeepalivedSettings
from openelb.keepalived.model import plan
from openelb.keepalived.notify import FifoReader, Transition, VrrpState, make_fifo, parse_line
from openelb.keepalived.states import StateTable
from tests.keepalived.builders import state, vip


def test_instance_lines_parse_and_group_lines_are_ignored() -> None:
    t = parse_line('INSTANCE "oelb_pool1_v4_7" MASTER 190\n', at=5.0)
    assert t == Transition("oelb_pool1_v4_7", VrrpState.MASTER, 190, 5.0)
    assert parse_line('GROUP "g" MASTER', at=0) is None
    assert parse_line('INSTANCE "x" DANCING 1', at=0) is None
    assert parse_line("", at=0) is None
    assert parse_line('INSTANCE "x" STOP', at=0) == Transition("x", VrrpState.STOP, 0, 0)


def test_fifo_reader_delivers_transitions_across_writer_restarts(tmp_path: Path) -> None:
    fifo = tmp_path / "notify.fifo"
    fifo.write_text("a stale regular file from a crash")
    seen: list[Transition] = []
    reader = FifoReader(fifo, seen.append).start()
    try:
        for line in (b'INSTANCE "i" BACKUP 100\nINSTANCE "i" MAS', b"TER 100\n"):
            fd = os.open(fifo, os.O_WRONLY)  # a writer that comes and goes, like keepalived
            os.write(fd, line)
            os.close(fd)
            time.sleep(0.05)
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        reader.close()
    assert [t.state for t in seen] == [VrrpState.BACKUP, VrrpState.MASTER]
    make_fifo(fifo)  # idempotent on an existing FIFO


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_state_table_reports_per_vip_changes_metrics_and_failover() -> None:
    p = plan(
        state("a", vip("10.250.0.200", eip="st1"), vip("10.250.0.201", eip="st1")),
        KeepalivedSettings(),
    )
    table = StateTable(node="a", last_foreign_advert=lambda family, rid: 99.7)
    table.set_plan(p)
    name = p.instances[0].name
    assert table.record(Transition(name, VrrpState.BACKUP, 180, 90.0))[0].previous is None
    assert table.record(Transition(name, VrrpState.BACKUP, 180, 91.0)) == []  # a repeat
    changes = table.record(Transition(name, VrrpState.MASTER, 180, 100.0))
    assert {c.vip for c in changes} == {"10.250.0.200", "10.250.0.201"}
    assert all(c.node == "a" and c.previous is VrrpState.BACKUP for c in changes)
    assert changes[0].failover is not None and abs(changes[0].failover - 0.3) < 1e-9
    assert table.held() == {"10.250.0.200", "10.250.0.201"}
    assert table.record(Transition("unknown", VrrpState.MASTER, 1, 0)) == []
    assert _sample("openelb_vrrp_state", pool="st1", vrrp_instance=name, state="MASTER") == 1
    assert _sample("openelb_vrrp_state", pool="st1", vrrp_instance=name, state="BACKUP") == 0
    assert (
        _sample("openelb_vrrp_transitions_total", pool="st1", vrrp_instance=name, state="MASTER")
        == 1
    )
    assert _sample("openelb_vrrp_failover_duration_seconds_count", pool="st1") == 1
    table.set_plan(plan(state("a"), KeepalivedSettings()))
    assert table.vip_states() == {}
    assert _sample("openelb_vrrp_state", pool="st1", vrrp_instance=name, state="MASTER") is None
