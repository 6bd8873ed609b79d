"""Decoding cost of Kubernetes objects: raw JSON + openelb's views vs the client's models.

Run: ``.venv/bin/python benchmarks/kube_decode.py [--services 2000] [--repeats 5]``

Why: every object a watch cache lists or receives is decoded. The ``kubernetes`` client 37.x
turns responses into pydantic models; ``openelb.kube`` reads them with ``json.loads`` and builds
small frozen views of the fields the logic needs. This measures both on the same bytes: a
ServiceList of realistic Services (decode of one list response) and the same Services as watch
events (one line each), plus an end-to-end list over HTTP from the embedded apiserver when it is
available. CPU time medians of ``--repeats`` runs; the baseline (the client's models) is measured
in the same run (rows marked ``reference``), so the ratio is what raw JSON buys on this machine
today. No DESIGN target applies. Prints a table and writes the shared result shape
(``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client

from openelb.kube.views import Service
from openelb.lab.benchresult import Row, add_results_argument, publish


def _service(i: int) -> dict[str, Any]:
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": f"svc-{i}",
            "namespace": f"team-{i % 20}",
            "uid": f"00000000-0000-4000-8000-{i:012d}",
            "resourceVersion": str(1000 + i),
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": f"app-{i}", "tier": "web", "team": f"team-{i % 20}"},
            "annotations": {
                "lb.kubesphere.io/v1alpha1": "openelb",
                "eip.openelb.kubesphere.io/v1alpha2": "pool-a",
                "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 400 + "}",
            },
            "finalizers": ["openelb.io/lb"],
            "managedFields": [
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2026-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:ports": {}, "f:type": {}}},
                }
            ],
        },
        "spec": {
            "type": "LoadBalancer",
            "ports": [
                {
                    "name": "http",
                    "protocol": "TCP",
                    "port": 80,
                    "targetPort": 8080,
                    "nodePort": 30080,
                },
                {
                    "name": "https",
                    "protocol": "TCP",
                    "port": 443,
                    "targetPort": 8443,
                    "nodePort": 30443,
                },
            ],
            "selector": {"app": f"app-{i}"},
            "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
            "clusterIPs": [f"10.96.{i // 250}.{i % 250 + 1}"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "externalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": True,
        },
        "status": {
            "loadBalancer": {"ingress": [{"ip": f"192.0.2.{i % 250 + 1}", "ipMode": "VIP"}]}
        },
    }


def _cpu(work: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        work()
        samples.append(time.process_time() - start)
    return samples


def bench_decode(count: int, repeats: int) -> dict[str, list[float]]:
    services = [_service(i) for i in range(count)]
    body = json.dumps(
        {
            "kind": "ServiceList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "9"},
            "items": services,
        }
    )
    lines = [json.dumps({"type": "MODIFIED", "object": s}).encode() for s in services]
    api_client = k8s_client.ApiClient()

    def raw_list() -> None:
        items = json.loads(body)["items"]
        for item in items:
            Service.from_raw(item)

    def model_list() -> None:
        api_client.deserialize(body, "V1ServiceList", "application/json")

    def raw_events() -> None:
        for line in lines:
            Service.from_raw(json.loads(line)["object"])

    def model_events() -> None:
        for line in lines:
            event = json.loads(line)
            api_client.deserialize(json.dumps(event["object"]), "V1Service", "application/json")

    model_list()  # warm caches (model classes, regexes) before timing either side
    raw_list()
    return {
        "list: json + views": _cpu(raw_list, repeats),
        "list: client models (baseline)": _cpu(model_list, repeats),
        "events: json + views": _cpu(raw_events, repeats),
        "events: client models (baseline)": _cpu(model_events, repeats),
    }


def bench_http(count: int, repeats: int) -> dict[str, list[float]]:
    """List over HTTP from the embedded apiserver: KubeApi.list vs CoreV1Api (wall time)."""
    try:
        from openelb.lab.apiserver import ApiServer
    except ImportError:
        return {}
    from openelb.kube.client import connect
    from openelb.kube.resources import NAMESPACES, SERVICES

    with ApiServer() as server, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")
        api = connect(str(kubeconfig), timeout=30)
        for ns in range(20):
            api.create(NAMESPACES, {"metadata": {"name": f"team-{ns}"}})
        for i in range(count):
            svc = _service(i)
            svc["metadata"] = {
                k: v
                for k, v in svc["metadata"].items()
                if k in ("name", "namespace", "labels", "annotations")
            }
            svc.pop("status")
            api.create(SERVICES, svc)
        core = k8s_client.CoreV1Api(api.api_client)

        def ours() -> None:
            items, _ = api.list(SERVICES)
            for item in items:
                Service.from_raw(item)

        def theirs() -> None:
            core.list_service_for_all_namespaces(_request_timeout=30)

        def wall(work: Callable[[], object]) -> list[float]:
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                work()
                samples.append(time.perf_counter() - start)
            return samples

        theirs()
        return {
            "http list: KubeApi + views": wall(ours),
            "http list: CoreV1Api models (baseline)": wall(theirs),
        }


def rows_of(results: dict[str, list[float]]) -> tuple[list[Row], dict[str, float]]:
    """A row per measurement (the client's models are the reference); ratios models / raw."""
    rows = [
        Row(name, "s", samples, reference="baseline" in name) for name, samples in results.items()
    ]
    medians = {name: statistics.median(s) for name, s in results.items() if s}
    pairs = {
        "list: models / raw (CPU)": ("list: client models (baseline)", "list: json + views"),
        "events: models / raw (CPU)": ("events: client models (baseline)", "events: json + views"),
        "http list: models / raw (wall)": (
            "http list: CoreV1Api models (baseline)",
            "http list: KubeApi + views",
        ),
    }
    ratios = {
        what: medians[theirs] / medians[ours]
        for what, (theirs, ours) in pairs.items()
        if theirs in medians and medians.get(ours)
    }
    return rows, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    add_results_argument(parser)
    args = parser.parse_args()
    results = bench_decode(args.services, args.repeats)
    results.update(bench_http(args.services, args.repeats))
    rows, ratios = rows_of(results)
    return publish(
        "kube_decode",
        title=f"kube_decode: {args.services:,} Services, {args.repeats} repeats",
        rows=rows,
        ratios=ratios,
        args={"services": args.services, "repeats": args.repeats},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
