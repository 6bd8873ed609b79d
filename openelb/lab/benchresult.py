"""Building a benchmark's result: percentiles, rows with verdicts, the table, the JSON file.

Every script under ``benchmarks/`` ends the same way: summarise samples (median, p99), judge
them against a target, print a table a person reads, and write the JSON shape
:mod:`openelb.lab.benchreport` turns into the report (``rows`` / ``ratios``). Every benchmark
builds that here so the shape, the percentile rule, the verdicts and the file naming are the same
everywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
"""Where results go unless a script is told otherwise (``--results``)."""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty sample; p99 of 20 is the max."""
    if not values:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within 0..1, not {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


STATS = ("p50", "p99", "min", "max")
OPERATORS = ("<", "<=", ">=")


@dataclass(frozen=True)
class Target:
    """A bound a statistic of a row must respect: ``p50 < 150`` by default (a ceiling, for
    latencies and memory); ``op=">="`` makes it a floor (throughput, speed-ups) and ``op="<="``
    suits counts that must stay at zero (``Target(0, "max", op="<=")``)."""

    limit: float
    stat: str = "p50"
    op: str = "<"

    def __post_init__(self) -> None:
        if self.stat not in STATS:
            raise ValueError(f"unknown statistic {self.stat!r}")
        if self.op not in OPERATORS:
            raise ValueError(f"unknown comparison {self.op!r}")

    def holds(self, value: float) -> bool:
        if self.op == "<":
            return value < self.limit
        if self.op == "<=":
            return value <= self.limit
        return value >= self.limit

    def describe(self, unit: str) -> str:
        return f"{self.stat} {self.op} {self.limit:g} {unit}".rstrip()


@dataclass
class Row:
    """One measured quantity: its samples and, optionally, the targets it is judged by."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    targets: tuple[Target, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping in the JSON (runs that failed, who answered, ...)."""
    reference: bool = False
    """Measured for comparison only (another project's code, a naive baseline): shown with
    the verdict ``reference`` and never judged, so it cannot carry targets."""

    def __post_init__(self) -> None:
        if self.reference and self.targets:
            raise ValueError(f"{self.name}: a reference row is not judged, give it no targets")

    def stat(self, which: str) -> float | None:
        if not self.samples:
            return None
        if which == "p50":
            return float(statistics.median(self.samples))
        if which == "p99":
            return percentile(self.samples, 0.99)
        if which == "max":
            return max(self.samples)
        if which == "min":
            return min(self.samples)
        raise ValueError(f"unknown statistic {which!r}")

    @property
    def verdict(self) -> str:
        """``met``, ``MISSED`` (any target), ``no samples``, ``reference``, or ``""`` (no
        targets: a number shown for context)."""
        if self.reference:
            return "reference"
        if not self.targets:
            return ""
        if not self.samples:
            return "no samples"
        return "met" if all(check["held"] for check in self.checks()) else "MISSED"

    def checks(self) -> list[dict[str, Any]]:
        """Each target with the value it was judged on, so a report can quote the number."""
        out = []
        for target in self.targets:
            value = self.stat(target.stat)
            out.append(
                {
                    "stat": target.stat,
                    "op": target.op,
                    "limit": target.limit,
                    "value": value,
                    "held": value is not None and target.holds(value),
                }
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.stat("p50"),
            "p99": self.stat("p99"),
            "min": min(self.samples) if self.samples else None,
            "max": self.stat("max"),
            "samples": self.samples,
            "target": ", ".join(t.describe(self.unit) for t in self.targets),
            "verdict": self.verdict,
            "checks": self.checks(),
            "reference": self.reference,
            **self.extra,
        }


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def table(rows: Sequence[Row], *, title: str) -> str:
    """The human table: p50, p99, min, max, n, target and verdict per row."""
    width = max([len(r.name) for r in rows] + [8])
    head = f"  {'what':<{width}} {'p50':>9} {'p99':>9} {'min':>9} {'max':>9} {'n':>4}  target"
    lines = [title, head]
    for r in rows:
        low = min(r.samples) if r.samples else None
        target = ", ".join(t.describe(r.unit) for t in r.targets)
        lines.append(
            f"  {r.name:<{width}} {_fmt(r.stat('p50')):>9} {_fmt(r.stat('p99')):>9} "
            f"{_fmt(low):>9} {_fmt(r.stat('max')):>9} {len(r.samples):>4}  "
            f"{r.unit} {target} {r.verdict}".rstrip()
        )
    return "\n".join(lines)


def host_facts() -> dict[str, Any]:
    """What the numbers were measured on (the load says how shared the machine was)."""
    return {
        "machine": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load1": round(os.getloadavg()[0], 2),
    }


def write_result(
    benchmark: str,
    *,
    rows: Sequence[Row],
    ratios: Mapping[str, float] | None = None,
    args: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    results_dir: Path | None = None,
) -> Path:
    """Write ``<benchmark>-<UTC stamp>.json`` in the shape the report reads; returns its path."""
    now = datetime.now(UTC)
    directory = results_dir or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    body = {
        "benchmark": benchmark,
        "when": now.isoformat(timespec="seconds"),
        "host": host_facts(),
        "args": dict(args or {}),
        "rows": [r.to_json() for r in rows],
        "ratios": {k: v for k, v in (ratios or {}).items() if math.isfinite(v)},
        **dict(extra or {}),
    }
    path = directory / f"{benchmark}-{now:%Y%m%dT%H%M%S%f}.json"
    path.write_text(json.dumps(body, indent=2))
    return path


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    """``--results DIR``: where :func:`write_result` puts the file (tests use a temporary one)."""
    parser.add_argument(
        "--results", type=Path, default=None, help=f"results folder (default: {RESULTS_DIR})"
    )


def exit_code(rows: Sequence[Row]) -> int:
    """The suite's convention: 0 when every target was met, 1 when one was missed."""
    return 1 if any(r.verdict in ("MISSED", "no samples") for r in rows) else 0


def publish(
    benchmark: str,
    *,
    rows: Sequence[Row],
    title: str,
    ratios: Mapping[str, float] | None = None,
    args: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    results_dir: Path | None = None,
) -> int:
    """How every benchmark ends: print its table, ratios and ``notes`` (lines that explain the
    numbers, e.g. a slow loop's log line), write its result file (``extra`` goes into it as
    top-level keys), and return the exit code (:func:`exit_code`) for ``sys.exit``."""
    say(table(rows, title=title))
    for name, value in (ratios or {}).items():
        say(f"  {name}: {value:.2f}")
    for note in notes:
        say(f"  {note}")
    path = write_result(
        benchmark, rows=rows, ratios=ratios, args=args, extra=extra, results_dir=results_dir
    )
    say(f"  wrote {path}")
    return exit_code(rows)


def say(text: str) -> None:
    """Progress lines, flushed at once (``openelb bench`` passes them through as they come)."""
    print(text, flush=True, file=sys.stdout)
