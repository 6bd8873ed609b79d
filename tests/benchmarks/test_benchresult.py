"""The shared result shape of the benchmarks: percentiles, verdicts, the file the report reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from openelb.lab.benchreport import benchmark_name, read_result
from openelb.lab.benchresult import (
    Row,
    Target,
    exit_code,
    percentile,
    publish,
    table,
    write_result,
)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.99) == 20.0  # p99 of 20 samples is the worst one
    assert percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_a_row_is_met_only_when_every_target_holds() -> None:
    row = Row("gap", "ms", [100.0, 120.0, 300.0], (Target(150.0, "p50"), Target(250.0, "p99")))
    assert row.stat("p50") == 120.0
    assert row.verdict == "MISSED"  # p99 = 300
    assert Row("gap", "ms", [100.0, 120.0], (Target(150.0, "p50"),)).verdict == "met"
    assert Row("gap", "ms", [], (Target(1.0),)).verdict == "no samples"
    assert Row("info", "ms", [1.0]).verdict == ""
    assert exit_code([row]) == 1
    assert exit_code([Row("info", "ms", [1.0])]) == 0


def test_written_result_is_read_back_by_the_report(tmp_path: Path) -> None:
    rows = [Row("gap", "ms", [1.0, 2.0, 3.0], (Target(5.0, "p99"),), extra={"lost": [0, 1, 2]})]
    path = write_result(
        "demo", rows=rows, ratios={"a / b": 0.5, "bad": float("nan")}, results_dir=tmp_path
    )
    result = read_result(path)
    assert result.benchmark == "demo"
    assert result.problems == ()
    assert result.rows[0].median == 2.0
    assert result.rows[0].verdict == "met"
    assert result.rows[0].target == "p99 < 5 ms"
    assert result.ratios == (("a / b", 0.5),)
    assert "gap" in table(rows, title="demo")


def test_publish_prints_table_ratios_and_notes_and_keeps_extra_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        Row("total", "ms", [10.0, 20.0], (Target(5.0, "p99"),)),
        Row("of which: apiserver", "ms", []),  # no target: shown, never judged
    ]
    code = publish(
        "demo",
        title="demo run",
        rows=rows,
        ratios={"total / floor (p50)": 2.0},
        notes=["speaker log: slow loop 40 ms"],
        extra={"facts": {"victim": "n1"}},
        results_dir=tmp_path,
    )
    assert code == 1  # the judged row missed its target
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "demo run"
    ratio = lines.index("  total / floor (p50): 2.00")
    assert lines[ratio + 1] == "  speaker log: slow loop 40 ms"
    assert lines[ratio + 2].startswith("  wrote ")
    (path,) = tmp_path.glob("demo-*.json")
    assert read_result(path).problems == ()
    assert '"victim": "n1"' in path.read_text()


def test_result_files_map_to_their_scripts_even_with_dashes_in_the_name() -> None:
    assert benchmark_name(Path("ipam-20261202T000000Z.json")) == "ipam"
    assert benchmark_name(Path("failover_l2-20261203T023511.json")) == "failover_l2"
    assert benchmark_name(Path("dataplane-afpacket-20261203T030631.json")) == "dataplane_afpacket"
    assert benchmark_name(Path("odd.json")) == "odd"


def test_floors_zero_counts_and_references() -> None:
    rate = Row("rate", "Mpps", [2.4, 2.6, 2.7], (Target(2.5, "p50", op=">="),))
    assert rate.verdict == "met"
    assert Row("rate", "Mpps", [2.4], (Target(2.5, "min", op=">="),)).verdict == "MISSED"
    assert Row("doubles", "", [0.0, 0.0], (Target(0, "max", op="<="),)).verdict == "met"
    assert Row("doubles", "", [0.0, 1.0], (Target(0, "max", op="<="),)).verdict == "MISSED"
    assert Target(0, "max", op="<=").describe("") == "max <= 0"
    theirs = Row("official", "s", [2.5], reference=True)
    assert theirs.verdict == "reference"
    assert exit_code([rate, theirs]) == 0
    with pytest.raises(ValueError):
        Row("official", "s", [2.5], (Target(1.0),), reference=True)
    with pytest.raises(ValueError):
        Target(1.0, op=">")
    check = rate.to_json()["checks"][0]
    assert check == {"stat": "p50", "op": ">=", "limit": 2.5, "value": 2.6, "held": True}


def test_older_files_saying_ok_or_fail_are_read_as_met_or_missed(tmp_path: Path) -> None:
    path = tmp_path / "ipam-20261202T000000Z.json"
    path.write_text(
        '{"rows": [{"name": "a", "unit": "s", "median": 0.2, "samples": [0.2], "target": 0.5,'
        ' "verdict": "ok"}, {"name": "b", "unit": "s", "median": 2, "samples": [2],'
        ' "target": 1, "verdict": "FAIL"}]}'
    )
    result = read_result(path)
    assert [r.verdict for r in result.rows] == ["met", "MISSED"]
    assert [r.name for r in result.missed] == ["b"]
    assert result.rows[0].measured() == "p50 0.2 s"
