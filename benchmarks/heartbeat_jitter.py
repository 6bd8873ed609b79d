"""Heartbeat sender jitter: the native nogil pacer against its pure-Python twin, under load.

Run: ``.venv/bin/python benchmarks/heartbeat_jitter.py [--seconds 5] [--hogs 2]``

Each pacer sends 20 ms heartbeats over loopback while this process keeps its GIL busy (a Python
thread spinning, like a control loop decoding a big relist) and ``--hogs`` processes spin on the
CPUs. The lateness of every wake-up against its schedule is what a backup's detector sees as
jitter; a detector declares death after 100 ms (20 ms x 5 misses), so the worst case is what
matters: target, the compiled pacer's worst lateness stays under those 100 ms. The pure-Python
pacer is the baseline measured in the same run. Prints p50 / p99 / max per implementation and
writes the shared result shape (``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

from openelb.lab.benchresult import (
    Row,
    Target,
    add_results_argument,
    publish,
    say,
)
from openelb.speaker.heartbeating import HeartbeatTransport

DEATH_MS = 100.0
"""The failure detector's default: 5 missed 20 ms heartbeats."""


def _spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(10_000):
            x += 1


def _measure(implementation: str, seconds: float) -> list[float]:
    with (
        HeartbeatTransport(
            node="a", incarnation=1, bind=("127.0.0.1", 0), implementation=implementation
        ) as a,
        HeartbeatTransport(node="b", incarnation=1, bind=("127.0.0.1", 0)) as b,
    ):
        a.set_targets([b.address])
        a.start()
        stop = threading.Event()
        spinner = threading.Thread(target=_spin, args=(stop,), daemon=True)
        spinner.start()
        lateness: list[int] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.2)
            lateness += a.drain_lateness()
            a.tick()
        stop.set()
        spinner.join()
    return [max(0, v) / 1e6 for v in lateness]


def rows_of(lateness: dict[str, list[float]]) -> tuple[list[Row], dict[str, float]]:
    """Rows from the lateness samples (ms) of each implementation that ran."""
    compiled = lateness.get("compiled", [])  # not built: a targeted row with no samples (missed)
    python = lateness.get("python", [])
    rows = [
        Row("compiled pacer: send lateness", "ms", compiled, (Target(DEATH_MS, "max"),)),
        Row("baseline: pure-Python pacer: send lateness", "ms", python),
    ]
    ratios = {}
    if compiled and python and max(compiled) > 0:
        ratios["worst lateness: python / compiled"] = max(python) / max(compiled)
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--hogs", type=int, default=2)
    add_results_argument(parser)
    args = parser.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    lateness: dict[str, list[float]] = {}
    try:
        for implementation in ("compiled", "python"):
            try:
                lateness[implementation] = _measure(implementation, args.seconds)
            except ImportError:
                say(f"  {implementation}: not built, skipped")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    rows, ratios = rows_of(lateness)
    return publish(
        "heartbeat_jitter",
        title=(
            f"heartbeat send lateness, 20 ms interval, busy GIL + {args.hogs} CPU hogs, "
            f"{args.seconds:g} s each"
        ),
        rows=rows,
        ratios=ratios,
        args={"seconds": args.seconds, "hogs": args.hogs},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
