"""From cluster objects to VIP-mode desired state, and from VRRP state changes to Events."""

from __future__ import annotations

from typing import Any

from openelb.config import KeepalivedSettings
from openelb.keepalived.desired import state_change_event, vip_mode_state
from openelb.keepalived.model import plan
from openelb.keepalived.notify import VrrpState
from openelb.keepalived.states import VipStateChange
from openelb.kube.views import Eip, EndpointSlice, Node, Service
from openelb.speaker.records import SpeakerRecord


def svc(name: str, ips: list[str], *, etp: str = "Cluster") -> Service:
    raw: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": name,
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"},
        },
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }
    return Service.from_raw(raw)


def eip(name: str, address: str, ids: dict[str, int], *, protocol: str = "vip") -> Eip:
    return Eip.from_raw(
        {
            "metadata": {"name": name},
            "spec": {"address": address, "protocol": protocol},
            "status": {"virtualRouterIDs": ids},
        }
    )


def node(name: str, v4: str, v6: str = "", *, ready: bool = True) -> Node:
    addresses = [{"type": "InternalIP", "address": v4}, {"type": "Hostname", "address": name}]
    if v6:
        addresses.append({"type": "InternalIP", "address": v6})
    return Node.from_raw(
        {
            "metadata": {"name": name},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": str(ready)}],
                "addresses": addresses,
            },
        }
    )


def slice_(service: str, nodes: list[str]) -> EndpointSlice:
    return EndpointSlice.from_raw(
        {
            "metadata": {
                "name": f"{service}-x",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.1.1.1"], "nodeName": n, "conditions": {"ready": True}}
                for n in nodes
            ],
        }
    )


NODES = [node("n1", "10.0.0.1", "fd00::1"), node("n2", "10.0.0.2"), node("n3", "10.0.0.3")]
RECORDS = {
    n: SpeakerRecord(n, ("10.0.0.9", 7946), 1, {"vpool": "eth1"}) for n in ("n1", "n2", "n3")
}


def test_vip_mode_state_takes_router_ids_from_the_eip_status_and_never_invents_one() -> None:
    state = vip_mode_state(
        node="n1",
        services=[svc("a", ["10.5.0.1"]), svc("b", ["10.5.0.2"]), svc("l2", ["10.6.0.1"])],
        eips=[
            eip("vpool", "10.5.0.0/24", {"10.5.0.1": 3}),
            eip("l2pool", "10.6.0.0/24", {}, protocol="layer2"),
        ],
        slices=[],
        nodes=NODES,
        records=RECORDS,
    )
    (vip,) = state.desired.vips
    assert (vip.address, vip.router_id, vip.interface) == ("10.5.0.1", 3, "eth1")
    assert vip.eligible == {"n1", "n2", "n3"}
    assert [(w.ip, w.eip) for w in state.waiting] == [("10.5.0.2", "vpool")]
    assert state.services == {"10.5.0.1": ("default/a",), "10.5.0.2": ("default/b",)}
    assert state.desired.nodes["n1"].ipv6 == "fd00::1" and state.desired.nodes["n2"].ipv6 is None


def test_eligibility_follows_readiness_leases_and_local_endpoints() -> None:
    nodes = [*NODES[:2], node("n3", "10.0.0.3", ready=False)]
    records = {n: r for n, r in RECORDS.items() if n != "n2"}  # no speaker (Lease) on n2
    state = vip_mode_state(
        node="n1",
        services=[svc("a", ["10.5.0.1"]), svc("loc", ["10.5.0.2"], etp="Local")],
        eips=[eip("vpool", "10.5.0.0/24", {"10.5.0.1": 3, "10.5.0.2": 4})],
        slices=[slice_("loc", ["n3"])],
        nodes=nodes,
        records=records,
    )
    by_ip = {v.address: v for v in state.desired.vips}
    assert by_ip["10.5.0.1"].eligible == {"n1"}
    assert by_ip["10.5.0.2"].eligible == frozenset()  # its only endpoint is on a NotReady node
    p = plan(state.desired, KeepalivedSettings())
    assert [i.vips for i in p.instances] == [("10.5.0.1",)] and p.issues == ()


def test_events_name_the_node_holding_the_vip() -> None:
    def change(state: VrrpState, previous: VrrpState | None, failover: float | None = None):
        return VipStateChange(
            "10.5.0.1", "vpool", "oelb_vpool_v4_3", "n2", state, previous, 0.0, failover
        )

    kind, reason, message = state_change_event(change(VrrpState.MASTER, VrrpState.BACKUP, 0.25))
    assert (kind, reason) == ("Normal", "VIPHeld")
    assert "held by node n2" in message and "250 ms" in message
    assert state_change_event(change(VrrpState.FAULT, VrrpState.MASTER))[1] == "VRRPFault"
    assert state_change_event(change(VrrpState.BACKUP, VrrpState.MASTER))[1] == "VIPReleased"
    assert state_change_event(change(VrrpState.BACKUP, None)) is None
