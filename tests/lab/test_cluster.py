"""LabCluster: the rig of the lab and the end-to-end tests, checked without openelb's programs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from openelb.kube.resources import ENDPOINTSLICES, NODES, SERVICES
from openelb.lab.cluster import LabCluster, LabError
from openelb.lab.netns import Testbed
from openelb.lab.traffic import UdpStream, analyse

pytestmark = pytest.mark.netns

LIST_NODES = """
from openelb.kube.client import connect
from openelb.kube.resources import NODES
items, _ = connect(__import__("sys").argv[1]).list(NODES)
print(",".join(sorted(i["metadata"]["name"] for i in items)))
"""


@pytest.fixture
def cluster(testbed: Testbed) -> Iterator[LabCluster]:
    with LabCluster(nodes=2, testbed=testbed) as lab:
        yield lab


def test_nodes_are_registered_ready_and_reach_the_apiserver(cluster: LabCluster) -> None:
    items, _ = cluster.api.list(NODES)
    assert {i["metadata"]["name"] for i in items} == {"node1", "node2"}
    for item in items:
        (ready,) = [c for c in item["status"]["conditions"] if c["type"] == "Ready"]
        assert ready["status"] == "True"
    node = cluster.nodes[0]
    done = node.run([sys.executable, "-c", LIST_NODES, str(cluster.node_kubeconfig)])
    assert done.stdout.strip() == "node1,node2"


def test_a_service_gets_endpoints_on_every_node(cluster: LabCluster) -> None:
    cluster.create_service("echo")
    service = cluster.api.get(SERVICES, "echo", namespace="default")
    assert service["metadata"]["annotations"]["lb.kubesphere.io/v1alpha1"] == "openelb"
    slices, _ = cluster.api.list(ENDPOINTSLICES, namespace="default")
    (only,) = slices
    assert {e["nodeName"] for e in only["endpoints"]} == {"node1", "node2"}


def test_an_exposed_vip_reaches_a_node_but_the_kernel_does_not_answer_arp(
    cluster: LabCluster,
) -> None:
    vip = cluster.pool()["ipv4"].split("-")[0]
    cluster.expose(vip)
    cluster.start_echo_servers()
    client = cluster.client
    assert client is not None
    # Nobody may answer ARP for the VIP: that is openelb's job, and no speaker runs here.
    arping = client.run(["arping", "-c", "2", "-w", "1", "-I", "eth0", vip], check=False)
    assert " reply from " not in arping.stdout.lower()
    # With the neighbour entry set by hand, node2 answers for the VIP as itself.
    node2 = cluster.node("node2")
    client.run(["ip", "neigh", "replace", vip, "lladdr", node2.mac, "dev", "eth0"])
    stream = UdpStream((vip, 7007), interval=0.002, duration=0.3, netns=client.netns)
    report = analyse(stream.run())
    assert report.received > 0
    assert set(report.responders_before) | set(report.responders_after) == {"node2"}


def test_ingress_wait_says_which_service_got_no_ip(cluster: LabCluster) -> None:
    cluster.create_service("lonely")
    started = time.monotonic()
    with pytest.raises(LabError, match="default/lonely got no IP"):
        cluster.wait_for_ingress("lonely", timeout=0.2)
    assert time.monotonic() - started < 5


def test_bad_options_are_rejected_before_anything_is_built() -> None:
    with pytest.raises(LabError, match="nodes must be between"):
        LabCluster(nodes=0)
    with pytest.raises(LabError, match="family must be one of"):
        LabCluster(family="ipx")
