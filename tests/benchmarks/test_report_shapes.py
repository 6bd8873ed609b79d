"""Every benchmark's rows, as its own ``rows_of`` builds them, reach the report intact.

The scripts measure for minutes in namespaces; their row building is pure, so it is fed small
made-up measurements here, written with ``write_result``, read back and rendered the way
``openelb bench`` does. What is checked is the reader's view: each row listed, judged rows in
the report's targets table with the numbers they were judged on, reference rows (another
project's code) marked as such and never counted as a miss.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from openelb.lab.benchreport import Result, read_result, render_markdown
from openelb.lab.benchresult import Row, exit_code, write_result

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Iterator[Callable[[str], ModuleType]]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _ownership(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    ms = [0.004, 0.005, 0.006]
    result: tuple[list[Row], dict[str, float]] = m.rows_of(
        loss=ms, back=ms, scratch=[0.05, 0.06, 0.07], build=[0.1, 0.1, 0.1]
    )
    return result


def _heartbeat(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    result: tuple[list[Row], dict[str, float]] = m.rows_of(
        {"compiled": [0.05, 0.07, 8.0], "python": [5.0, 6.0, 18.0]}
    )
    return result


def _manager_scale(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    run = {key: 1.0 + i for i, key in enumerate(m.MEASURES)}
    result: tuple[list[Row], dict[str, float]] = m.rows_of([run, run])
    return result


def _failover_l2(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    def runs(*gaps: float) -> list[dict[str, object]]:
        return [{"gap_ms": g, "lost": int(g), "before": "n1", "after": "n2"} for g in gaps]

    samples = {"link-cut": runs(96.0, 102.0), "sigkill": runs(4.7, 8.6), "graceful": runs(4.4)}
    return m.rows_of(samples, false_deaths=0, hog_seconds=20.0), {}


def _failover_vip(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    variants = [
        m.Variant("keepalived-defaults", gaps=[3.0, 3.1], lost=[3000, 3100]),
        m.Variant("keepalived-tuned", gaps=[0.26, 0.34], lost=[260, 340]),
        m.Variant("openelb", gaps=[0.27, 0.29], lost=[270, 290]),
        m.Variant("speaker-graceful", gaps=[0.006, 0.010], lost=[6, 10]),
    ]
    result: tuple[list[Row], dict[str, float]] = m.rows_of(variants)
    return result


def _dataplane(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    rows = [
        Row("XDP cost: ARP hit (minus restore)", "ns", [58.0, 59.0], (m.ARP_HIT_NS,)),
        Row("ARP replies over veth: kernel", "Mpps", [0.53, 0.54]),
        Row("ARP replies over veth: xdp-generic", "Mpps", [1.26, 1.27]),
        Row("ARP replies over veth: xdp-native", "Mpps", [3.2, 3.3]),
    ]
    result: tuple[list[Row], dict[str, float]] = m.veth_ratios(rows)
    return result


def _dataplane_afpacket(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    def run(rate: float, cpu: float) -> dict[str, float]:
        return {"replies_per_s": rate, "cpu_us_per_reply": cpu}

    rates = {"compiled": [run(320e3, 1.9)] * 2, "python": [run(80e3, 10.6)] * 2}
    series = {"to_wire": [15.0, 37.0], "returned": [40.0, 41.0]}
    result: tuple[list[Row], dict[str, float]] = m.rows_of(
        rates, {"announce() compiled": series, "socket per call (baseline)": series}
    )
    return result


def _leader_election(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    ours = [{"crash": (1.2, 0), "graceful": (0.09, 0)}, {"crash": (None, 0), "graceful": (0.1, 0)}]
    official = [{"crash": (2.5, 0), "partition-refuse": (2.6, 3)}]
    return m.rows_of(ours, official), {}


def _kube_decode(m: ModuleType) -> tuple[list[Row], dict[str, float]]:
    result: tuple[list[Row], dict[str, float]] = m.rows_of(
        {
            "list: json + views": [0.05, 0.06],
            "list: client models (baseline)": [0.17, 0.18],
            "events: json + views": [0.05],
            "events: client models (baseline)": [0.19],
        }
    )
    return result


SHAPES: dict[str, Callable[[ModuleType], tuple[list[Row], dict[str, float]]]] = {
    "ownership": _ownership,
    "heartbeat_jitter": _heartbeat,
    "manager_scale": _manager_scale,
    "failover_l2": _failover_l2,
    "failover_vip": _failover_vip,
    "dataplane": _dataplane,
    "dataplane_afpacket": _dataplane_afpacket,
    "leader_election": _leader_election,
    "kube_decode": _kube_decode,
}


def _render(name: str, rows: list[Row], ratios: dict[str, float], tmp: Path) -> tuple[Result, str]:
    result = read_result(write_result(name, rows=rows, ratios=ratios, results_dir=tmp))
    return result, render_markdown({name: result}, plots={}, failures={})


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_benchmarks_rows_are_rendered_with_their_verdicts(
    name: str, bench: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    rows, ratios = SHAPES[name](bench(name))
    result, page = _render(name, rows, ratios, tmp_path)
    assert result.problems == ()
    assert result.benchmark == name
    assert [r.name for r in result.rows] == [r.name for r in rows]
    section = page.split(f"## {name}", 1)[1]
    for row in rows:
        assert f"| {row.name} |" in section
    targets = page.split("## Targets", 1)[1].split("## Benchmarks", 1)[0]
    judged = [r for r in rows if r.targets]
    for row in judged:
        assert f"| {name} | {row.name} |" in targets
    for row in rows:
        if row.reference:
            assert f"| {row.name} |" not in targets
            assert "| reference |" in section
    for ratio in ratios:
        assert f"| {ratio} |" in section
    # these made-up measurements hold every target: the report and the exit code agree
    assert result.missed == ()
    assert exit_code(rows) == 0
    if judged:
        assert f"{len(judged)} of {len(judged)} targets held." in page
    else:  # manager_scale, kube_decode: context only, no DESIGN target applies
        assert "No row of these results carries a target." in targets


def test_the_official_elector_is_the_reference_not_a_missed_target(
    bench: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    rows, _ = _leader_election(bench("leader_election"))
    result, page = _render("leader_election", rows, {}, tmp_path)
    official = {r.name: r for r in result.rows if r.name.startswith("official")}
    assert official["official: double-leader observations per run (all scenarios)"].median == 3
    assert {r.verdict for r in official.values()} == {"reference"}
    assert result.missed == ()
    assert "| official partition-refuse takeover |" not in page.split("## Benchmarks")[0]
    assert "| leader_election | ours: double-leader observations" in page
    ours = {r.name: r for r in result.rows}["ours crash takeover"]
    assert ours.samples == (1.2,)  # the run without a takeover leaves no sample


def test_a_double_leader_of_ours_is_a_missed_target(
    bench: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    rows = bench("leader_election").rows_of([{"crash": (1.0, 1)}], [])
    result, page = _render("leader_election", rows, {}, tmp_path)
    assert [r.name for r in result.missed] == [
        "ours: double-leader observations per run (all scenarios)"
    ]
    assert exit_code(rows) == 1
    assert "| max 1 | max <= 0 | **MISSED** |" in page
    assert "0 of 1 targets held." in page


def test_a_floor_target_quotes_the_value_it_missed(
    bench: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    module = bench("dataplane")
    rows, ratios = module.veth_ratios(
        [
            Row("ARP replies over veth: kernel", "Mpps", [1.0]),
            Row("ARP replies over veth: xdp-generic", "Mpps", [1.5]),
            Row("ARP replies over veth: xdp-native", "Mpps", [2.0]),
        ]
    )
    result, page = _render("dataplane", rows, ratios, tmp_path)
    assert {r.name: r.verdict for r in result.rows if r.verdict} == {
        "ARP replies over veth: xdp-native": "MISSED",
        "ARP replies over veth: xdp-native / kernel": "MISSED",
    }
    assert "| p50 2 Mpps | p50 >= 2.5 Mpps | **MISSED** |" in page
    assert "| p50 2 x | p50 >= 3 x | **MISSED** |" in page
    assert exit_code(rows) == 1


def test_a_failover_with_no_successful_run_is_missed_not_silent(
    bench: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    module = bench("failover_vip")
    rows, _ = module.rows_of([module.Variant("openelb", failed=3)])
    result, _ = _render("failover_vip", rows, {}, tmp_path)
    assert result.rows[0].verdict == "no samples"
    assert result.missed == result.rows
    assert exit_code(rows) == 1
