"""``openelb bench``: run the scripts under ``benchmarks/`` one after another and write the report.

Benchmarks run one at a time, each in its own process with a time limit, because they measure
timing on a shared 2-CPU machine: two at once would measure each other. Each prints its own
table (passed through as it runs) and writes its JSON; afterwards the newest result of every
benchmark that ran is turned into ``report.md`` plus PNG plots (:mod:`openelb.lab.benchreport`).

``--quick`` passes each script the smaller arguments listed in :data:`QUICK_ARGS` (fewer runs,
fewer Services) so the whole suite gives a first picture in minutes; the numbers in the issue
notes come from full runs.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from openelb.lab.benchreport import newest_results, plot_result, render_markdown

ORDER = (
    "ipam",
    "dataplane",
    "dataplane_afpacket",
    "ownership",
    "heartbeat_jitter",
    "kube_decode",
    "apiserver",
    "leader_election",
    "manager_scale",
    "announce_latency",
    "failover_l2",
    "failover_vip",
    "failover",
    "control_plane_scale",
)
"""Cheap, CPU-only benchmarks first; the long namespace ones (failover) last."""

QUICK_ARGS: dict[str, tuple[str, ...]] = {
    "ipam": ("--repeats", "3"),
    # failover.py measures keepalived defaults/tuned in the same run: quick skips them here
    "failover_vip": ("--runs", "3", "--variants", "openelb"),
    "failover_l2": ("--runs", "3", "--hog-seconds", "5"),
    "leader_election": ("--runs", "3"),
    "manager_scale": ("--services", "500"),
    # bench: the announce/failover/control-plane suite (quick: fewer runs, smaller scale)
    "announce_latency": ("--services", "50"),
    "failover": ("--runs", "3"),
    "control_plane_scale": ("--services", "1000", "--nodes", "3"),
}

FULL_RUN_SECONDS: dict[str, float] = {"failover": 3600.0, "control_plane_scale": 3600.0}
"""Benchmarks whose full run needs more than the default limit (failover: 3 systems x 3
failures x 20 runs, ~32 min here, keepalived's defaults alone ~3 s a run plus settling)."""


@dataclass(frozen=True)
class Outcome:
    name: str
    returncode: int | None
    seconds: float
    why: str = ""


def benchmarks_dir() -> Path:
    """``benchmarks/`` of the checkout openelb runs from (the package is installed editable)."""
    return Path(__file__).resolve().parents[2] / "benchmarks"


def discover(directory: Path) -> list[str]:
    """Benchmark names (script stems) in the suite's order; helpers start with ``_``."""
    names = {p.stem for p in directory.glob("*.py") if not p.stem.startswith("_")}
    known = [n for n in ORDER if n in names]
    return known + sorted(names - set(known))


def describe(script: Path) -> str:
    """The first line of a benchmark script's docstring (what it measures), or ``""``."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text()))
    except (OSError, SyntaxError, ValueError):
        return ""
    return doc.splitlines()[0].strip() if doc else ""


def run_one(
    name: str, *, directory: Path, quick: bool, timeout: float, extra: Sequence[str] = ()
) -> Outcome:
    """Run one benchmark script, its output passed through; never raises for its failures."""
    args = [sys.executable, str(directory / f"{name}.py")]
    args += list(QUICK_ARGS.get(name, ())) if quick else []
    args += list(extra)
    print(f"\n=== {name}: {' '.join(args[1:])}", flush=True)
    start = time.monotonic()
    try:
        proc = subprocess.run(args, timeout=timeout, check=False, cwd=directory.parent)
    except subprocess.TimeoutExpired:
        return Outcome(name, None, time.monotonic() - start, f"over the {timeout:.0f} s limit")
    seconds = time.monotonic() - start
    if proc.returncode not in (0, 1):
        return Outcome(name, proc.returncode, seconds, f"exit code {proc.returncode}")
    # Exit 1 is the suite's convention for "ran, and some target was missed": still reported.
    return Outcome(name, proc.returncode, seconds)


def run_suite(
    *,
    only: Sequence[str] = (),
    quick: bool = False,
    timeout: float = 1800.0,
    out_dir: Path | None = None,
) -> int:
    """Run the suite, write the report; exit code 0 if every benchmark ran and met its targets."""
    directory = benchmarks_dir()
    if not directory.is_dir():
        print(f"bench: no benchmarks folder at {directory}", file=sys.stderr)
        return 2
    names = discover(directory)
    unknown = sorted(set(only) - set(names))
    if unknown:
        print(f"bench: no such benchmark: {', '.join(unknown)} (have: {', '.join(names)})")
        return 2
    selected = [n for n in names if not only or n in only]
    results_dir = directory / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    out_dir = out_dir or results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    outcomes = [
        run_one(
            n,
            directory=directory,
            quick=quick,
            timeout=timeout if quick else max(timeout, FULL_RUN_SECONDS.get(n, 0.0)),
        )
        for n in selected
    ]

    results = {k: v for k, v in newest_results(results_dir, since=started).items() if k in selected}
    failures = {o.name: o.why for o in outcomes if o.why}
    failures.update(
        {o.name: "wrote no result file" for o in outcomes if not o.why and o.name not in results}
    )
    plots = {name: plot_result(result, out_dir) for name, result in results.items()}
    load = os.getloadavg()[0]
    preface = [
        f"Run: `openelb bench{' --quick' if quick else ''}` on {os.cpu_count()} CPUs, "
        f"load {load:.2f} at the end; {sum(o.seconds for o in outcomes):.0f} s in all.",
        "Medians and ratios against baselines measured in the same run; these machines are "
        "noisy, so read the spread in the plots too.",
    ]
    about = {name: describe(directory / f"{name}.py") for name in results}
    page = render_markdown(results, plots=plots, failures=failures, preface=preface, about=about)
    report = out_dir / "report.md"
    report.write_text(page)
    print(f"\nbench: report written to {report}")
    for name, why in failures.items():
        print(f"bench: {name}: {why}")
    missed = [f"{r.benchmark}: {row.name}" for r in results.values() for row in r.missed]
    for line in missed:
        print(f"bench: target missed: {line}")
    return 1 if failures or missed else 0
