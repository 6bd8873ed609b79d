"""IPAM speed: 10,000 Services allocated, released and rebuilt in memory; /64 vs /24 pools.

Run: ``.venv/bin/python benchmarks/ipam.py [--services 10000] [--repeats 5]``

CPU time (``time.process_time``) of the allocator alone, medians of ``--repeats`` runs, each on a
fresh allocator with the requests built beforehand. The baseline, measured in the same run, is
OpenELB's way of allocating (scan the pool from its first address until one is free), so the
ratio says what the interval sets buy on this machine today. Prints a table and writes the
shared result shape (``openelb.lab.benchresult``). Targets come from the design: 10,000
allocations < 0.5 s CPU, and a /64 pool as fast as a /24.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from openelb.ipam import (
    ANNOTATION_DEFAULT_POOL,
    Allocation,
    Allocator,
    EipSpec,
    EipState,
    ServiceKey,
    ServicePort,
    ServiceRequest,
    ServiceState,
    eip_status,
    rebuild,
)
from openelb.lab.benchresult import (
    Row,
    Target,
    add_results_argument,
    publish,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ALLOCATE_10K = (Target(0.5, "p50"),)
"""Design: 10,000 allocations in < 0.5 s CPU."""


def _pool(address: str, name: str = "pool") -> EipSpec:
    return EipSpec(
        name=name,
        address=address,
        protocol="layer2",
        interface="eth0",
        annotations={ANNOTATION_DEFAULT_POOL: "true"},
    )


def _requests(count: int, family: str) -> list[ServiceRequest]:
    return [
        ServiceRequest(
            namespace=f"ns{i % 100}",
            name=f"svc{i}",
            uid=f"uid{i}",
            ip_families=(family,),
            ports=(ServicePort(80), ServicePort(443)),
            created=T0 + timedelta(seconds=i),
            namespace_labels={"kubernetes.io/metadata.name": f"ns{i % 100}"},
        )
        for i in range(count)
    ]


def _cpu(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def _allocate_all(allocator: Allocator, requests: list[ServiceRequest]) -> None:
    for request in requests:
        result = allocator.allocate(request)
        if not isinstance(result, Allocation):
            raise SystemExit(f"benchmark setup broken: {result}")


def _release_all(allocator: Allocator, keys: list[ServiceKey]) -> None:
    for key in keys:
        allocator.release(key)


def bench_allocate(address: str, family: str, count: int, repeats: int) -> Row:
    requests = _requests(count, family)
    samples = []
    for _ in range(repeats):
        allocator = Allocator([_pool(address)])
        samples.append(_cpu(partial(_allocate_all, allocator, requests)))
    return Row(f"allocate {count:,} ({address})", "s", samples, ALLOCATE_10K)


def bench_many_pools(count: int, repeats: int) -> Row:
    """100 namespace-bound Eips (one per namespace) plus a default: choice must not scan them."""
    pools = [
        EipSpec(
            name=f"ns{i}",
            address=f"10.{i}.0.0/20",
            protocol="layer2",
            interface="eth0",
            namespaces=(f"ns{i}",),
            priority=i % 7,
        )
        for i in range(100)
    ]
    pools.append(_pool("10.200.0.0/16", "default"))
    requests = _requests(count, "IPv4")
    samples = []
    for _ in range(repeats):
        allocator = Allocator(pools)
        samples.append(_cpu(partial(_allocate_all, allocator, requests)))
    return Row(f"allocate {count:,} over 101 Eips", "s", samples, ALLOCATE_10K)


def bench_release(count: int, repeats: int) -> Row:
    requests = _requests(count, "IPv4")
    samples = []
    for _ in range(repeats):
        allocator = Allocator([_pool("10.0.0.0/16")])
        _allocate_all(allocator, requests)
        samples.append(_cpu(partial(_release_all, allocator, [r.key for r in requests])))
    return Row(f"release {count:,} (10.0.0.0/16)", "s", samples)


def bench_rebuild(count: int, repeats: int) -> Row:
    requests = _requests(count, "IPv4")
    allocator = Allocator([_pool("10.0.0.0/16")])
    _allocate_all(allocator, requests)
    services = [ServiceState(r, tuple(a.ip for a in allocator.addresses(r.key))) for r in requests]
    eips = [EipState(_pool("10.0.0.0/16"), used=eip_status(allocator, "pool").used)]
    samples = [_cpu(partial(rebuild, eips, services)) for _ in range(repeats)]
    return Row(f"rebuild {count:,} Services + Eip used", "s", samples)


def bench_status(count: int, repeats: int) -> Row:
    requests = _requests(count, "IPv6")
    allocator = Allocator([_pool("2001:db8::/64")])
    _allocate_all(allocator, requests)
    samples = [_cpu(partial(eip_status, allocator, "pool")) for _ in range(repeats)]
    return Row(f"eip status of a /64 holding {count:,}", "s", samples)


def bench_per_allocation(address: str, family: str, repeats: int) -> Row:
    """Microseconds per allocation: 250 Services (what a /24 holds), 40 batches per sample."""
    requests = _requests(250, family)
    samples = []
    for _ in range(repeats):
        total = 0.0
        for _ in range(40):
            allocator = Allocator([_pool(address)])
            total += _cpu(partial(_allocate_all, allocator, requests))
        samples.append(total / (40 * 250) * 1e6)
    return Row(f"per allocation, {address}", "us", samples)


def bench_linear_scan_baseline(count: int, repeats: int) -> Row:
    """OpenELB's allocation: walk the pool from its first address to the first unused one."""
    samples = []
    for _ in range(repeats):
        used: dict[int, str] = {}

        def scan(used: dict[int, str] = used) -> None:
            for i in range(count):
                offset = 0
                while offset in used:
                    offset += 1
                used[offset] = f"ns/svc{i}"

        samples.append(_cpu(scan))
    return Row(
        f"baseline: OpenELB's linear scan, {count:,}",
        "s",
        samples,
        extra={"note": "OpenELB's loop, ints only"},
        reference=True,
    )


def _median(row: Row) -> float:
    value = row.stat("p50")
    return value if value else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-services", type=int, default=3_000)
    add_results_argument(parser)
    args = parser.parse_args()
    n, r = args.services, args.repeats

    rows = [
        bench_allocate("10.0.0.0/16", "IPv4", n, r),
        bench_allocate("2001:db8::/64", "IPv6", n, r),
        bench_allocate("2001:db8::/48", "IPv6", n, r),
        bench_many_pools(n, r),
        bench_release(n, r),
        bench_rebuild(n, r),
        bench_status(n, r),
    ]
    per_24 = bench_per_allocation("10.0.0.0/24", "IPv4", r)
    per_64 = bench_per_allocation("2001:db8::/64", "IPv6", r)
    base_n = args.baseline_services
    baseline = bench_linear_scan_baseline(base_n, r)
    ours = bench_allocate("10.0.0.0/16", "IPv4", base_n, r)
    ours.targets = ()  # the same work as the baseline, for the ratio; the 10k rows are judged
    rows += [per_24, per_64, baseline, ours]
    ratios = {
        "ratio /64 : /24 per allocation (want ~1)": _median(per_64) / _median(per_24),
        f"ratio linear scan : ipam at {base_n:,}": _median(baseline) / _median(ours),
    }
    return publish(
        "ipam",
        title=f"ipam: {n:,} Services, {r} repeats, CPU time",
        rows=rows,
        ratios=ratios,
        args={"services": n, "repeats": r, "baseline_services": base_n},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
