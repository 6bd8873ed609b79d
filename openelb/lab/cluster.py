"""A whole small cluster on one machine: the rig `openelb lab`, the end-to-end tests and the
failover benchmarks share.

What a real cluster would provide, the lab plays itself, and nothing more:
- the control plane: the embedded apiserver, in this process on loopback, reachable from every
  node namespace at ``127.0.0.1:6443`` through a :class:`~openelb.lab.forward.PortForward` (a
  management path separate from the data LAN, so cutting a node's LAN cable is a LAN failure,
  not also an apiserver partition);
- the kubelets: a Node object per node namespace, Ready, with its LAN addresses;
- the pods and kube-proxy: a UDP echo server in every node namespace (it names the node in its
  replies, so the client sees *which* node answered), an EndpointSlice with an endpoint on every
  node, and each Service IP put on the nodes' loopback with ``arp_ignore=1`` on the LAN NIC —
  the way kube-proxy's IPVS mode does it — so a node accepts traffic for the VIP while only
  openelb answers ARP/NDP for it.
The manager and speakers are the real programs, started as processes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openelb.kube.client import KubeApi, connect
from openelb.kube.errors import AlreadyExists
from openelb.kube.resources import EIPS, ENDPOINTSLICES, NAMESPACES, NODES, SERVICES
from openelb.lab.apiserver import ApiServer
from openelb.lab.forward import PortForward
from openelb.lab.netns import Host, Process, Testbed, TestbedError, in_netns
from openelb.lab.traffic import DEFAULT_PORT

NODE_APISERVER_PORT = 6443
"""Where every node namespace finds the apiserver (through its forward)."""

OPT_IN = {"lb.kubesphere.io/v1alpha1": "openelb"}
"""The annotation OpenELB users already put on their Services."""

FAMILIES = ("ipv4", "ipv6", "dual")


class LabError(RuntimeError):
    """The lab could not be built or did not reach the state it waited for."""


class LabCluster:
    """Testbed + apiserver + nodes; the caller starts manager and speakers on it."""

    def __init__(
        self,
        *,
        nodes: int = 3,
        family: str = "ipv4",
        testbed: Testbed | None = None,
        apiserver: ApiServer | None = None,
        workdir: Path | None = None,
    ) -> None:
        if not 1 <= nodes <= 20:
            raise LabError(f"nodes must be between 1 and 20, not {nodes}")
        if family not in FAMILIES:
            raise LabError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
        self.node_count = nodes
        self.family = family
        self._own_testbed = testbed is None
        self.testbed = testbed or Testbed()
        self._own_apiserver = apiserver is None
        self.apiserver = apiserver or ApiServer(port=0)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="openelb-lab-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.client: Host | None = None
        self.nodes: list[Host] = []
        self.forwards: dict[str, PortForward] = {}
        self.exposed: set[str] = set()
        self.kubeconfig = workdir / "kubeconfig"
        """For programs in this (the root) namespace: the apiserver's loopback URL."""
        self.node_kubeconfig = workdir / "kubeconfig-node"
        """For programs inside node namespaces: ``127.0.0.1:6443`` through the forward."""
        self._api: KubeApi | None = None

    # --- building --------------------------------------------------------------------------------

    def start(self) -> LabCluster:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        if not self.apiserver.running:
            self.apiserver.start()
        self.apiserver.write_kubeconfig(self.kubeconfig)
        self._write_node_kubeconfig()
        self.client = self.testbed.add_host("client")
        for index in range(1, self.node_count + 1):
            node = self.testbed.add_host(f"node{index}")
            self._prepare_node(node)
            self.nodes.append(node)
        api = self.api
        for name in ("default", "openelb-system"):
            with contextlib.suppress(AlreadyExists):
                api.create(NAMESPACES, {"metadata": {"name": name}})
        for node in self.nodes:
            self._register_node(node)

    def _write_node_kubeconfig(self) -> None:
        path = self.node_kubeconfig
        text = self.kubeconfig.read_text().replace(
            self.apiserver.url, f"http://127.0.0.1:{NODE_APISERVER_PORT}"
        )
        path.write_text(text)

    def _prepare_node(self, node: Host) -> None:
        # Service IPs go on lo (kube-proxy IPVS style); the kernel must not answer ARP for them
        # on the LAN NIC: arp_ignore=1 answers only for addresses on the receiving interface,
        # arp_announce=2 never uses them as ARP sender. (IPv6 NS are only answered for addresses
        # on the receiving interface anyway.)
        for key, value in (
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
            (f"net.ipv4.conf.{node.ifname}.arp_ignore", "1"),
            (f"net.ipv4.conf.{node.ifname}.arp_announce", "2"),
        ):
            node.run(["sysctl", "-qw", f"{key}={value}"])
        forward = PortForward(
            netns=node.netns,
            target=("127.0.0.1", self.apiserver.port),
            listen_port=NODE_APISERVER_PORT,
        )
        self.forwards[node.name] = forward.start()

    def _register_node(self, node: Host) -> None:
        addresses = [
            {"type": "InternalIP", "address": str(node.ipv4.ip)},
            {"type": "InternalIP", "address": str(node.ipv6.ip)},
            {"type": "Hostname", "address": node.name},
        ]
        body = {
            "metadata": {
                "name": node.name,
                "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"},
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": addresses,
            },
        }
        created = self.api.create(NODES, body)
        created["status"] = body["status"]
        self.api.replace(NODES, created, subresource="status")

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            self._api = connect(str(self.kubeconfig))
        return self._api

    def node(self, name: str) -> Host:
        for node in self.nodes:
            if node.name == name:
                return node
        raise LabError(f"no node {name!r} in the lab (have {[n.name for n in self.nodes]})")

    def node_by_mac(self, mac: str) -> Host | None:
        return next((n for n in self.nodes if n.mac.lower() == mac.lower()), None)

    # --- objects ---------------------------------------------------------------------------------

    def pool(self, count: int = 16) -> dict[str, str]:
        """Free LAN addresses for an Eip, per family (above the testbed's hosts)."""
        net4, net6 = self.testbed.subnet4, self.testbed.subnet6
        return {
            "ipv4": f"{net4[200]}-{net4[200 + count - 1]}",
            "ipv6": f"{net6[0x200]}-{net6[0x200 + count - 1]}",
        }

    def create_eip(
        self,
        name: str,
        address: str,
        *,
        protocol: str = "layer2",
        interface: str = "eth0",
        default: bool = False,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if default:
            meta["annotations"] = {"eip.openelb.kubesphere.io/is-default-eip": "true"}
        body = {
            "apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "Eip",
            "metadata": meta,
            "spec": {
                "address": address,
                "protocol": protocol,
                "interface": interface,
                **(spec or {}),
            },
        }
        return self.api.create(EIPS, body)

    def create_service(
        self,
        name: str,
        *,
        namespace: str = "default",
        port: int = DEFAULT_PORT,
        protocol: str = "UDP",
        annotations: dict[str, str] | None = None,
        ip_family_policy: str | None = None,
        traffic_policy: str = "Cluster",
        endpoint_nodes: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A LoadBalancer Service opted in to openelb, with an endpoint on the given nodes."""
        spec: dict[str, Any] = {
            "type": "LoadBalancer",
            "ports": [{"name": "echo", "port": port, "protocol": protocol}],
            "selector": {"app": name},
            "externalTrafficPolicy": traffic_policy,
        }
        if ip_family_policy:
            spec["ipFamilyPolicy"] = ip_family_policy
            if ip_family_policy != "SingleStack":
                spec["ipFamilies"] = ["IPv4", "IPv6"]
        elif self.family == "ipv6":
            spec["ipFamilies"] = ["IPv6"]
        elif self.family == "dual":
            spec["ipFamilyPolicy"] = "PreferDualStack"
            spec["ipFamilies"] = ["IPv4", "IPv6"]
        body = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {**OPT_IN, **(annotations or {})},
            },
            "spec": spec,
        }
        service = self.api.create(SERVICES, body, namespace=namespace)
        names = [n.name for n in self.nodes] if endpoint_nodes is None else list(endpoint_nodes)
        self._create_endpoints(name, namespace=namespace, port=port, protocol=protocol, on=names)
        return service

    def _create_endpoints(
        self, service: str, *, namespace: str, port: int, protocol: str, on: Sequence[str]
    ) -> None:
        families = {"ipv4": ["IPv4"], "ipv6": ["IPv6"], "dual": ["IPv4", "IPv6"]}[self.family]
        for family in families:
            endpoints = []
            for node in (self.node(n) for n in on):
                address = node.ipv4.ip if family == "IPv4" else node.ipv6.ip
                endpoints.append(
                    {
                        "addresses": [str(address)],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "nodeName": node.name,
                    }
                )
            body = {
                "metadata": {
                    "name": f"{service}-{family.lower()}",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": service},
                },
                "addressType": family,
                "endpoints": endpoints,
                "ports": [{"name": "echo", "port": port, "protocol": protocol}],
            }
            self.api.create(ENDPOINTSLICES, body, namespace=namespace)

    def wait_for_ingress(
        self, name: str, *, namespace: str = "default", timeout: float = 10.0, count: int = 1
    ) -> list[str]:
        """The Service's ingress IPs once it has ``count`` of them; LabError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            service = self.api.get(SERVICES, name, namespace=namespace)
            ingress = (service.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
            ips = [str(i["ip"]) for i in ingress if isinstance(i, dict) and i.get("ip")]
            if len(ips) >= count:
                return ips
            if time.monotonic() > deadline:
                raise LabError(f"Service {namespace}/{name} got no IP within {timeout:.0f} s")
            time.sleep(0.02)

    # --- pods and kube-proxy stand-ins -----------------------------------------------------------

    def expose(self, vip: str) -> None:
        """Make every node accept traffic for ``vip`` (kube-proxy's part), without answering ARP."""
        address = ipaddress.ip_address(vip)
        prefix = 32 if address.version == 4 else 128
        for node in self.nodes:
            node.run(["ip", "addr", "replace", f"{address}/{prefix}", "dev", "lo"])
        self.exposed.add(vip)

    def start_echo_servers(self, *, port: int = DEFAULT_PORT) -> list[Process]:
        """A UDP echo server in every node namespace; replies carry the node name."""
        cmd = [sys.executable, "-m", "openelb.lab.traffic", "serve", "--port", str(port)]
        processes = [
            node.spawn([*cmd, "--name", node.name], name=f"echo-{node.name}") for node in self.nodes
        ]
        # A stream started before a server has bound loses its first datagrams (port
        # unreachable); on a loaded machine the Python start-up alone can take a second.
        for proc in processes:
            try:
                proc.wait_for_output("listening on port", timeout=30.0)
            except TestbedError as exc:
                raise LabError(f"echo server: {exc}") from exc
        return processes

    # --- the programs under test -----------------------------------------------------------------

    def start_manager(self, *args: str, name: str = "manager") -> Process:
        """``openelb manager`` in the root namespace, on the loopback kubeconfig."""
        if "--metrics-port" not in args:
            # The root namespace is shared with whatever else runs here (other labs, tests): a
            # fixed port would make a second manager exit at start.
            args = ("--metrics-port", "0", *args)
        cmd = [_openelb(), "manager", "--kubeconfig", str(self.kubeconfig), *args]
        return self.testbed.spawn(cmd, name=name, env=_env())

    def start_speaker(self, node: Host | str, *args: str) -> Process:
        """``openelb speaker`` inside a node namespace, as that node."""
        host = self.node(node) if isinstance(node, str) else node
        cmd = [
            _openelb(),
            "speaker",
            "--kubeconfig",
            str(self.node_kubeconfig),
            "--node",
            host.name,
            "--heartbeat-address",
            str(host.ipv4.ip),
            "--instance",
            f"{self.testbed.run_id}-{host.name}",
            # VIP mode: nodes share this machine's /run, so each keeps keepalived's files apart.
            "--keepalived-dir",
            str(self.keepalived_dir(host.name)),
            *args,
        ]
        return host.spawn(cmd, name=f"speaker-{host.name}", env=_env())

    def keepalived_dir(self, node: str) -> Path:
        """Where the speaker of ``node`` keeps keepalived's config, pid files and FIFO."""
        return self.workdir / f"keepalived-{node}"

    def prepare_native_xdp(self) -> None:
        """Attach an XDP_PASS program to every node's switch port: a veth whose peer answers
        with native XDP_TX needs one, or the replies are dropped (ENV.md)."""
        from openelb.dataplane.xdp_loader import attach_pass_program

        for node in self.nodes:
            with in_netns(self.testbed.switch_netns):
                attach_pass_program(node.port)

    def cut_apiserver(self, node: Host | str) -> None:
        """Partition one node from the apiserver (its LAN stays up)."""
        name = node if isinstance(node, str) else node.name
        self.forwards[name].stop()

    def heal_apiserver(self, node: Host | str) -> None:
        name = node if isinstance(node, str) else node.name
        self.forwards[name].start()

    # --- teardown --------------------------------------------------------------------------------

    def close(self) -> None:
        errors: list[str] = []
        for forward in self.forwards.values():
            forward.close()
        self.forwards.clear()
        if self._api is not None:
            self._api.close()
            self._api = None
        if self._own_testbed:
            try:
                self.testbed.close()
            except TestbedError as exc:
                errors.append(str(exc))
        if self._own_apiserver:
            self.apiserver.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if errors:
            raise LabError("; ".join(errors))

    def __enter__(self) -> LabCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _openelb() -> str:
    """The ``openelb`` entry point next to this interpreter (the venv's)."""
    candidate = Path(sys.executable).with_name("openelb")
    return str(candidate) if candidate.exists() else "openelb"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
