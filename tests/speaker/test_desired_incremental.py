"""DesiredVips (per-object updates) always equals desired_vips over the same objects."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openelb.kube.views import Eip, EndpointSlice, Service
from openelb.speaker.desired import DesiredVips, VipPlan, desired_vips
from openelb.speaker.records import SpeakerRecord
from tests.speaker.test_desired import eip

IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.9", "fd00::1", "fd00:0::2", "192.0.2.1"]
NODES = ["n1", "n2", "n3"]
POOLS = [
    [eip("pool", "10.0.0.0/24")],
    [eip("pool", "10.0.0.0/24"), eip("six", "fd00::/120")],
    [eip("pool", "10.0.0.0/16", disable=True), eip("six", "fd00::/120")],
    [eip("wide", "10.0.0.0/16"), eip("six", "fd00::/120", protocol="vip")],
]


def _service(name: str, ips: list[str], local: bool, opted: bool) -> Service:
    raw: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"} if opted else {},
        },
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local" if local else "Cluster"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }
    return Service.from_raw(raw)


def _slice(name: str, service: str, ready: dict[str, bool]) -> EndpointSlice:
    return EndpointSlice.from_raw(
        {
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": service},
            },
            "endpoints": [
                {"addresses": ["10.1.1.1"], "nodeName": n, "conditions": {"ready": r}}
                for n, r in ready.items()
            ],
        }
    )


def _records(unserved: dict[str, list[str]]) -> dict[str, SpeakerRecord]:
    return {
        n: SpeakerRecord(n, ("10.9.0.1", 7946), 1, {}, {}, frozenset(unserved.get(n, [])))
        for n in NODES
    }


SERVICE_NAMES = ["a", "b", "c", "d"]
services = st.builds(
    lambda name, ips, local, opted: ("service", name, _service(name, ips, local, opted)),
    st.sampled_from(SERVICE_NAMES),
    st.lists(st.sampled_from(IPS), max_size=2),
    st.booleans(),
    st.booleans(),
)
deletions = st.builds(lambda name: ("service", name, None), st.sampled_from(SERVICE_NAMES))
slices = st.builds(
    lambda n, svc, ready: ("slice", f"{svc}-{n}", _slice(f"{svc}-{n}", svc, ready)),
    st.integers(0, 1),
    st.sampled_from(SERVICE_NAMES),
    st.dictionaries(st.sampled_from(NODES), st.booleans(), max_size=3),
)
slice_deletions = st.builds(
    lambda n, svc: ("slice", f"{svc}-{n}", None), st.integers(0, 1), st.sampled_from(SERVICE_NAMES)
)
pools = st.builds(lambda i: ("pools", "", POOLS[i]), st.integers(0, len(POOLS) - 1))
records = st.builds(
    lambda u: ("records", "", _records(u)),
    st.dictionaries(st.sampled_from(NODES), st.lists(st.sampled_from(["pool", "six", "wide"]))),
)
ops = st.lists(st.one_of(services, deletions, slices, slice_deletions, pools, records), max_size=25)


@settings(max_examples=300, deadline=None)
@given(ops=ops, checkpoints=st.sets(st.integers(0, 25)))
def test_per_object_updates_match_a_full_recompute(
    ops: list[tuple[str, str, Any]], checkpoints: set[int]
) -> None:
    inc = DesiredVips()
    svcs: dict[str, Service] = {}
    sls: dict[str, EndpointSlice] = {}
    eips: list[Eip] = POOLS[0]
    recs = _records({})
    inc.set_pools(eips)
    inc.set_records(recs)
    seen: dict[str, VipPlan] = {}
    for i, (kind, key, obj) in enumerate([*ops, ("check", "", None)]):
        if kind == "service":
            inc.set_service(f"default/{key}", obj)
            svcs.pop(f"default/{key}", None) if obj is None else svcs.update({obj.key: obj})
        elif kind == "slice":
            inc.set_slice(f"default/{key}", obj)
            sls.pop(f"default/{key}", None) if obj is None else sls.update({obj.key: obj})
        elif kind == "pools":
            eips = obj
            inc.set_pools(eips)
        elif kind == "records":
            recs = obj
            inc.set_records(recs)
        if i in checkpoints or kind == "check":
            changed, removed = inc.update()
            expected = desired_vips(
                services=svcs.values(), eips=eips, slices=sls.values(), records=recs
            )
            assert inc.plans == expected
            # What update() reports is exactly the difference since the last call.
            assert removed == set(seen) - set(expected)
            assert changed == {ip: p for ip, p in expected.items() if seen.get(ip) != p}
            seen = dict(expected)


def test_a_relist_resets_to_exactly_the_listed_objects() -> None:
    inc = DesiredVips()
    inc.set_pools(POOLS[0])
    inc.set_records(_records({}))
    inc.set_service("default/a", _service("a", ["10.0.0.1"], False, True))
    inc.update()
    inc.reset(services=[_service("b", ["10.0.0.2"], False, True)], slices=[])
    changed, removed = inc.update()
    assert set(changed) == {"10.0.0.2"} and removed == {"10.0.0.1"}
