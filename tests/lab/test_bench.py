"""`openelb bench`: runs benchmark scripts one at a time and turns their JSON into a report."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from openelb.cli import main
from openelb.lab import benchrun
from openelb.lab.benchreport import newest_results, read_result, render_markdown

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    quick = "--repeats" in sys.argv
    report = {
        "benchmark": "ipam",
        "when": "20261202T000000Z",
        "rows": [
            {"name": "alloc", "unit": "s", "median": 0.2, "samples": [0.1, 0.2, 0.3],
             "target": 0.5, "verdict": "met"},
            {"name": "slow | thing", "unit": "s", "median": 2.0, "samples": [2.0],
             "target": 1, "verdict": "MISSED"},
        ],
        "ratios": {"scan : ipam": 41.5},
        "quick": quick,
    }
    (out / "ipam-20261202T000000Z.json").write_text(json.dumps(report))
    print("table printed")
    sys.exit(1)
    """
)


@pytest.fixture
def suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "ipam.py").write_text(SCRIPT)
    (bench / "_shared.py").write_text("")
    (bench / "crashes.py").write_text("raise SystemExit(3)\n")
    (bench / "silent.py").write_text("print('no json')\n")
    monkeypatch.setattr(benchrun, "benchmarks_dir", lambda: bench)
    return bench


def test_discover_orders_known_benchmarks_first_and_skips_helpers(suite: Path) -> None:
    assert benchrun.discover(suite) == ["ipam", "crashes", "silent"]


def test_suite_writes_report_with_tables_plots_and_failures(suite: Path) -> None:
    code = benchrun.run_suite(quick=True, timeout=60)
    assert code == 1  # a target was missed and two benchmarks failed
    report = (suite / "results" / "report.md").read_text()
    assert "## ipam" in report
    assert "| alloc | 0.2 s | 0.3 | 0.1 | 0.3 | 3 | 0.5 | met |" in report  # p99: nearest rank
    assert "slow \\| thing" in report  # a pipe in a name does not break the table
    assert "| scan : ipam | 41.5 |" in report
    assert "| crashes | — | — | did not finish: exit code 3 | — | — |" in report
    assert "| silent | — | — | did not finish: wrote no result file | — | — |" in report
    assert "![ipam](ipam-0.png)" in report
    assert "Not judged, because the benchmark did not finish: crashes (exit code 3)" in report
    assert (suite / "results" / "ipam-0.png").stat().st_size > 1000
    data = json.loads((suite / "results" / "ipam-20261202T000000Z.json").read_text())
    assert data["quick"] is True  # --quick passed the script its smaller arguments


def test_cli_runs_only_the_named_benchmark(suite: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--only", "silent", "--timeout", "60"])
    assert result.exit_code == 1
    assert "ipam" not in (suite / "results" / "report.md").read_text().split("|")


def test_cli_rejects_an_unknown_benchmark(suite: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--only", "nope"])
    assert result.exit_code == 2
    assert "no such benchmark: nope" in result.output


def test_a_malformed_result_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "broken-1.json").write_text("{not json")
    (tmp_path / "odd-1.json").write_text(json.dumps({"rows": "x"}))
    results = newest_results(tmp_path)
    assert results["broken"].problems[0].startswith("unreadable")
    assert "'rows' is not a list" in results["odd"].problems
    page = render_markdown(results, plots={}, failures={})
    assert "problem: unreadable" in page


def test_newest_result_wins(tmp_path: Path) -> None:
    old = tmp_path / "ipam-1.json"
    new = tmp_path / "ipam-2.json"
    old.write_text(json.dumps({"rows": [{"name": "old", "median": 1}]}))
    new.write_text(json.dumps({"rows": [{"name": "new", "median": float("nan")}]}))
    os.utime(old, (1, 1))
    result = newest_results(tmp_path)["ipam"]
    assert result.path == new
    assert result.rows[0].name == "new"
    assert result.rows[0].median is None  # NaN is not a number the report shows
    assert read_result(new).benchmark == "ipam"
