"""Manager at scale: Services created through the embedded apiserver until all have addresses.

Run: ``.venv/bin/python benchmarks/manager_scale.py [--services 1000] [--runs 3]``
(``--services 10000`` for the large run).

Each run starts a fresh embedded apiserver (in this process) and one ``openelb manager`` as a
child process (fast Lease settings), creates a /16 default Eip, then creates the Services one
after another with the real client. Measured per run:

- *create only*: the time to create the N Services on a fresh apiserver with no manager (the
  floor, the baseline of the ratio: the manager cannot be done before the last Service exists);
- *create with manager*: the same creates while the manager works (it shares the apiserver);
- *all addressed*: from the first create until every Service shows an ingress IP;
- *after last create*: how long the manager lagged behind the last create;
- manager RSS (VmRSS and peak VmHWM of the child) at the end.

No DESIGN target applies to the manager alone (the suite's control-plane targets are in
``control_plane_scale.py``): these rows are context, with the ratio to the create-only floor.
Prints a table and writes the shared result shape (``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from openelb.kube.client import connect
from openelb.kube.resources import EIPS, SERVICES
from openelb.lab.apiserver import ApiServer
from openelb.lab.benchresult import Row, add_results_argument, publish

MEASURES = {
    "create_only_s": ("baseline: create only, no manager", "s"),
    "create_with_manager_s": ("create while the manager works", "s"),
    "all_addressed_s": ("all addressed (first create -> last ingress)", "s"),
    "after_last_create_s": ("manager lag after the last create", "s"),
    "manager_rss_mib": ("manager RSS", "MiB"),
    "manager_peak_rss_mib": ("manager peak RSS (VmHWM)", "MiB"),
}
"""Keys of :func:`one_run`'s dict -> row name and unit."""


def _service(i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"svc-{i}",
            "namespace": "default",
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"},
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def _rss_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def _addressed(api: Any) -> int:
    items, _ = api.list(SERVICES, namespace="default", page_size=2000)
    return sum(
        1 for item in items if ((item.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    )


def create_only(count: int) -> float:
    """The baseline: the same creates against a fresh apiserver with no manager running."""
    with tempfile.TemporaryDirectory() as tmp:
        server = ApiServer(history_limit=max(50_000, count * 6)).start()
        try:
            api = connect(str(server.write_kubeconfig(Path(tmp) / "kubeconfig")))
            start = time.perf_counter()
            for i in range(count):
                api.create(SERVICES, _service(i))
            elapsed = time.perf_counter() - start
            api.close()
        finally:
            server.stop()
    return elapsed


def one_run(count: int, timeout: float) -> dict[str, float]:
    baseline = create_only(count)
    with tempfile.TemporaryDirectory() as tmp:
        server = ApiServer(history_limit=max(50_000, count * 6)).start()
        try:
            kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")
            api = connect(str(kubeconfig))
            api.create(
                EIPS,
                {
                    "metadata": {
                        "name": "bench",
                        "annotations": {"eip.openelb.kubesphere.io/is-default-eip": "true"},
                    },
                    "spec": {"address": "10.64.0.0/16", "protocol": "layer2", "interface": "eth0"},
                },
            )
            manager = subprocess.Popen(
                [
                    sys.executable, "-m", "openelb.cli", "manager",
                    "--kubeconfig", str(kubeconfig), "--metrics-port", "0",
                    "--lease-namespace", "default", "--identity", "bench",
                    "--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5",
                    "--log-level", "warning",
                ],
            )  # fmt: skip
            try:
                time.sleep(1.5)  # the manager starts, takes the Lease and rebuilds (no Services)
                start = time.perf_counter()
                for i in range(count):
                    api.create(SERVICES, _service(i))
                created = time.perf_counter() - start
                deadline = start + timeout
                # Poll gently: a full list of N Services costs the apiserver (and this process).
                while _addressed(api) < count:
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"not all {count} Services got addresses in {timeout}s")
                    time.sleep(0.1 if count <= 1000 else 0.5)
                done = time.perf_counter() - start
                rss = _rss_kib(manager.pid)
            finally:
                manager.terminate()
                manager.wait(timeout=30)
            api.close()
        finally:
            server.stop()
    return {
        "create_only_s": baseline,
        "create_with_manager_s": created,
        "all_addressed_s": done,
        "after_last_create_s": done - created,
        "manager_rss_mib": rss.get("VmRSS", 0) / 1024,
        "manager_peak_rss_mib": rss.get("VmHWM", 0) / 1024,
    }


def rows_of(runs: list[dict[str, float]]) -> tuple[list[Row], dict[str, float]]:
    """One row per measure, a sample per run; the ratio of addressing time to the floor."""
    rows = [
        Row(name, unit, [run[key] for run in runs if key in run])
        for key, (name, unit) in MEASURES.items()
    ]
    ratios = {}
    floor = [run["create_only_s"] for run in runs if "create_only_s" in run]
    done = [run["all_addressed_s"] for run in runs if "all_addressed_s" in run]
    if floor and done and statistics.median(floor) > 0:
        ratios["all addressed / create only (p50)"] = statistics.median(done) / statistics.median(
            floor
        )
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    add_results_argument(parser)
    args = parser.parse_args()
    runs = [one_run(args.services, args.timeout) for _ in range(args.runs)]
    rows, ratios = rows_of(runs)
    return publish(
        "manager_scale",
        title=f"manager scale: {args.services:,} Services, {args.runs} runs",
        rows=rows,
        ratios=ratios,
        args={"services": args.services, "runs": args.runs},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
