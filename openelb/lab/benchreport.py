"""The benchmark report: every benchmark's JSON result turned into one markdown page with plots.

Each script under ``benchmarks/`` prints its own table and writes ``<name>-<stamp>.json`` under
``benchmarks/results/``. The shape they share::

    {"benchmark": "ipam", "when": "...", "host": {...},
     "rows": [{"name": ..., "unit": ..., "median": ..., "samples": [...],
               "target": ..., "verdict": "met" | "MISSED" | "reference" | ...,
               "checks": [{"stat": "p99", "op": "<", "limit": 100, "value": 83, "held": true}]},
              ...],
     "ratios": {"what": value, ...}}

(:mod:`openelb.lab.benchresult` writes it.) The page opens with every judged row across the
suite — measured value, target, held or missed — so a reader sees at once which targets hold;
rows measured only for comparison (``reference``: another project's code, a naive baseline) are
marked as such and never count as a miss. Rows and ratios become tables; rows with several
samples become a box plot per unit, so the spread (what noisy machines hide behind a median) is
visible. Anything else in the JSON is kept out of the page but left in the file. Reading is
forgiving: a result that does not follow the shape is listed as such rather than breaking the
report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openelb.lab.benchresult import percentile

VERDICTS = {"ok": "met", "pass": "met", "met": "met", "fail": "MISSED", "missed": "MISSED"}
"""Older result files said ok/PASS/FAIL; the report speaks one language."""


@dataclass(frozen=True)
class Check:
    """One target of a row, with the value it was judged on."""

    stat: str
    op: str
    limit: float
    value: float | None
    held: bool

    def describe(self, unit: str) -> str:
        measured = "—" if self.value is None else f"{_fmt(self.value)} {unit}".rstrip()
        return f"{self.stat} {measured}"


@dataclass(frozen=True)
class Row:
    """One measured quantity of a benchmark."""

    name: str
    unit: str
    median: float | None
    samples: tuple[float, ...]
    target: str
    verdict: str
    p99: float | None = None
    """The result's own p99 if it wrote one, else the nearest-rank p99 of the samples."""
    checks: tuple[Check, ...] = ()

    @property
    def judged(self) -> bool:
        return self.verdict in ("met", "MISSED", "no samples")

    def measured(self) -> str:
        """The numbers the verdict rests on (the median for an older file without checks)."""
        if self.checks:
            return ", ".join(c.describe(self.unit) for c in self.checks)
        return f"p50 {_fmt(self.median)} {self.unit}".rstrip()


@dataclass(frozen=True)
class Result:
    """One benchmark's newest result file, read back."""

    benchmark: str
    path: Path
    when: str
    rows: tuple[Row, ...]
    ratios: tuple[tuple[str, float], ...]
    problems: tuple[str, ...] = field(default=())
    load: float | None = None
    """The machine's 1-minute load when the result was written (a miss under load reads
    differently from a miss on an idle machine)."""

    @property
    def missed(self) -> tuple[Row, ...]:
        """Rows whose target did not hold (a targeted row with no samples counts as missed)."""
        return tuple(r for r in self.rows if r.verdict in ("MISSED", "no samples"))

    @property
    def met(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict == "met")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _check(raw: object) -> Check | None:
    if not isinstance(raw, dict):
        return None
    limit = _number(raw.get("limit"))
    if limit is None:
        return None
    return Check(
        stat=str(raw.get("stat", "?")),
        op=str(raw.get("op", "<")),
        limit=limit,
        value=_number(raw.get("value")),
        held=raw.get("held") is True,
    )


def _verdict(raw: Mapping[str, Any]) -> str:
    if raw.get("reference") is True:
        return "reference"
    text = str(raw.get("verdict") or "")
    return VERDICTS.get(text.lower(), text)


def _row(raw: Mapping[str, Any]) -> Row:
    samples = raw.get("samples")
    numbers = [_number(v) for v in samples] if isinstance(samples, list) else []
    target = raw.get("target")
    kept = tuple(v for v in numbers if v is not None)
    p99 = _number(raw.get("p99"))
    if p99 is None and kept:
        p99 = percentile(kept, 0.99)
    return Row(
        name=str(raw.get("name", "?")),
        unit=str(raw.get("unit", "")),
        median=_number(raw.get("median")),
        samples=kept,
        target="" if target is None else str(target),
        verdict=_verdict(raw),
        p99=p99,
        checks=tuple(c for c in map(_check, _list(raw.get("checks"))) if c is not None),
    )


def benchmark_name(path: Path) -> str:
    """The script a result file belongs to: ``<name>-<stamp>.json`` with the stamp dropped and
    dashes read as underscores (``dataplane-afpacket-<stamp>`` is ``dataplane_afpacket``'s)."""
    stem = path.name.removesuffix(".json")
    head, _, stamp = stem.rpartition("-")
    name = head if head and stamp[:1].isdigit() else stem
    return name.replace("-", "_")


def read_result(path: Path) -> Result:
    """Read one result file; a malformed one yields a Result that names its problem."""
    name = benchmark_name(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return Result(name, path, "", (), (), (f"unreadable: {exc}",))
    if not isinstance(data, dict):
        return Result(name, path, "", (), (), ("not a JSON object",))
    problems: list[str] = []
    raw_rows = data.get("rows", [])
    if not isinstance(raw_rows, list):
        problems.append("'rows' is not a list")
        raw_rows = []
    rows = tuple(_row(r) for r in raw_rows if isinstance(r, dict))
    raw_ratios = data.get("ratios", {})
    ratios = tuple(
        (str(k), v)
        for k, raw in (raw_ratios.items() if isinstance(raw_ratios, dict) else ())
        if (v := _number(raw)) is not None
    )
    if not rows and not ratios:
        problems.append("no rows or ratios in the shape the report reads")
    host = data.get("host")
    return Result(
        benchmark=str(data.get("benchmark", name)),
        path=path,
        when=str(data.get("when", "")),
        rows=rows,
        ratios=ratios,
        problems=tuple(problems),
        load=_number(host.get("load1")) if isinstance(host, dict) else None,
    )


def newest_results(results_dir: Path, *, since: float | None = None) -> dict[str, Result]:
    """The newest result file of each benchmark (optionally only those written after ``since``)."""
    newest: dict[str, tuple[float, Path]] = {}
    for path in results_dir.glob("*.json"):
        if "-" not in path.name:
            continue
        mtime = path.stat().st_mtime
        if since is not None and mtime < since:
            continue
        name = benchmark_name(path)
        if name not in newest or mtime > newest[name][0]:
            newest[name] = (mtime, path)
    return {name: read_result(path) for name, (_, path) in sorted(newest.items())}


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or 0.01 <= abs(value) < 100_000:
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plot_result(result: Result, out_dir: Path) -> list[Path]:
    """Box plots of the rows that have several samples, one PNG per unit; returns the files."""
    import matplotlib  # heavy, and only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_unit: dict[str, list[Row]] = {}
    for row in result.rows:
        if len(row.samples) >= 2:
            by_unit.setdefault(row.unit, []).append(row)
    written = []
    for index, (unit, rows) in enumerate(sorted(by_unit.items())):
        fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(rows)))
        ax.boxplot([r.samples for r in rows], orientation="horizontal", showfliers=True)
        ax.set_yticks(range(1, len(rows) + 1), [r.name[:60] for r in rows], fontsize=7)
        ax.set_xlabel(unit or "value")
        ax.set_title(f"{result.benchmark}: samples per row", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{result.benchmark}-{index}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def render_markdown(
    results: Mapping[str, Result],
    *,
    plots: Mapping[str, Sequence[Path]],
    failures: Mapping[str, str],
    title: str = "openelb benchmark report",
    preface: Iterable[str] = (),
    about: Mapping[str, str] | None = None,
) -> str:
    """The report page: a summary of verdicts, then a section per benchmark (opening with
    ``about[name]``, what the benchmark measures, when given)."""
    lines = [f"# {title}", "", *preface]
    lines += [
        "",
        "## Targets",
        "",
        "Every row judged against a target (DESIGN.md), across the suite. Rows marked "
        "`reference` further down measure another project's code or a naive baseline for "
        "comparison; they are never judged.",
        "",
    ]
    judged = [(name, row) for name, result in results.items() for row in result.rows if row.judged]
    if judged:
        lines += ["| benchmark | what | measured | target | verdict |", "|---|---|---|---|---|"]
        for name, row in judged:
            verdict = row.verdict if row.verdict == "met" else f"**{row.verdict}**"
            lines.append(
                f"| {name} | {_cell(row.name)} | {_cell(row.measured())} | {_cell(row.target)} "
                f"| {verdict} |"
            )
        held = sum(1 for _, row in judged if row.verdict == "met")
        lines += ["", f"{held} of {len(judged)} targets held."]
    else:
        lines.append("No row of these results carries a target.")
    if failures:
        lines += [
            "",
            "Not judged, because the benchmark did not finish: "
            + "; ".join(f"{name} ({why})" for name, why in failures.items())
            + ".",
        ]
    lines += [
        "",
        "## Benchmarks",
        "",
        "| benchmark | rows | targets held | targets missed | load at the end | result file |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        missed = ", ".join(r.name for r in result.missed) or "none"
        if result.problems:
            missed = f"unreadable result: {'; '.join(result.problems)}"
        lines.append(
            f"| {name} | {len(result.rows)} | {len(result.met)} | {_cell(missed)} "
            f"| {_fmt(result.load)} | `{result.path.name}` |"
        )
    for name, why in failures.items():
        lines.append(f"| {name} | — | — | did not finish: {_cell(why)} | — | — |")
    for name, result in results.items():
        lines += ["", f"## {name}", ""]
        if about and about.get(name):
            lines += [f"{about[name]}", ""]
        if result.when:
            lines.append(f"Measured {result.when}.")
        for problem in result.problems:
            lines.append(f"- problem: {problem}")
        if result.rows:
            lines += [
                "",
                "| what | median | p99 | min | max | n | target | verdict |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for row in result.rows:
                low = min(row.samples) if row.samples else None
                high = max(row.samples) if row.samples else None
                lines.append(
                    f"| {_cell(row.name)} | {_fmt(row.median)} {row.unit} | {_fmt(row.p99)} | "
                    f"{_fmt(low)} | "
                    f"{_fmt(high)} | {len(row.samples)} | {_cell(row.target)} | {row.verdict} |"
                )
        if result.ratios:
            lines += ["", "| ratio | value |", "|---|---|"]
            lines += [f"| {_cell(k)} | {_fmt(v)} |" for k, v in result.ratios]
        for path in plots.get(name, ()):
            lines += ["", f"![{name}]({path.name})"]
    return "\n".join(lines) + "\n"
