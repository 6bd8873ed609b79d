"""The reconcile core, without a server: opt-in, addresses, finalizers, Events, restarts."""

from __future__ import annotations

import copy
from typing import Any

from openelb.ipam import NoIPReason, RouterIdRange, ServiceKey
from openelb.manager import FINALIZER, FinalizerChange, Reconciler, ServiceDecision
from openelb.manager.conditions import CONDITION_TYPE, stored_condition, with_condition
from openelb.manager.reading import ingress_ips
from tests.manager.objects import eip, namespace, service

NOW = "2024-02-01T00:00:00Z"


def key(name: str, namespace: str = "default") -> ServiceKey:
    return ServiceKey(namespace, name)


def apply(raw: dict[str, Any], decision: ServiceDecision) -> dict[str, Any]:
    """What the controller writes, applied to a copy of the object."""
    raw = copy.deepcopy(raw)
    if decision.ingress is not None:
        raw["status"]["loadBalancer"] = {"ingress": [{"ip": ip} for ip in decision.ingress]}
    if decision.condition_write:
        raw["status"] = with_condition(raw, raw["status"], decision.condition, now=NOW)
    finalizers = raw["metadata"].setdefault("finalizers", [])
    if decision.finalizer is FinalizerChange.ADD:
        finalizers.append(FINALIZER)
    elif decision.finalizer is FinalizerChange.REMOVE:
        finalizers.remove(FINALIZER)
    return raw


def started(*eips: dict[str, Any], services: tuple[dict[str, Any], ...] = ()) -> Reconciler:
    reconciler = Reconciler()
    reconciler.start(services=services, eips=eips, namespaces=[namespace("default")])
    return reconciler


def test_an_opted_in_service_gets_the_lowest_address_a_finalizer_and_an_event() -> None:
    reconciler = started(eip("pool", "10.0.0.0/30", default=True))
    decision = reconciler.reconcile(key("web"), service("web"))
    assert decision.ingress == ("10.0.0.0",)
    assert decision.finalizer is FinalizerChange.ADD
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "IPAllocated")]
    assert "Eip 'pool'" in decision.events[0].message


def test_load_balancer_class_opts_in_and_other_classes_are_never_touched() -> None:
    reconciler = started(eip("pool", "10.0.0.0/30", default=True))
    assert reconciler.reconcile(key("a"), service("a", opt_in="class")).ingress == ("10.0.0.0",)
    for raw in (
        service("b", opt_in="none"),
        service("c", lb_class="example.com/other"),
        service("d", type="ClusterIP"),
        service("e", opt_in="none", ingress=("10.0.0.1",)),
    ):
        assert reconciler.reconcile(key(raw["metadata"]["name"]), raw) == ServiceDecision(
            key(raw["metadata"]["name"])
        )


def test_an_unchanged_service_needs_no_write() -> None:
    reconciler = started(eip("pool", "10.0.0.0/30", default=True))
    raw = apply(service("web"), reconciler.reconcile(key("web"), service("web")))
    again = reconciler.reconcile(key("web"), raw)
    assert again.ingress is None and again.finalizer is FinalizerChange.KEEP and not again.events
    assert not again.writes_status


def test_no_ip_gives_a_warning_once_and_keeps_nothing_it_did_not_have() -> None:
    reconciler = started(eip("pool", "10.0.0.0/32", default=True))
    reconciler.reconcile(key("a"), service("a"))
    first = reconciler.reconcile(key("b"), service("b"))
    assert first.ingress is None and first.failure is NoIPReason.POOL_FULL
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "PoolFull")]
    assert "no free address" in first.events[0].message
    assert reconciler.reconcile(key("b"), service("b")).events == ()


def test_the_service_condition_says_why_there_is_no_address_and_flips_when_one_comes() -> None:
    reconciler = started(eip("pool", "10.0.0.0/32", default=True))
    holder = apply(service("a"), reconciler.reconcile(key("a"), service("a")))
    assert stored_condition(holder) is not None
    first = reconciler.reconcile(key("b"), service("b"))
    assert first.condition_write and first.ingress is None
    waiting = apply(service("b"), first)
    condition = stored_condition(waiting)
    assert condition is not None and condition["type"] == CONDITION_TYPE
    assert (condition["status"], condition["reason"]) == ("False", "PoolFull")
    assert "no free address" in condition["message"]
    assert condition["lastTransitionTime"] == NOW
    assert not reconciler.reconcile(key("b"), waiting).writes_status  # nothing new to say
    reconciler.reconcile(key("a"), None)  # the holder goes: b gets the address
    got = reconciler.reconcile(key("b"), waiting)
    assert got.ingress == ("10.0.0.0",) and got.condition_write
    done = stored_condition(apply(waiting, got))
    assert done is not None and (done["status"], done["reason"]) == ("True", "Assigned")
    assert "10.0.0.0 from Eip 'pool'" in done["message"]


def test_a_service_that_leaves_openelb_loses_the_condition_and_others_are_kept() -> None:
    reconciler = started(eip("pool", "10.0.0.0/30", default=True))
    raw = apply(service("a"), reconciler.reconcile(key("a"), service("a")))
    raw["status"].setdefault("conditions", []).insert(
        0, {"type": "example.com/Other", "status": "True", "reason": "Theirs", "message": ""}
    )
    raw["metadata"].pop("annotations", None)
    raw["spec"].pop("loadBalancerClass", None)
    left = reconciler.reconcile(key("a"), raw)
    assert left.condition_write and left.condition is None
    after = apply(raw, left)
    assert stored_condition(after) is None
    assert [c["type"] for c in after["status"]["conditions"]] == ["example.com/Other"]


def test_requested_ip_taken_or_outside_every_pool_is_refused_with_a_reason() -> None:
    reconciler = started(eip("pool", "10.0.0.0/24", default=True))
    reconciler.reconcile(key("a"), service("a", ip="10.0.0.7"))
    taken = reconciler.reconcile(key("b"), service("b", ip="10.0.0.7"))
    assert taken.failure is NoIPReason.IP_IN_USE and "default/a" in taken.events[0].message
    outside = reconciler.reconcile(key("c"), service("c", lb_ip="192.168.9.9"))
    assert outside.failure is NoIPReason.IP_OUTSIDE_POOLS


def test_disabled_pool_and_missing_family_are_reported() -> None:
    reconciler = started(eip("pool", "10.0.0.0/24", default=True, disable=True))
    assert reconciler.reconcile(key("a"), service("a", pool="pool")).failure is (
        NoIPReason.POOL_DISABLED
    )
    dual = reconciler.reconcile(
        key("b"), service("b", families=("IPv4", "IPv6"), policy="RequireDualStack")
    )
    assert dual.failure is not None and dual.events[0].type == "Warning"


def test_dual_stack_gets_one_address_per_family() -> None:
    reconciler = started(
        eip("v4", "10.0.0.0/24", default=True), eip("v6", "2001:db8::/64", default=True)
    )
    decision = reconciler.reconcile(
        key("a"), service("a", families=("IPv6", "IPv4"), policy="RequireDualStack")
    )
    assert decision.ingress == ("2001:db8::", "10.0.0.0")


def test_sharing_needs_one_key_and_distinct_ports() -> None:
    reconciler = started(eip("pool", "10.0.0.0/24", default=True))
    a = reconciler.reconcile(key("a"), service("a", key="k", ports=(80,)))
    b = reconciler.reconcile(key("b"), service("b", key="k", ports=(443,)))
    assert a.ingress == b.ingress == ("10.0.0.0",)
    assert "shared with default/a" in b.events[-1].message
    clash = reconciler.reconcile(key("c"), service("c", key="k", ip="10.0.0.0", ports=(80,)))
    assert clash.failure is NoIPReason.PORT_CLASH
    other = reconciler.reconcile(key("d"), service("d", key="x", ip="10.0.0.0", ports=(8080,)))
    assert other.failure is NoIPReason.SHARING_KEY_MISMATCH


def test_deleting_releases_and_removes_the_finalizer_and_the_address_returns() -> None:
    reconciler = started(eip("pool", "10.0.0.0/32", default=True))
    raw = apply(service("a"), reconciler.reconcile(key("a"), service("a")))
    raw["metadata"]["deletionTimestamp"] = NOW
    decision = reconciler.reconcile(key("a"), raw)
    assert decision.finalizer is FinalizerChange.REMOVE and decision.released == ("10.0.0.0",)
    # Still stored (until the finalizer goes): nobody else may have the address yet.
    waiting = reconciler.reconcile(key("b"), service("b"))
    assert waiting.retry_after is not None and waiting.ingress is None
    reconciler.reconcile(key("a"), None)
    assert reconciler.reconcile(key("b"), service("b")).ingress == ("10.0.0.0",)


def test_type_change_clears_the_status_and_the_finalizer() -> None:
    reconciler = started(eip("pool", "10.0.0.0/24", default=True))
    raw = apply(service("a"), reconciler.reconcile(key("a"), service("a")))
    raw["spec"]["type"] = "ClusterIP"
    decision = reconciler.reconcile(key("a"), raw)
    assert decision.ingress == () and decision.finalizer is FinalizerChange.REMOVE
    assert decision.events[0].reason == "IPReleased"


def test_an_address_given_up_is_not_handed_out_until_the_old_status_lets_go() -> None:
    reconciler = started(eip("pool", "10.0.0.0/24", default=True))
    a = apply(
        service("a", ip="10.0.0.5"), reconciler.reconcile(key("a"), service("a", ip="10.0.0.5"))
    )
    a["metadata"]["annotations"]["eip.openelb.kubesphere.io/v1alpha1"] = "10.0.0.6"
    moved = reconciler.reconcile(key("a"), a)
    assert moved.ingress == ("10.0.0.6",)
    # a's stored status still says 10.0.0.5: b must wait for it.
    b = reconciler.reconcile(key("b"), service("b", ip="10.0.0.5"))
    assert b.retry_after is not None and b.ingress is None
    reconciler.published(key("a"), moved.ingress)
    assert reconciler.reconcile(key("b"), service("b", ip="10.0.0.5")).ingress == ("10.0.0.5",)


def test_pool_edits_never_move_an_existing_address() -> None:
    reconciler = started(eip("pool", "10.0.0.0/24", default=True))
    raw = apply(
        service("a", ip="10.0.0.200"), reconciler.reconcile(key("a"), service("a", ip="10.0.0.200"))
    )
    reconciler.set_eips([eip("pool", "10.0.0.0/25", default=True)])
    again = reconciler.reconcile(key("a"), raw)
    assert again.ingress is None  # kept, nothing to write
    status = reconciler.eip_status("pool", now=NOW)
    assert status is not None
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "KeptAddresses" and "10.0.0.200" in ready["message"]


def test_an_address_no_eip_lists_any_more_is_kept_and_reported_once() -> None:
    reconciler = started(eip("pool", "10.0.0.0/24", default=True))
    raw = apply(service("a"), reconciler.reconcile(key("a"), service("a")))
    reconciler.set_eips([])  # removed without waiting for the finalizer (forced)
    kept = reconciler.reconcile(key("a"), raw)
    assert kept.ingress is None
    assert [(n.type, n.reason) for n in kept.events] == [("Warning", "AddressOutsidePools")]
    assert "10.0.0.0" in kept.events[0].message
    assert reconciler.reconcile(key("a"), raw).events == ()
    reconciler.set_eips([eip("pool", "10.0.0.0/24", default=True)])
    assert reconciler.reconcile(key("a"), raw).events == ()
    assert reconciler.eip_status("pool", now=NOW)["used"] == {"10.0.0.0": "default/a"}  # type: ignore[index]


def test_restart_keeps_every_address_and_writes_nothing() -> None:
    first = started(eip("pool", "10.0.0.0/24", default=True))
    services = []
    for name in ("a", "b", "c"):
        raw = service(name, created=ord(name))
        services.append(apply(raw, first.reconcile(key(name), raw)))
    pool = eip("pool", "10.0.0.0/24", default=True, status=first.eip_status("pool", now=NOW))
    second = Reconciler()
    report = second.start(services=services, eips=[pool], namespaces=[namespace("default")])
    assert report.services == 3 and report.restored == 3 and not report.conflicts
    for raw in services:
        decision = second.reconcile(key(raw["metadata"]["name"]), raw)
        assert decision.ingress is None and decision.finalizer is FinalizerChange.KEEP
    assert second.eip_status("pool", now=NOW) == pool["status"]


def test_restart_after_a_kill_between_the_eip_write_and_the_service_write() -> None:
    first = started(eip("pool", "10.0.0.0/24", default=True))
    first.reconcile(key("x"), service("x"))  # 10.0.0.0, never written to the Service
    decided = first.reconcile(key("y"), service("y"))  # 10.0.0.1
    pool = eip("pool", "10.0.0.0/24", default=True, status=first.eip_status("pool", now=NOW))
    second = Reconciler()
    second.start(services=[service("y", created=1)], eips=[pool], namespaces=[namespace("default")])
    assert second.reconcile(key("y"), service("y", created=1)).ingress == decided.ingress
    # x does not exist: its reservation is dropped and the address is free again.
    assert second.reconcile(key("z"), service("z")).ingress == ("10.0.0.0",)


def test_restart_with_one_address_in_two_statuses_keeps_the_older_and_moves_the_newer() -> None:
    old = service("old", ingress=("10.0.0.3",), finalizer=True, created=1)
    new = service("new", ingress=("10.0.0.3",), finalizer=True, created=2)
    reconciler = started(eip("pool", "10.0.0.0/24", default=True), services=(old, new))
    assert reconciler.reconcile(key("old"), old).ingress is None
    moved = reconciler.reconcile(key("new"), new)
    assert moved.ingress == ("10.0.0.0",)
    assert moved.events[0].reason == "IPConflict"


def test_eip_status_is_exact_and_used_loses_released_keys() -> None:
    reconciler = started(eip("pool", "10.0.0.0/30", default=True))
    reconciler.reconcile(key("a"), service("a"))
    reconciler.reconcile(key("b"), service("b"))
    status = reconciler.eip_status("pool", now=NOW)
    assert status is not None
    assert {k: status[k] for k in ("poolSize", "usage", "used", "firstIP", "lastIP", "v4")} == {
        "poolSize": 4,
        "usage": 2,
        "used": {"10.0.0.0": "default/a", "10.0.0.1": "default/b"},
        "firstIP": "10.0.0.0",
        "lastIP": "10.0.0.3",
        "v4": True,
    }
    reconciler.reconcile(key("a"), None)
    after = reconciler.eip_status("pool", now="later")
    assert after is not None and after["used"] == {"10.0.0.1": "default/b"}
    # Conditions did not change status, so their transition time stays.
    stored = eip("pool", "10.0.0.0/30", default=True, status=status)
    reconciler.set_eips([stored])
    kept = reconciler.eip_status("pool", now="later")
    assert kept is not None
    assert [c["lastTransitionTime"] for c in kept["conditions"]] == [NOW, NOW, NOW]


def test_vip_mode_addresses_get_router_ids_that_survive_a_restart() -> None:
    vip = eip("vip", "10.1.0.0/24", default=True, protocol="vip")
    reconciler = started(vip)
    for name in ("a", "b"):
        reconciler.reconcile(key(name), service(name))
    reconciler.refresh_router_ids()
    status = reconciler.eip_status("vip", now=NOW)
    assert status is not None and status["virtualRouterIDs"] == {"10.1.0.0": 1, "10.1.0.1": 2}
    reconciler.reconcile(key("a"), None)
    reconciler.reconcile(key("c"), service("c", ip="10.1.0.9"))
    reconciler.refresh_router_ids()
    after = reconciler.eip_status("vip", now=NOW)
    assert after is not None and after["virtualRouterIDs"] == {"10.1.0.1": 2, "10.1.0.9": 1}


def test_router_ids_are_unique_across_vip_eips_in_range_and_kept_by_a_restarted_manager() -> None:
    ids = RouterIdRange(10, 13, frozenset({11}))
    pools = (
        eip("v4", "10.1.0.0/24", default=True, protocol="vip"),
        eip("v6", "2001:db8:1::/64", default=True, protocol="vip", created=5),
        eip("l2", "10.2.0.0/24", protocol="layer2", created=9),
    )
    first = Reconciler(router_id_range=ids)
    first.start(services=(), eips=pools, namespaces=[namespace("default")])
    services = {
        "a": service("a"),
        "b": service("b", families=("IPv6",)),
        "c": service("c", pool="l2"),
    }
    written = {name: apply(raw, first.reconcile(key(name), raw)) for name, raw in services.items()}
    first.refresh_router_ids()
    v4 = first.eip_status("v4", now=NOW)
    v6 = first.eip_status("v6", now=NOW)
    assert v4 is not None and v6 is not None
    assert v4["virtualRouterIDs"] == {"10.1.0.0": 10}
    assert v6["virtualRouterIDs"] == {"2001:db8:1::": 12}  # 11 is reserved
    assert "virtualRouterIDs" not in (first.eip_status("l2", now=NOW) or {})
    # A new manager (another order of Services, the same statuses) keeps every ID.
    stored = (
        eip("v4", "10.1.0.0/24", default=True, protocol="vip", status=v4),
        eip("v6", "2001:db8:1::/64", default=True, protocol="vip", created=5, status=v6),
        pools[2],
    )
    second = Reconciler(router_id_range=ids)
    second.start(
        services=list(reversed(written.values())), eips=stored, namespaces=[namespace("default")]
    )
    second.refresh_router_ids()
    assert (second.eip_status("v4", now=NOW) or {})["virtualRouterIDs"] == {"10.1.0.0": 10}
    assert (second.eip_status("v6", now=NOW) or {})["virtualRouterIDs"] == {"2001:db8:1::": 12}
    # The range holds three IDs: the fourth VIP gets none and its Eip says so once.
    second.reconcile(key("d"), service("d"))
    second.reconcile(key("e"), service("e"))
    second.refresh_router_ids()
    given = (second.eip_status("v4", now=NOW) or {})["virtualRouterIDs"]
    assert given == {"10.1.0.0": 10, "10.1.0.1": 13}
    notes = second.eip_events("v4")
    assert [(n.type, n.reason) for n in notes] == [("Warning", "RouterIDsExhausted")]
    assert "10.1.0.2" in notes[0].message
    assert second.eip_events("v4") == ()


def test_invalid_eips_get_conditions_and_one_warning_event_per_problem() -> None:
    reconciler = started(
        eip("a", "10.0.0.0/24", default=True),
        eip("b", "10.0.0.128/25", created=5),
        eip("c", "10.9.0.0/24", interface=""),
    )
    status = reconciler.eip_status("b", now=NOW)
    assert status is not None
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "False", "Overlap": "True", "Invalid": "False"}
    assert [e.reason for e in reconciler.eip_events("c")] == ["MissingInterface"]
    assert reconciler.eip_events("c") == ()
    assert reconciler.reconcile(key("x"), service("x", pool="c")).failure is (
        NoIPReason.POOL_INVALID
    )


def test_namespace_selector_and_priority_choose_the_pool() -> None:
    reconciler = Reconciler()
    reconciler.start(
        services=[],
        eips=[
            eip("default", "10.0.0.0/24", default=True),
            eip("team-low", "10.1.0.0/24", namespaceSelector={"team": "a"}, priority=10),
            eip("team-high", "10.2.0.0/24", namespaceSelector={"team": "a"}, priority=1),
        ],
        namespaces=[namespace("shop", {"team": "a"}), namespace("other")],
    )
    assert reconciler.reconcile(key("s", "shop"), service("s", namespace="shop")).ingress == (
        "10.2.0.0",
    )
    assert reconciler.reconcile(key("o", "other"), service("o", namespace="other")).ingress == (
        "10.0.0.0",
    )
    assert ingress_ips(service("x", ingress=("1.2.3.4",))) == ("1.2.3.4",)


def test_a_status_written_after_the_start_is_adopted_not_moved() -> None:
    reconciler = started(eip("pool", "10.0.0.0/24", default=True))
    late = service("late", ingress=("10.0.0.9",), finalizer=True)
    decision = reconciler.reconcile(key("late"), late)
    assert decision.ingress is None and decision.allocated == ()
    assert reconciler.allocator.holders("10.0.0.9") == (key("late"),)
