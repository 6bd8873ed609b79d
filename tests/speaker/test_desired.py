"""desired_vips / node_eligibility / speaker records: from cluster objects to ownership inputs."""

from __future__ import annotations

from typing import Any

from openelb.kube.views import Eip, EndpointSlice, Node, Service
from openelb.speaker.desired import desired_vips, node_eligibility
from openelb.speaker.records import (
    SpeakerRecord,
    lease_name,
    node_of_lease,
    owner_of_mac,
    parse_record,
)


def svc(name: str, ips: list[str], *, etp: str = "Cluster", opted: bool = True) -> Service:
    raw: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": name,
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"} if opted else {},
        },
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }
    return Service.from_raw(raw)


def eip(name: str, address: str, *, protocol: str = "layer2", disable: bool = False) -> Eip:
    return Eip.from_raw(
        {
            "metadata": {"name": name},
            "spec": {"address": address, "protocol": protocol, "disable": disable},
            "status": {},
        }
    )


def node(name: str, *, ready: bool = True, exclude: bool = False) -> Node:
    labels = {"node.kubernetes.io/exclude-from-external-load-balancers": ""} if exclude else {}
    return Node.from_raw(
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]},
        }
    )


def endpoints(service: str, nodes: dict[str, bool]) -> EndpointSlice:
    return EndpointSlice.from_raw(
        {
            "metadata": {
                "name": f"{service}-x",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.1.1.1"], "nodeName": n, "conditions": {"ready": r}}
                for n, r in nodes.items()
            ],
        }
    )


RECORDS = {
    n: SpeakerRecord(
        n, ("10.9.0.1", 7946), 1, {"pool": "eth0"}, {"eth0": "02:00:00:00:00:0" + n[-1]}
    )
    for n in ("n1", "n2", "n3")
}


def test_nodes_ready_and_not_excluded_are_eligible() -> None:
    assert node_eligibility([node("a"), node("b", ready=False), node("c", exclude=True)]) == {
        "a": True,
        "b": False,
        "c": False,
    }


def test_only_opted_in_ingress_ips_in_enabled_layer2_pools_are_served() -> None:
    plans = desired_vips(
        services=[
            svc("web", ["10.0.0.5", "fd00::0:5"]),
            svc("other", ["10.0.0.6"], opted=False),
            svc("bgp", ["10.7.0.1"]),
            svc("off", ["10.8.0.1"]),
        ],
        eips=[
            eip("pool", "10.0.0.0/24"),
            eip("pool6", "fd00::/64"),
            eip("b", "10.7.0.0/24", protocol="bgp"),
            eip("d", "10.8.0.0/24", disable=True),
        ],
        slices=[],
        records=RECORDS
        | {
            "n4": SpeakerRecord(
                "n4", ("10.9.0.4", 1), 1, {"pool6": "eth1"}, unserved=frozenset({"pool"})
            )
        },
    )
    assert sorted(plans) == ["10.0.0.5", "fd00::5"]
    assert plans["10.0.0.5"].candidates == {"n1", "n2", "n3"}
    # n1-n3 have not said anything about pool6 yet (their Leases lag it): candidates too.
    assert plans["fd00::5"].candidates == {"n1", "n2", "n3", "n4"}
    assert plans["10.0.0.5"].services == ("default/web",)


def test_etp_local_follows_ready_endpoints_and_sharing_unions_them() -> None:
    plans = desired_vips(
        services=[svc("a", ["10.0.0.5"], etp="Local"), svc("b", ["10.0.0.5"], etp="Local")],
        eips=[eip("pool", "10.0.0.0/24")],
        slices=[endpoints("a", {"n1": True, "n2": False}), endpoints("b", {"n3": True})],
        records=RECORDS,
    )
    assert plans["10.0.0.5"].candidates == {"n1", "n3"} and plans["10.0.0.5"].local
    # One Cluster-policy Service on the shared IP: any node with the interface.
    plans = desired_vips(
        services=[svc("a", ["10.0.0.5"], etp="Local"), svc("b", ["10.0.0.5"])],
        eips=[eip("pool", "10.0.0.0/24")],
        slices=[endpoints("a", {"n1": True})],
        records=RECORDS,
    )
    assert plans["10.0.0.5"].candidates == {"n1", "n2", "n3"}


def test_records_round_trip_and_malformed_leases_give_reasons() -> None:
    rec = SpeakerRecord(
        "n1", ("fd00::1", 7946), 12, {"pool": "eth0"}, {"eth0": "02:00:00:00:00:01"}
    )
    assert parse_record("n1", rec.annotations()) == rec
    assert "malformed" in str(parse_record("n1", {}))
    bad = rec.annotations() | {"speaker.openelb.io/interfaces": "[1,2]"}
    assert "interfaces" in str(parse_record("n1", bad))
    assert node_of_lease(lease_name("n1")) == "n1" and node_of_lease("kube-scheduler") is None
    assert owner_of_mac(RECORDS, bytes.fromhex("020000000002")) == "n2"
    assert owner_of_mac(RECORDS, bytes(6)) is None


def test_a_new_eip_has_the_same_candidates_everywhere_before_the_leases_catch_up() -> None:
    # n1 resolved the new pool; n2's Lease does not mention it yet; n3 said it lacks the NIC.
    records = {
        "n1": SpeakerRecord("n1", ("10.9.0.1", 1), 1, {"pool": "eth0", "new": "eth0"}),
        "n2": SpeakerRecord("n2", ("10.9.0.2", 1), 1, {"pool": "eth0"}),
        "n3": SpeakerRecord(
            "n3", ("10.9.0.3", 1), 1, {"pool": "eth0"}, unserved=frozenset({"new"})
        ),
    }
    plans = desired_vips(
        services=[svc("web", ["10.5.0.1"])],
        eips=[eip("pool", "10.0.0.0/24"), eip("new", "10.5.0.0/24")],
        slices=[],
        records=records,
    )
    assert plans["10.5.0.1"].candidates == {"n1", "n2"}
    assert parse_record("n3", records["n3"].annotations()) == records["n3"]
