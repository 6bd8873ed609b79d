"""The manager assigns router IDs into Eip status; every speaker plans the same VRRP instances.

The real manager runs against the embedded apiserver (real client, real protocol); the test then
reads the objects back as a speaker would and plans keepalived for three nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openelb.config import KeepalivedSettings
from openelb.keepalived.desired import vip_mode_state
from openelb.keepalived.model import plan
from openelb.kube.client import KubeApi, connect
from openelb.kube.resources import EIPS, SERVICES
from openelb.kube.views import Eip, Node, Service
from openelb.speaker.records import SpeakerRecord
from tests.manager.harness import create, eip_status, running_manager, wait_for
from tests.manager.objects import eip, service


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[Any]:
    client = connect(str(kubeconfig))
    yield client
    client.close()


def _node(name: str, address: str) -> Node:
    return Node.from_raw(
        {
            "metadata": {"name": name},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": address}],
            },
        }
    )


def test_router_ids_from_the_manager_give_every_node_the_same_instances(api: KubeApi) -> None:
    create(api, eip("vip1", "10.9.0.0/28", protocol="vip"))
    create(api, eip("vip2", "10.9.1.0/28", protocol="vip", created=1))
    create(api, service("a", pool="vip1", created=1))
    create(api, service("b", pool="vip2", created=2))
    with running_manager(api):
        for name in ("vip1", "vip2"):
            wait_for(
                f"router ID of {name}",
                lambda name=name: eip_status(api, name).get("virtualRouterIDs"),
            )
    eips = [Eip.from_raw(raw) for raw in api.list(EIPS)[0]]
    services = [Service.from_raw(raw) for raw in api.list(SERVICES)[0]]
    nodes = [_node(f"n{i}", f"10.0.0.{i}") for i in (1, 2, 3)]
    records = {
        n.name: SpeakerRecord(n.name, ("10.0.0.9", 7946), 1, {"vip1": "eth0", "vip2": "eth0"})
        for n in nodes
    }
    plans = {}
    for node in nodes:
        state = vip_mode_state(
            node=node.name, services=services, eips=eips, slices=[], nodes=nodes, records=records
        )
        assert not state.waiting
        p = plan(state.desired, KeepalivedSettings())
        assert not p.issues
        plans[node.name] = sorted((i.eip, i.router_id, i.vips, i.preferred) for i in p.instances)
    first = plans["n1"]
    assert all(p == first for p in plans.values())
    assert len(first) == 2 and first[0][1] != first[1][1]  # two Eips, two router IDs
    assert {ip for _e, _r, vips, _p in first for ip in vips} == {"10.9.0.0", "10.9.1.0"}
