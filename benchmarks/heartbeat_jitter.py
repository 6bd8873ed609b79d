"""Heartbeat sender jitter: the native nogil pacer against its pure-Python twin, under load.

Run: ``.venv/bin/python benchmarks/heartbeat_jitter.py [--seconds 5] [--hogs 2]``

Each pacer sends 20 ms heartbeats over loopback while this process keeps its GIL busy (a Python
thread spinning, like a control loop decoding a big relist) and ``--hogs`` processes spin on the
CPUs. The lateness of every wake-up against its schedule is what a backup's detector sees as
jitter; a detector declares death after 100 ms, so the worst case is what matters. Prints
median / p99 / max per implementation and writes JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from openelb.speaker.heartbeating import HeartbeatTransport

RESULTS = Path(__file__).resolve().parent / "results"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--hogs", type=int, default=2)
    args = parser.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    results: dict[str, dict[str, float]] = {}
    try:
        for implementation in ("compiled", "python"):
            try:
                samples = _measure(implementation, args.seconds)
            except ImportError:
                print(f"  {implementation}: not built, skipped")
                continue
            ordered = sorted(samples)
            results[implementation] = {
                "samples": len(samples),
                "median_ms": statistics.median(ordered),
                "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
                "max_ms": ordered[-1],
            }
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print(
        f"heartbeat send lateness, 20 ms interval, busy GIL + {args.hogs} CPU hogs, "
        f"{args.seconds:.0f} s each"
    )
    print(f"  {'pacer':<10}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}")
    for name, row in results.items():
        print(f"  {name:<10}{row['median_ms']:>11.3f}{row['p99_ms']:>9.2f}{row['max_ms']:>9.2f}")
    if "compiled" in results and "python" in results:
        ratio = results["python"]["max_ms"] / max(results["compiled"]["max_ms"], 1e-6)
        print(f"  worst case: python / compiled = {ratio:.1f}x")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"heartbeat_jitter-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(
        json.dumps({"machine": platform.node(), "hogs": args.hogs, "results": results}, indent=2)
    )
    print(f"  wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
