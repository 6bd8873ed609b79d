"""Each benchmark script runs end to end with tiny counts and writes the report's JSON shape.

Timing is never asserted here (a loaded 2-CPU machine would make that flaky): only that the
script finished, printed its table, and wrote rows with samples that ``openelb bench``'s report
can read. The real numbers come from ``openelb bench``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from openelb.lab.benchreport import read_result

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_benchmark(name: str, tmp_path: Path, *args: str, timeout: float = 240) -> dict[str, Any]:
    """Run ``benchmarks/<name>.py`` with results under ``tmp_path``; the parsed JSON result."""
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--results", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # 0 = targets met, 1 = ran but a target was missed (allowed: timing is not judged here).
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(out.glob(f"{name}-*.json"))
    assert len(files) == 1, done.stdout[-3000:]
    result = read_result(files[0])
    assert result.problems == ()
    assert result.benchmark == name
    return dict(json.loads(files[0].read_text()))


@pytest.mark.netns
@pytest.mark.slow
def test_announce_latency_measures_every_phase_of_each_service(tmp_path: Path) -> None:
    data = run_benchmark("announce_latency", tmp_path, "--services", "3", "--nodes", "2")
    rows = {row["name"]: row for row in data["rows"]}
    total = rows["total: created -> first GARP/NA"]
    assert total["services"] == 3
    assert total["never_announced"] == 0
    assert len(total["samples"]) == 3
    for name in ("allocation: created -> ingress", "announcement: ingress -> first GARP/NA"):
        assert len(rows[name]["samples"]) == 3
        assert all(v >= 0 for v in rows[name]["samples"])
    assert total["verdict"] in ("met", "MISSED")
    assert sum(total["announced_by"].values()) == 3


@pytest.mark.netns
@pytest.mark.keepalived
@pytest.mark.slow
def test_failover_compares_openelb_and_keepalived_in_one_run(tmp_path: Path) -> None:
    data = run_benchmark(
        "failover",
        tmp_path,
        "--runs", "1",
        "--dataplane", "afpacket",
        "--systems", "openelb,keepalived-tuned",
        "--scenarios", "link-cut,graceful",
        timeout=280,
    )  # fmt: skip
    rows = {row["name"]: row for row in data["rows"]}
    for system in ("openelb", "keepalived-tuned"):
        for scenario in ("link-cut", "graceful"):
            gap = rows[f"{system} {scenario} gap"]
            assert len(gap["samples"]) + len(gap["failed"]) == 1
            assert f"{system} {scenario} takeover" in rows
    assert rows["openelb link-cut gap"]["verdict"] in ("met", "MISSED", "no samples")
    if rows["openelb link-cut gap"]["samples"] and rows["keepalived-tuned link-cut gap"]["samples"]:
        assert "openelb / keepalived-tuned, link-cut gap (p50)" in data["ratios"]


@pytest.mark.netns
@pytest.mark.slow
def test_control_plane_scale_reports_addressing_recompute_and_memory(tmp_path: Path) -> None:
    data = run_benchmark(
        "control_plane_scale", tmp_path, "--services", "40", "--nodes", "2", timeout=280
    )
    rows = {row["name"]: row for row in data["rows"]}
    assert len(rows["all addressed (first create -> last ingress)"]["samples"]) == 1
    assert len(rows["all answered (first create -> speakers own every VIP)"]["samples"]) == 1
    assert len(rows["speaker RSS"]["samples"]) == 2
    assert rows["speaker RSS"]["verdict"] in ("met", "MISSED")
    assert len(rows["manager RSS"]["samples"]) == 1
    assert len(rows["ownership recompute after a node loss (speakers' own, wall)"]["samples"]) == 1
    cpu = rows["ownership recompute after a node loss (speakers' own, CPU time)"]
    assert len(cpu["samples"]) == 1
    assert cpu["verdict"] in ("met", "MISSED")
    assert len(rows["baseline: same recompute on a bare OwnershipTable"]["samples"]) >= 1
    assert "speaker recompute / bare table (p50)" in data["ratios"]


CHEAP = {
    "ownership": ("--vips", "500", "--repeats", "2"),
    "heartbeat_jitter": ("--seconds", "0.5", "--hogs", "0"),
    "ipam": ("--services", "300", "--repeats", "1", "--baseline-services", "100"),
    "kube_decode": ("--services", "50", "--repeats", "1"),
    "manager_scale": ("--services", "20", "--runs", "1"),
    "apiserver": ("--services", "100", "--repeats", "1", "--fanout", "2"),
}
"""The CPU-only benchmarks, each run for real with tiny counts (seconds each)."""


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_cpu_only_benchmarks_write_rows_the_report_reads(name: str, tmp_path: Path) -> None:
    data = run_benchmark(name, tmp_path, *CHEAP[name], timeout=120)
    assert data["rows"]
    assert all(row["samples"] for row in data["rows"]), data["rows"]
    assert data["host"]["cpus"] >= 1
