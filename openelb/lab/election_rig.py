"""A rig of N Lease electors against one apiserver, each behind its own cuttable TCP proxy.

Shared by the election tests (short runs, safety assertions) and ``benchmarks/leader_election.py``
(the 20-run soak and takeover times). Who leads is recorded from the electors' own hooks — the
moment ``on_started_leading`` runs is the moment a process would start working — and a monitor
thread checks continuously that never two are leading at once.
"""

from __future__ import annotations

import functools
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from openelb.kube.client import KubeApi, connect
from openelb.kube.leases import LeaseElector
from openelb.lab.tcpproxy import TcpProxy


def write_kubeconfig(path: Path, url: str) -> Path:
    """A minimal kubeconfig pointing at ``url`` (token auth with a dummy token)."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "lab", "cluster": {"server": url}}],
                "users": [{"name": "lab", "user": {"token": "openelb-lab"}}],
                "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
                "current-context": "lab",
            }
        )
    )
    return path


@dataclass(frozen=True)
class Timings:
    """Lease settings of every elector in the rig (short ones keep tests fast)."""

    lease_duration: float = 1.0
    renew_deadline: float = 0.6
    retry_period: float = 0.15
    request_timeout: float = 0.5


@dataclass
class LeaderLog:
    """Who leads, as the hooks report it, and every violation seen."""

    leaders: set[str] = field(default_factory=set)
    starts: list[tuple[float, str]] = field(default_factory=list)
    stops: list[tuple[float, str]] = field(default_factory=list)
    double_leader_observations: int = 0
    """Hook or monitor observations of two leaders at the same instant (must stay 0)."""
    dead: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, identity: str) -> None:
        with self.lock:
            if identity in self.dead:
                return
            self.leaders.add(identity)
            self.starts.append((time.monotonic(), identity))
            if len(self.leaders) > 1:
                self.double_leader_observations += 1

    def stopped(self, identity: str) -> None:
        with self.lock:
            if identity in self.leaders:
                self.leaders.discard(identity)
                self.stops.append((time.monotonic(), identity))

    def killed(self, identity: str) -> None:
        """A crashed process works no more, whatever its thread still does."""
        with self.lock:
            self.dead.add(identity)
            if identity in self.leaders:
                self.leaders.discard(identity)
                self.stops.append((time.monotonic(), identity))

    def current(self) -> set[str]:
        with self.lock:
            return set(self.leaders)


class ElectionRig:
    """``n`` electors named ``e0..e{n-1}`` campaigning for one Lease."""

    def __init__(
        self,
        *,
        server_url: str,
        n: int,
        name: str,
        namespace: str,
        timings: Timings | None = None,
        step_down_on_first_failure: bool = True,
    ) -> None:
        self.timings = timings or Timings()
        self.log = LeaderLog()
        self._dir = Path(tempfile.mkdtemp(prefix="openelb-election-"))
        port = int(server_url.rsplit(":", 1)[1])
        self.proxies = [TcpProxy(port) for _ in range(n)]
        self.apis: list[KubeApi] = []
        self.electors: list[LeaseElector] = []
        self.stops = [threading.Event() for _ in range(n)]
        self.threads: list[threading.Thread] = []
        for i, proxy in enumerate(self.proxies):
            identity = f"e{i}"
            config = write_kubeconfig(self._dir / f"kubeconfig-{i}", proxy.url)
            api = connect(str(config), timeout=self.timings.request_timeout)
            self.apis.append(api)
            self.electors.append(
                LeaseElector(
                    api,
                    name=name,
                    namespace=namespace,
                    identity=identity,
                    lease_duration=self.timings.lease_duration,
                    renew_deadline=self.timings.renew_deadline,
                    retry_period=self.timings.retry_period,
                    on_started_leading=functools.partial(self.log.started, identity),
                    on_stopped_leading=functools.partial(self.log.stopped, identity),
                    step_down_on_first_failure=step_down_on_first_failure,
                )
            )
        self._monitor_stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch_for_doubles, daemon=True)

    def start(self) -> ElectionRig:
        self._monitor.start()
        for i, elector in enumerate(self.electors):
            thread = threading.Thread(
                target=elector.run, args=(self.stops[i],), name=f"elector-{i}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        return self

    def _watch_for_doubles(self) -> None:
        was_double = False
        while not self._monitor_stop.wait(0.001):
            double = len(self.log.current()) > 1
            if double and not was_double:
                with self.log.lock:
                    self.log.double_leader_observations += 1
            was_double = double

    def wait_leader(self, timeout: float, *, other_than: str | None = None) -> str | None:
        """The single leader once there is one (not ``other_than``); None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.log.current()
            if len(current) == 1 and other_than not in current:
                return next(iter(current))
            time.sleep(0.002)
        return None

    def wait_no_leader(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.log.current():
                return True
            time.sleep(0.002)
        return False

    def index(self, identity: str) -> int:
        return int(identity[1:])

    def crash(self, identity: str) -> None:
        """The process dies: its work stops now, its Lease is not released."""
        i = self.index(identity)
        self.log.killed(identity)
        self.electors[i].release_on_stop = False
        self.proxies[i].cut("refuse")
        self.stops[i].set()

    def stop_gracefully(self, identity: str) -> None:
        """Shutdown: stop the work, release the Lease; returns when the elector ended."""
        i = self.index(identity)
        self.stops[i].set()
        self.threads[i].join(10)

    def partition(self, identity: str, mode: str = "refuse") -> None:
        self.proxies[self.index(identity)].cut(mode)

    def heal(self, identity: str) -> None:
        self.proxies[self.index(identity)].heal()

    def close(self) -> None:
        for stop in self.stops:
            stop.set()
        for proxy in self.proxies:
            proxy.heal()
        for thread in self.threads:
            thread.join(10)
        self._monitor_stop.set()
        if self._monitor.is_alive():
            self._monitor.join(5)
        for proxy in self.proxies:
            proxy.close()
        for api in self.apis:
            api.close()

    def __enter__(self) -> ElectionRig:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["ElectionRig", "LeaderLog", "Timings", "write_kubeconfig"]
