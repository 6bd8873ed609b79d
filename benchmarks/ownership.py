"""Ownership recompute speed: 10,000 VIPs on 10 nodes, one node lost (and back).

Run: ``.venv/bin/python benchmarks/ownership.py [--vips 10000] [--nodes 10] [--repeats 7]``

Times (``time.perf_counter``, medians of ``--repeats`` fresh tables) of the incremental
``OwnershipTable`` reacting to a node loss and to its return, against the baseline measured in the
same run: recomputing every VIP's placement from scratch (``compute_placement``), which is what a
non-incremental speaker does on every membership change. Target (design): < 50 ms for the loss.
Prints a table and writes the shared result shape (``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from openelb.lab.benchresult import (
    Row,
    Target,
    add_results_argument,
    publish,
    say,
)
from openelb.speaker.ownership import OwnershipTable, compute_placement

TARGET_LOSS_MS = 50.0


def _table(vips: list[str], nodes: list[str]) -> OwnershipTable:
    table = OwnershipTable()
    for n in nodes:
        table.set_node_live(n, True)
    for ip in vips:
        table.set_vip(ip)
    return table


def rows_of(
    *, loss: list[float], back: list[float], scratch: list[float], build: list[float]
) -> tuple[list[Row], dict[str, float]]:
    """Rows in ms from the per-repeat timings in seconds; the ratio is scratch / incremental."""

    def ms(values: list[float]) -> list[float]:
        return [v * 1000 for v in values]

    rows = [
        Row("node lost (incremental)", "ms", ms(loss), (Target(TARGET_LOSS_MS, "p50"),)),
        Row("node back (incremental)", "ms", ms(back)),
        Row("baseline: every placement from scratch", "ms", ms(scratch)),
        Row("initial build of the table", "ms", ms(build)),
    ]
    ratios = {}
    if loss and scratch and statistics.median(loss) > 0:
        ratios["from scratch / incremental node loss (p50)"] = statistics.median(
            scratch
        ) / statistics.median(loss)
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vips", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    add_results_argument(parser)
    args = parser.parse_args()
    vips = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(args.vips)]
    nodes = [f"node-{i:02d}" for i in range(args.nodes)]

    loss: list[float] = []
    back: list[float] = []
    scratch: list[float] = []
    build: list[float] = []
    moved = 0
    for r in range(args.repeats):
        t0 = time.perf_counter()
        table_ = _table(vips, nodes)
        build.append(time.perf_counter() - t0)
        victim = nodes[r % len(nodes)]
        t0 = time.perf_counter()
        changes = table_.set_node_live(victim, False)
        loss.append(time.perf_counter() - t0)
        moved = len(changes)
        t0 = time.perf_counter()
        table_.set_node_live(victim, True)
        back.append(time.perf_counter() - t0)
        live = [n for n in nodes if n != victim]
        t0 = time.perf_counter()
        for ip in vips:
            compute_placement(ip, live=live)
        scratch.append(time.perf_counter() - t0)

    rows, ratios = rows_of(loss=loss, back=back, scratch=scratch, build=build)
    rows[0].extra["placements_moved"] = moved
    say(f"  placements moved by the loss: {moved}")
    for name, value in ratios.items():
        say(f"  {name}: {value:.1f}x")
    return publish(
        "ownership",
        title=f"ownership: {args.vips:,} VIPs, {args.nodes} nodes, {args.repeats} repeats",
        rows=rows,
        ratios=ratios,
        args={"vips": args.vips, "nodes": args.nodes, "repeats": args.repeats},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
