"""The manager against the embedded apiserver with the real client: what a user sees.

Each test starts the apiserver, creates Eips and Services as a user would, runs a manager (fast
Lease settings) and waits for the statuses and Events to converge. Waits have deadlines but
nothing asserts on time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from openelb.kube.client import KubeApi, connect
from openelb.kube.errors import NotFound
from openelb.kube.resources import EIPS, NAMESPACES, SERVICES
from openelb.manager import EIP_FINALIZER, FINALIZER
from openelb.manager.conditions import stored_condition
from tests.manager.harness import (
    check_invariants,
    create,
    eip_status,
    ensure_namespace,
    events_for,
    get_service,
    ingress_of,
    running_manager,
    wait_for,
    wait_idle,
    warning_reasons,
)
from tests.manager.objects import eip, service


@pytest.fixture
def api(kubeconfig: Path) -> Any:
    client = connect(str(kubeconfig))
    yield client
    client.close()


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or () if c["type"] == kind)


def test_opted_in_services_get_addresses_and_others_are_never_touched(api: KubeApi) -> None:
    create(api, eip("pool", "10.0.0.0/30", default=True))
    create(api, service("by-annotation"))
    create(api, service("by-class", opt_in="class"))
    create(api, service("other-class", opt_in="none", lb_class="example.com/lb"))
    create(api, service("no-opt-in", opt_in="none"))
    create(api, service("cluster-ip", type="ClusterIP"))
    with running_manager(api):
        wait_for(
            "addresses", lambda: ingress_of(api, "by-annotation") and ingress_of(api, "by-class")
        )
        status = wait_for(
            "Eip status",
            lambda: eip_status(api, "pool").get("usage") == 2 and eip_status(api, "pool"),
        )
    assert ingress_of(api, "by-annotation") == ("10.0.0.0",)
    assert ingress_of(api, "by-class") == ("10.0.0.1",)
    for name in ("other-class", "no-opt-in", "cluster-ip"):
        raw = get_service(api, name)
        assert raw is not None and not raw["metadata"].get("finalizers")
        assert ingress_of(api, name) == () and events_for(api, name) == []
    assert {
        k: status[k]
        for k in ("poolSize", "poolSizeExact", "usage", "firstIP", "lastIP", "v4", "occupied")
    } == {
        "poolSize": 4,
        "poolSizeExact": "4",
        "usage": 2,
        "firstIP": "10.0.0.0",
        "lastIP": "10.0.0.3",
        "v4": True,
        "occupied": False,
    }
    assert status["used"] == {"10.0.0.0": "default/by-annotation", "10.0.0.1": "default/by-class"}
    assert _condition(status, "Ready")["status"] == "True"
    assert ("Normal", "IPAllocated") in {(t, r) for t, r, _ in events_for(api, "by-class")}
    assert FINALIZER in get_service(api, "by-class")["metadata"]["finalizers"]  # type: ignore[index]
    check_invariants(api)


def test_ipv6_dual_stack_and_requested_addresses(api: KubeApi) -> None:
    create(api, eip("v4", "10.0.0.0/24", default=True))
    create(api, eip("v6", "2001:db8::/64", default=True))
    create(api, service("six", families=("IPv6",)))
    create(api, service("dual", families=("IPv4", "IPv6"), policy="RequireDualStack"))
    create(api, service("asks", ip="10.0.0.77"))
    create(api, service("asks-spec", lb_ip="2001:db8::99", families=("IPv6",)))
    with running_manager(api):
        wait_for(
            "all addresses",
            lambda: all(ingress_of(api, n) for n in ("six", "dual", "asks", "asks-spec")),
        )
    assert ingress_of(api, "six") == ("2001:db8::",)
    assert ingress_of(api, "dual") == ("10.0.0.0", "2001:db8::1")
    assert ingress_of(api, "asks") == ("10.0.0.77",)
    assert ingress_of(api, "asks-spec") == ("2001:db8::99",)
    v6 = eip_status(api, "v6")
    assert v6["poolSizeExact"] == str(2**64) and v6["poolSize"] == 2**63 - 1 and v6["v4"] is False
    check_invariants(api)


def test_sharing_is_allowed_with_one_key_and_refused_with_a_reason(api: KubeApi) -> None:
    create(api, eip("pool", "10.0.0.0/24", default=True))
    create(api, service("web", key="shop", ports=(80,), ip="10.0.0.10"))
    create(api, service("tls", key="shop", ports=(443,), ip="10.0.0.10"))
    create(api, service("clash", key="shop", ports=(80,), ip="10.0.0.10"))
    create(api, service("stranger", key="other", ports=(8080,), ip="10.0.0.10"))
    with running_manager(api):
        wait_for("sharing", lambda: ingress_of(api, "web") and ingress_of(api, "tls"))
        wait_for("port clash event", lambda: "PortClash" in warning_reasons(api, "clash"))
        wait_for("key event", lambda: "SharingKeyMismatch" in warning_reasons(api, "stranger"))
    assert ingress_of(api, "web") == ingress_of(api, "tls") == ("10.0.0.10",)
    assert ingress_of(api, "clash") == ingress_of(api, "stranger") == ()
    assert eip_status(api, "pool")["used"] == {"10.0.0.10": "default/web;default/tls"}
    check_invariants(api)


def test_full_and_disabled_pools_warn_and_a_waiting_service_gets_an_address_later(
    api: KubeApi,
) -> None:
    create(api, eip("tiny", "10.0.0.1", default=True))
    create(api, eip("off", "10.0.5.0/24", disable=True))
    create(api, service("first", created=1))
    with running_manager(api):
        wait_for("first", lambda: ingress_of(api, "first"))
        create(api, service("second"))
        create(api, service("wants-off", pool="off"))
        wait_for("full", lambda: "PoolFull" in warning_reasons(api, "second"))
        wait_for("disabled", lambda: "PoolDisabled" in warning_reasons(api, "wants-off"))
        assert _condition(eip_status(api, "off"), "Ready")["reason"] == "Disabled"
        assert eip_status(api, "tiny")["occupied"] is True
        # The reason also stays on the Service itself, as a condition.
        waiting = wait_for("condition", lambda: _service_condition(api, "second"))
        assert (waiting["status"], waiting["reason"]) == ("False", "PoolFull")
        assert _service_condition(api, "wants-off")["reason"] == "PoolDisabled"
        # The user makes room: the waiting Service gets an address without being touched.
        tiny = api.get(EIPS, "tiny")
        tiny["spec"]["address"] = "10.0.0.1-10.0.0.2"
        api.replace(EIPS, tiny)
        wait_for("second after growth", lambda: ingress_of(api, "second") == ("10.0.0.2",))
        assigned = wait_for(
            "condition flips",
            lambda: (c := _service_condition(api, "second")) and c["status"] == "True" and c,
        )
        assert assigned["reason"] == "Assigned" and "10.0.0.2" in assigned["message"]
    check_invariants(api)


def _service_condition(api: KubeApi, name: str) -> dict[str, Any]:
    raw = get_service(api, name)
    return dict(stored_condition(raw) or {}) if raw else {}


def test_namespace_selector_priority_and_default_pool(api: KubeApi) -> None:
    ensure_namespace(api, "shop", {"team": "shop"})
    ensure_namespace(api, "misc")
    create(api, eip("default", "10.0.0.0/24", default=True))
    create(api, eip("shop-low", "10.1.0.0/24", namespaceSelector={"team": "shop"}, priority=10))
    create(api, eip("shop-high", "10.2.0.0/24", namespaceSelector={"team": "shop"}, priority=1))
    create(api, eip("by-name", "10.3.0.0/24", namespaces=["misc"]))
    create(api, service("s", namespace="shop"))
    create(api, service("m", namespace="misc"))
    create(api, service("d"))
    with running_manager(api):
        wait_for(
            "all",
            lambda: (
                ingress_of(api, "s", "shop")
                and ingress_of(api, "m", "misc")
                and ingress_of(api, "d")
            ),
        )
    assert ingress_of(api, "s", "shop") == ("10.2.0.0",)
    assert ingress_of(api, "m", "misc") == ("10.3.0.0",)
    assert ingress_of(api, "d") == ("10.0.0.0",)
    check_invariants(api)


def test_pool_edits_never_move_an_address_and_the_pool_says_so(api: KubeApi) -> None:
    create(api, eip("pool", "10.0.0.0/24", default=True))
    create(api, service("high", ip="10.0.0.200"))
    create(api, service("low", ip="10.0.0.3"))
    with running_manager(api):
        wait_for("both", lambda: ingress_of(api, "high") and ingress_of(api, "low"))
        pool = api.get(EIPS, "pool")
        pool["spec"]["address"] = "10.0.0.0/25"
        pool["spec"]["exclude"] = ["10.0.0.3"]
        api.replace(EIPS, pool)

        def kept() -> dict[str, Any] | None:
            ready = _condition(eip_status(api, "pool"), "Ready")
            return (
                ready
                if ready["reason"] == "KeptAddresses" and "10.0.0.3" in ready["message"]
                else None
            )

        ready = wait_for("kept condition", kept)
        assert "10.0.0.200" in ready["message"]
        pool = api.get(EIPS, "pool")
        pool["spec"]["disable"] = True
        api.replace(EIPS, pool)
        wait_for(
            "disabled", lambda: _condition(eip_status(api, "pool"), "Ready")["reason"] == "Disabled"
        )
    assert ingress_of(api, "high") == ("10.0.0.200",)
    assert ingress_of(api, "low") == ("10.0.0.3",)
    check_invariants(api)


def test_type_change_and_deletion_release_addresses(api: KubeApi) -> None:
    create(api, eip("pool", "10.0.0.0/24", default=True))
    create(api, service("changes"))
    create(api, service("goes", created=1))
    with running_manager(api):
        wait_for("both", lambda: ingress_of(api, "changes") and ingress_of(api, "goes"))
        raw = get_service(api, "changes")
        assert raw is not None
        raw["spec"]["type"] = "ClusterIP"
        api.replace(SERVICES, raw)
        api.delete(SERVICES, "goes", namespace="default")
        wait_for("deleted", lambda: get_service(api, "goes") is None)
        wait_for(
            "released",
            lambda: (
                not ingress_of(api, "changes")
                and not (get_service(api, "changes") or {"metadata": {}})["metadata"].get(
                    "finalizers"
                )
            ),
        )
        wait_for("used empty", lambda: eip_status(api, "pool").get("used") == {})
    assert "IPReleased" in {r for _, r, _ in events_for(api, "changes")}
    check_invariants(api)


def test_restart_keeps_every_address_and_writes_nothing(api: KubeApi) -> None:
    create(api, eip("pool", "10.0.0.0/24", default=True))
    names = [f"svc-{i}" for i in range(8)]
    for i, name in enumerate(names):
        create(api, service(name, created=i))
    with running_manager(api, identity="first"):
        wait_for("all", lambda: all(ingress_of(api, n) for n in names))
        wait_for("eip", lambda: eip_status(api, "pool").get("usage") == len(names))
    before = {n: get_service(api, n) for n in names}
    eip_before = api.get(EIPS, "pool")
    with running_manager(api, identity="second") as second:
        wait_for("second leads and rebuilt", second.manager.synced.is_set)
        wait_idle(second.manager)
    after = {n: get_service(api, n) for n in names}
    assert {n: ingress_of(api, n) for n in names} == {
        n: tuple(i["ip"] for i in before[n]["status"]["loadBalancer"]["ingress"])
        for n in names  # type: ignore[index]
    }
    assert [a["metadata"]["resourceVersion"] for a in after.values()] == [  # type: ignore[index]
        b["metadata"]["resourceVersion"]
        for b in before.values()  # type: ignore[index]
    ]
    assert (
        api.get(EIPS, "pool")["metadata"]["resourceVersion"]
        == eip_before["metadata"]["resourceVersion"]
    )
    check_invariants(api)


def test_only_the_leader_writes_and_a_standby_takes_over(api: KubeApi) -> None:
    create(api, eip("pool", "10.0.0.0/24", default=True))
    create(api, service("a"))
    with running_manager(api, identity="one") as one, running_manager(api, identity="two") as two:
        wait_for("a", lambda: ingress_of(api, "a"))
        leader, standby = (one, two) if one.manager.leading.is_set() else (two, one)
        assert not standby.manager.leading.is_set()
        assert leader.manager.write_attempts > 0 and standby.manager.write_attempts == 0
        leader.close()
        create(api, service("b", created=5))
        wait_for("b from the standby", lambda: ingress_of(api, "b"))
        assert standby.manager.leading.is_set()
    assert ingress_of(api, "a") == ("10.0.0.0",) and ingress_of(api, "b") == ("10.0.0.1",)
    check_invariants(api)


def test_vip_mode_addresses_get_router_ids_in_the_eip_status(api: KubeApi) -> None:
    create(api, eip("vip", "10.9.0.0/24", default=True, protocol="vip"))
    create(api, service("a", created=1))
    create(api, service("b", created=2))
    with running_manager(api):
        status = wait_for(
            "ids",
            lambda: (
                len(eip_status(api, "vip").get("virtualRouterIDs") or {}) == 2
                and eip_status(api, "vip")
            ),
        )
    ids = status["virtualRouterIDs"]
    assert sorted(ids.values()) == [1, 2] and set(ids) == set(status["used"])


def test_labelling_a_namespace_brings_its_pool_and_deleting_a_pool_moves_nobody(
    api: KubeApi,
) -> None:
    ensure_namespace(api, "late")
    create(api, eip("team", "10.4.0.0/24", namespaceSelector={"team": "late"}))
    create(api, service("waits", namespace="late"))
    with running_manager(api):
        wait_for("no pool", lambda: "NoPool" in warning_reasons(api, "waits", "late"))
        namespace = api.get(NAMESPACES, "late")
        namespace["metadata"].setdefault("labels", {})["team"] = "late"
        api.replace(NAMESPACES, namespace)
        wait_for("address", lambda: ingress_of(api, "waits", "late") == ("10.4.0.0",))
        api.delete(EIPS, "team")
        create(api, eip("other", "10.5.0.0/24", default=True))
        create(api, service("new"))
        wait_for("new", lambda: ingress_of(api, "new") == ("10.5.0.0",))
        # The deleted pool waits for its holder and keeps listing it: nothing goes unlisted.
        ready = wait_for(
            "deleting condition",
            lambda: (
                (c := _condition(eip_status(api, "team"), "Ready"))["reason"] == "Deleting" and c
            ),
        )
        assert ready["status"] == "False" and "10.4.0.0" in ready["message"]
        assert eip_status(api, "team")["used"] == {"10.4.0.0": "late/waits"}
        assert api.get(EIPS, "team")["metadata"].get("deletionTimestamp")
        check_invariants(api)
        assert ingress_of(api, "waits", "late") == ("10.4.0.0",)
        api.delete(SERVICES, "waits", namespace="late")
        wait_for("pool gone", lambda: _gone(api, "team"))
        check_invariants(api)
    assert ingress_of(api, "new") == ("10.5.0.0",)


def test_deleting_an_unused_pool_goes_ahead_and_a_migrated_finalizer_is_released(
    api: KubeApi,
) -> None:
    migrated = eip("migrated", "10.6.0.0/24")
    migrated["metadata"]["finalizers"] = [EIP_FINALIZER]  # as OpenELB left it
    create(api, migrated)
    create(api, eip("fresh", "10.7.0.0/24"))
    with running_manager(api):
        wait_for(
            "finalizer added",
            lambda: EIP_FINALIZER in (api.get(EIPS, "fresh")["metadata"].get("finalizers") or ()),
        )
        api.delete(EIPS, "migrated")
        api.delete(EIPS, "fresh")
        wait_for("both gone", lambda: _gone(api, "migrated") and _gone(api, "fresh"))


def test_disabling_or_shrinking_a_pool_under_a_dual_stack_service_moves_nothing(
    api: KubeApi,
) -> None:
    create(api, eip("v4", "10.8.0.0/24", default=True))
    create(api, eip("v6", "2001:db8:8::/64", default=True))
    create(api, service("both", families=("IPv4", "IPv6"), policy="RequireDualStack"))
    with running_manager(api) as run:
        wait_for("both families", lambda: len(ingress_of(api, "both")) == 2)
        before = ingress_of(api, "both")
        v4 = api.get(EIPS, "v4")
        v4["spec"]["disable"] = True
        api.replace(EIPS, v4)
        v6 = api.get(EIPS, "v6")
        v6["spec"]["address"] = "2001:db8:9::/64"
        api.replace(EIPS, v6)
        wait_for(
            "v6 reports the kept address",
            lambda: _condition(eip_status(api, "v6"), "Ready")["reason"] == "KeptAddresses",
        )
        wait_idle(run.manager)
        assert ingress_of(api, "both") == before
        assert eip_status(api, "v4")["usage"] == 1 and eip_status(api, "v6")["usage"] == 1
        check_invariants(api)


def _gone(api: KubeApi, name: str) -> bool:
    try:
        api.get(EIPS, name)
    except NotFound:
        return True
    return False
