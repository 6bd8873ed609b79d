"""A Layer 2 cluster in namespaces: embedded apiserver, N speaker processes, a client.

Used by the speaker's end-to-end tests and by ``benchmarks/failover_l2.py``, so both exercise
the same thing: real ``openelb speaker`` processes in node namespaces, the real data plane, the
embedded apiserver reached over the testbed's switch (like a real control plane, so cutting a
node's cable also cuts it from the apiserver), and a client that asks who answers for a VIP
with a real ``arping``.

The test process lives in the root namespace, which cannot reach the switch; every API call is
made from one worker thread parked in the apiserver's namespace.
"""

from __future__ import annotations

import concurrent.futures
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from openelb.kube.client import KubeApi, connect
from openelb.kube.errors import KubeError
from openelb.kube.resources import EIPS, NAMESPACES, NODES, SERVICES
from openelb.lab.netns import Host, Process, Testbed, in_netns

T = TypeVar("T")
LEASE_NAMESPACE = "openelb-system"
_MAC = re.compile(r"\[([0-9A-Fa-f:]{17})\]")


class L2Cluster:
    """The apiserver host, node hosts running speakers, and a client, on one testbed."""

    def __init__(
        self,
        testbed: Testbed,
        *,
        nodes: int = 3,
        dataplane: str = "xdp-generic",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.testbed = testbed
        self.dataplane = dataplane
        self.extra_args = extra_args
        self.api_host = testbed.add_host("api")
        self.client = testbed.add_host("client")
        self.nodes: dict[str, Host] = {
            f"n{i}": testbed.add_host(f"n{i}") for i in range(1, nodes + 1)
        }
        self.speakers: dict[str, Process] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, initializer=self._enter_api_netns
        )
        from openelb.lab.apiserver.server import ApiServer

        self.server = ApiServer(host=str(self.api_host.ipv4.ip))
        self._call(self.server.start)
        self.kubeconfig: Path = self.server.write_kubeconfig(testbed.dir / "kubeconfig")
        self.api: KubeApi = self._call(lambda: connect(str(self.kubeconfig)))
        self._seed()

    def _enter_api_netns(self) -> None:
        # The worker thread stays there for good; keep the context alive (a collected generator
        # context would switch the thread back).
        self._netns_ctx = in_netns(self.api_host.netns)
        self._netns_ctx.__enter__()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (an API call) from the worker thread that can reach the apiserver."""
        return self._pool.submit(fn).result(timeout=60)

    _call = call

    def close(self) -> None:
        for name in list(self.speakers):
            self.kill(name)
        try:
            self._call(self.api.close)
            self._call(self.server.stop)
        finally:
            self._pool.shutdown(wait=True)

    # --- objects ---------------------------------------------------------------------------------

    def _seed(self) -> None:
        self.create(NAMESPACES, {"metadata": {"name": LEASE_NAMESPACE}})
        self.create(NAMESPACES, {"metadata": {"name": "default"}}, ok_if_exists=True)
        for name, host in self.nodes.items():
            self.create(
                NODES,
                {
                    "metadata": {"name": name},
                    "spec": {},
                    "status": {
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "addresses": [{"type": "InternalIP", "address": str(host.ipv4.ip)}],
                    },
                },
            )

    def create(self, res: Any, body: dict[str, Any], *, ok_if_exists: bool = False) -> None:
        try:
            self._call(lambda: self.api.create(res, body))
        except KubeError:
            if not ok_if_exists:
                raise

    def add_pool(self, name: str, address: str, *, interface: str = "eth0") -> None:
        self.create(
            EIPS,
            {
                "apiVersion": "network.kubesphere.io/v1alpha2",
                "kind": "Eip",
                "metadata": {"name": name},
                "spec": {"address": address, "protocol": "layer2", "interface": interface},
            },
        )

    def add_service(self, name: str, ips: list[str], *, local: bool = False) -> None:
        """A LoadBalancer Service opted in to openelb with ``ips`` already in its status (the
        manager's job, done here directly)."""
        self.create(
            SERVICES,
            {
                "metadata": {
                    "name": name,
                    "namespace": "default",
                    "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"},
                },
                "spec": {
                    "type": "LoadBalancer",
                    "ports": [{"port": 80, "protocol": "TCP"}],
                    "externalTrafficPolicy": "Local" if local else "Cluster",
                },
            },
        )
        status = {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}
        self._call(
            lambda: self.api.patch(
                SERVICES, name, status, namespace="default", subresource="status"
            )
        )

    # --- speakers --------------------------------------------------------------------------------

    def start_speaker(self, name: str) -> Process:
        host = self.nodes[name]
        cmd = [
            sys.executable,
            "-m",
            "openelb.cli",
            "speaker",
            "--kubeconfig",
            str(self.kubeconfig),
            "--node",
            name,
            "--heartbeat-address",
            str(host.ipv4.ip),
            "--dataplane",
            self.dataplane,
            "--instance",
            f"{self.testbed.run_id}-{name}",
            "--lease-namespace",
            LEASE_NAMESPACE,
            *self.extra_args,
        ]
        proc = host.spawn(cmd, name=f"speaker-{name}")
        self.speakers[name] = proc
        return proc

    def wait_serving(self, name: str, timeout: float = 30.0) -> None:
        """Until the speaker printed that it serves (its watches synced)."""
        self.speakers[name].wait_for_output("serving", timeout=timeout)

    def wait_converged(self, timeout: float = 30.0) -> None:
        """Until every running speaker counts every running speaker as a member (it logs its
        member set on each change): a Lease created just before can lag a watch round trip."""
        deadline = time.monotonic() + timeout
        views: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            running = {n for n, p in self.speakers.items() if p.alive()}
            views = {n: _last_members(self.speakers[n].log()) for n in running}
            if all(view >= running for view in views.values()):
                return
            time.sleep(0.05)
        raise TimeoutError(f"speakers did not converge in {timeout}s: {views}")

    def cut_from_apiserver(self, name: str) -> None:
        """Node ``name`` loses the apiserver, not the LAN (its heartbeats and answers go on).
        Both ends drop the other's packets: a one-sided cut would still deliver watch events."""
        node = self.nodes[name]
        node.run(["ip", "route", "add", "blackhole", f"{self.api_host.ipv4.ip}/32"])
        self.api_host.run(["ip", "route", "add", "blackhole", f"{node.ipv4.ip}/32"])

    def reconnect_to_apiserver(self, name: str) -> None:
        node = self.nodes[name]
        node.run(["ip", "route", "del", "blackhole", f"{self.api_host.ipv4.ip}/32"], check=False)
        self.api_host.run(["ip", "route", "del", "blackhole", f"{node.ipv4.ip}/32"], check=False)

    def kill(self, name: str) -> None:
        proc = self.speakers.pop(name, None)
        if proc is not None and proc.alive():
            proc.kill()

    def sigkill(self, name: str) -> None:
        self.speakers[name].signal(signal.SIGKILL)

    def stop_gracefully(self, name: str, timeout: float = 10.0) -> None:
        proc = self.speakers[name]
        proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.alive() and time.monotonic() < deadline:
            time.sleep(0.02)

    # --- observation -----------------------------------------------------------------------------

    def mac_of(self, name: str) -> str:
        return self.nodes[name].mac.lower()

    def node_of_mac(self, mac: str) -> str | None:
        for name, host in self.nodes.items():
            if host.mac.lower() == mac.lower():
                return name
        return None

    def answering(self, vip: str, *, count: int = 2) -> set[str]:
        """Nodes whose MAC answered ``count`` ARP requests (or NS) from the client."""
        if ":" in vip:
            done = self.client.run(
                ["ndisc6", "-n", "-r", str(count), "-w", "300", vip, "eth0"], check=False
            )
        else:
            done = self.client.run(
                ["arping", "-c", str(count), "-w", str(max(1, count)), "-I", "eth0", vip],
                check=False,
            )
        macs = set(_MAC.findall(done.stdout))
        if ":" in vip:
            macs |= set(re.findall(r"([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})", done.stdout))
        return {self.node_of_mac(m) or m.lower() for m in macs}

    def wait_answering(self, vip: str, expected: set[str], timeout: float = 15.0) -> set[str]:
        """Poll until exactly ``expected`` answers (returns the last answer seen)."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            seen = self.answering(vip, count=1)
            if seen == expected:
                return seen
            time.sleep(0.05)
        return seen

    def wait_stable(
        self, vip: str, expected: set[str], *, checks: int = 5, timeout: float = 20.0
    ) -> set[str]:
        """Poll until ``expected`` answered ``checks`` times in a row (after a healed partition
        both sides may answer for a moment; this waits for the settled state)."""
        deadline = time.monotonic() + timeout
        streak, seen = 0, set[str]()
        while time.monotonic() < deadline and streak < checks:
            seen = self.answering(vip, count=1)
            streak = streak + 1 if seen == expected else 0
            time.sleep(0.05)
        return seen


_MEMBERS = re.compile(r"speaker members: ([^\n]*)")


def _last_members(log: str) -> set[str]:
    found = _MEMBERS.findall(log)
    return set(found[-1].split()) if found else set()
