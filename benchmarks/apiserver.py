"""Embedded apiserver at scale: 10,000 Services created with one watcher attached (and ten).

Run: ``.venv/bin/python benchmarks/apiserver.py [--services 10000] [--repeats 3] [--fanout 10]``

Each run starts a fresh ``openelb lab apiserver`` process (so its RSS is its own), attaches one
watch on all Services, and creates the Services over one persistent HTTP connection. Measured:
wall time of the creates, creates/s, the watcher's events/s and how long after the last create
the watcher saw the last event (and the same with ``--fanout`` watchers), a full list, a paged
list (limit 500), a watch replaying all the events from the start, and the server's RSS
(current and peak). The creator and the watchers share this process (and its GIL), so the
numbers are a floor for the server. Baseline in the same run: the same creates without a
watcher (the ratio is what one watcher costs), and the official ``kubernetes`` client's typed
``create_namespaced_service`` for a tenth of the Services (what the client itself adds per
request). No DESIGN target applies: the rows are context for the control-plane benchmarks.
Prints a table and writes the shared result shape (``openelb.lab.benchresult``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from openelb.lab.benchresult import Row, add_results_argument, publish


def _median(row: Row) -> float:
    return statistics.median(row.samples) if row.samples else float("nan")


class ServerProcess:
    """``openelb lab apiserver`` in its own process, on a free port."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="oelb-bench-apiserver-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openelb.cli", "lab", "apiserver", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving http://" not in line:
            self.close()
            raise RuntimeError(f"apiserver did not start: {line!r}")
        url = line.split("serving ", 1)[1].split(" ", 1)[0]
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.url = url

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident set size in MiB, from /proc."""
        fields: dict[str, float] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return fields["VmRSS"], fields["VmHWM"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._dir.cleanup()


def _service(i: int) -> bytes:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"svc-{i:05d}",
            "labels": {"app": f"app-{i % 50}"},
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"},
        },
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            "selector": {"app": f"app-{i % 50}"},
        },
    }
    return json.dumps(body).encode()


class Watcher(threading.Thread):
    """Counts ADDED events on a raw watch stream until it has seen ``want`` of them."""

    def __init__(self, server: ServerProcess, *, want: int, resource_version: str = "") -> None:
        super().__init__(daemon=True)
        self.want = want
        self.seen = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.ready = threading.Event()
        self.done = threading.Event()
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
        query = "watch=true&timeoutSeconds=600"
        if resource_version:
            query += f"&resourceVersion={resource_version}"
        self.path = f"/api/v1/services?{query}"

    def run(self) -> None:
        self.conn.request("GET", self.path)
        response = self.conn.getresponse()
        self.ready.set()
        while self.seen < self.want:
            line = response.readline()
            if not line:
                break
            if line.startswith(b'{"type":"ADDED"'):
                self.seen += 1
                now = time.perf_counter()
                if self.seen == 1:
                    self.first_at = now
                self.last_at = now
        self.done.set()
        self.conn.close()


def _create_all(server: ServerProcess, count: int) -> tuple[float, float]:
    """Create ``count`` Services over one keep-alive connection; returns (start, end)."""
    bodies = [_service(i) for i in range(count)]
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    start = time.perf_counter()
    for body in bodies:
        conn.request("POST", "/api/v1/namespaces/default/services", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"create failed: HTTP {response.status}")
    end = time.perf_counter()
    conn.close()
    return start, end


def _timed_get(server: ServerProcess, path: str) -> tuple[float, Any]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
    start = time.perf_counter()
    conn.request("GET", path)
    body = conn.getresponse().read()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, json.loads(body)


def _paged_list(server: ServerProcess, limit: int) -> tuple[float, int]:
    start = time.perf_counter()
    token, items = "", 0
    while True:
        path = f"/api/v1/services?limit={limit}" + (f"&continue={token}" if token else "")
        _, page = _timed_get(server, path)
        items += len(page["items"])
        token = page["metadata"].get("continue", "")
        if not token:
            return time.perf_counter() - start, items


def run_fanout(count: int, watchers: int) -> dict[str, float]:
    """Create ``count`` Services with ``watchers`` watches open (speakers watching Services)."""
    server = ServerProcess()
    try:
        _, initial = _timed_get(server, "/api/v1/services")
        start_rv = initial["metadata"]["resourceVersion"]
        started = [Watcher(server, want=count, resource_version=start_rv) for _ in range(watchers)]
        for watcher in started:
            watcher.start()
            watcher.ready.wait(10)
        start, end = _create_all(server, count)
        for watcher in started:
            watcher.done.wait(120)
            if watcher.seen != count:
                raise RuntimeError(f"a watcher saw {watcher.seen} of {count} events")
        last = max(w.last_at for w in started)
        return {
            "fanout_create_s": end - start,
            "fanout_events_per_s": watchers * count / (last - start),
            "fanout_lag_ms": max(0.0, last - end) * 1000,
        }
    finally:
        server.close()


def run_once(count: int, *, with_watcher: bool) -> dict[str, float]:
    server = ServerProcess()
    try:
        _, initial = _timed_get(server, "/api/v1/services")
        start_rv = initial["metadata"]["resourceVersion"]
        watcher = None
        if with_watcher:
            watcher = Watcher(server, want=count, resource_version=start_rv)
            watcher.start()
            watcher.ready.wait(10)
        start, end = _create_all(server, count)
        out = {"create_s": end - start, "creates_per_s": count / (end - start)}
        if watcher is not None:
            watcher.done.wait(120)
            if watcher.seen != count:
                raise RuntimeError(f"watcher saw {watcher.seen} of {count} events")
            out["watch_events_per_s"] = count / (watcher.last_at - start)
            out["watch_lag_ms"] = max(0.0, watcher.last_at - end) * 1000
            list_s, listed = _timed_get(server, "/api/v1/services")
            assert len(listed["items"]) == count
            out["list_s"] = list_s
            out["paged_list_s"], paged = _paged_list(server, 500)
            assert paged == count
            replay = Watcher(server, want=count, resource_version=start_rv)
            replay_start = time.perf_counter()
            replay.start()
            replay.done.wait(120)
            out["replay_s"] = replay.last_at - replay_start
            out["rss_mb"], out["peak_rss_mb"] = server.rss_mb()
        return out
    finally:
        server.close()


def typed_client_rate(count: int) -> float:
    """Creates/s through the official client's typed API (models, validation, urllib3)."""
    from kubernetes import client

    from openelb.lab.apiserver import lab_api_client

    server = ServerProcess()
    try:
        api = lab_api_client(server.url)
        v1 = client.CoreV1Api(api)
        bodies = [
            client.V1Service(
                metadata=client.V1ObjectMeta(name=f"typed-{i:05d}"),
                spec=client.V1ServiceSpec(
                    type="LoadBalancer", ports=[client.V1ServicePort(port=80)]
                ),
            )
            for i in range(count)
        ]
        start = time.perf_counter()
        for body in bodies:
            v1.create_namespaced_service("default", body)
        elapsed = time.perf_counter() - start
        api.close()
        return count / elapsed
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fanout", type=int, default=10, help="Watchers in the fan-out run.")
    add_results_argument(parser)
    args = parser.parse_args()
    n, repeats, fanout = args.services, args.repeats, args.fanout

    rows = {
        "create_s": Row(f"create {n:,} Services, 1 watcher", "s"),
        "creates_per_s": Row("creates/s, 1 watcher", "/s"),
        "watch_events_per_s": Row("watcher events/s (first create -> last event)", "/s"),
        "watch_lag_ms": Row("watcher lag after the last create", "ms"),
        "list_s": Row(f"list {n:,} Services", "s"),
        "paged_list_s": Row(f"paged list {n:,} (limit 500)", "s"),
        "replay_s": Row(f"watch replay of {n:,} events from the start RV", "s"),
        "rss_mb": Row(f"server RSS with {n:,} Services", "MiB"),
        "peak_rss_mb": Row("server peak RSS", "MiB"),
        "fanout_create_s": Row(f"create {n:,} Services, {fanout} watchers", "s"),
        "fanout_events_per_s": Row(f"events/s delivered to {fanout} watchers", "/s"),
        "fanout_lag_ms": Row(f"slowest of {fanout} watchers: lag after the last create", "ms"),
    }
    baseline = Row(f"create {n:,} Services, no watcher (baseline)", "s")
    baseline_rate = Row("creates/s, no watcher (baseline)", "/s")
    typed = Row(
        f"official client, typed creates/s ({max(1, n // 10):,} Services)", "/s", reference=True
    )
    for repeat in range(repeats):
        # Alternate which run goes first, so warm-up and machine drift do not favour one side.
        order = ("watcher", "plain") if repeat % 2 == 0 else ("plain", "watcher")
        for which in order:
            if which == "watcher":
                for key, value in run_once(n, with_watcher=True).items():
                    rows[key].samples.append(value)
            else:
                plain = run_once(n, with_watcher=False)
                baseline.samples.append(plain["create_s"])
                baseline_rate.samples.append(plain["creates_per_s"])
        for key, value in run_fanout(n, fanout).items():
            rows[key].samples.append(value)
        typed.samples.append(typed_client_rate(max(1, n // 10)))
    measured = [*rows.values(), baseline, baseline_rate, typed]
    ratios = {
        "create time with watcher : without": _median(rows["create_s"]) / _median(baseline),
        f"create time with {fanout} watchers : without": _median(rows["fanout_create_s"])
        / _median(baseline),
        "raw HTTP creates/s : typed client creates/s": _median(baseline_rate) / _median(typed),
    }
    return publish(
        "apiserver",
        title=f"apiserver: {n:,} Services, {repeats} repeats",
        rows=measured,
        ratios=ratios,
        args={"services": n, "repeats": repeats, "fanout": fanout},
        results_dir=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
