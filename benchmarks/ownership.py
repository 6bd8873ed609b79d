"""Ownership recompute speed: 10,000 VIPs on 10 nodes, one node lost (and back).

Run: ``.venv/bin/python benchmarks/ownership.py [--vips 10000] [--nodes 10] [--repeats 7]``

Times (``time.perf_counter``, medians of ``--repeats`` fresh tables) of the incremental
``OwnershipTable`` reacting to a node loss and to its return, against the baseline measured in the
same run: recomputing every VIP's placement from scratch (``compute_placement``), which is what a
non-incremental speaker does on every membership change. Target (design): < 50 ms for the loss.
Prints a table and writes JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from openelb.speaker.ownership import OwnershipTable, compute_placement

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_LOSS_S = 0.050


def _table(vips: list[str], nodes: list[str]) -> OwnershipTable:
    table = OwnershipTable()
    for n in nodes:
        table.set_node_live(n, True)
    for ip in vips:
        table.set_vip(ip)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vips", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    vips = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(args.vips)]
    nodes = [f"node-{i:02d}" for i in range(args.nodes)]

    loss, back, scratch, build, moved = [], [], [], [], 0
    for r in range(args.repeats):
        t0 = time.perf_counter()
        table = _table(vips, nodes)
        build.append(time.perf_counter() - t0)
        victim = nodes[r % len(nodes)]
        t0 = time.perf_counter()
        changes = table.set_node_live(victim, False)
        loss.append(time.perf_counter() - t0)
        moved = len(changes)
        t0 = time.perf_counter()
        table.set_node_live(victim, True)
        back.append(time.perf_counter() - t0)
        live = [n for n in nodes if n != victim]
        t0 = time.perf_counter()
        for ip in vips:
            compute_placement(ip, live=live)
        scratch.append(time.perf_counter() - t0)

    rows = {
        "node lost (incremental)": statistics.median(loss),
        "node back (incremental)": statistics.median(back),
        "from scratch (baseline)": statistics.median(scratch),
        "initial build": statistics.median(build),
    }
    print(f"ownership: {args.vips} VIPs, {args.nodes} nodes, {args.repeats} repeats (medians)")
    for name, value in rows.items():
        print(f"  {name:<26} {value * 1000:9.2f} ms")
    ratio = rows["from scratch (baseline)"] / rows["node lost (incremental)"]
    verdict = "PASS" if rows["node lost (incremental)"] < TARGET_LOSS_S else "FAIL"
    print(f"  placements moved by the loss: {moved}; speed-up vs scratch {ratio:.1f}x")
    print(f"  target node lost < {TARGET_LOSS_S * 1000:.0f} ms: {verdict}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ownership-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "vips": args.vips,
                "nodes": args.nodes,
                "repeats": args.repeats,
                "machine": platform.node(),
                "median_seconds": rows,
                "samples": {"loss": loss, "back": back, "scratch": scratch},
                "moved": moved,
                "speedup_vs_scratch": ratio,
                "verdict": verdict,
            },
            indent=2,
        )
    )
    print(f"  wrote {out}")


if __name__ == "__main__":
    main()
