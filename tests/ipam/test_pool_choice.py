"""Which Eip a Service's address comes from: OpenELB's rules, in OpenELB's order."""

from __future__ import annotations

from openelb.ipam import Allocation, Allocator, NoIP, NoIPReason

from .builders import eip, svc


def _pool(result: Allocation | NoIP) -> str | None:
    assert isinstance(result, Allocation), result
    (assigned,) = result.addresses
    return assigned.pool


def _reason(result: Allocation | NoIP) -> NoIPReason:
    assert isinstance(result, NoIP), result
    return result.reason


def test_pool_annotation_names_the_eip() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True), eip("b", "10.0.1.0/24")])
    assert _pool(ipam.allocate(svc("s", pool="b"))) == "b"


def test_pool_annotation_naming_a_missing_eip_gives_no_ip() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    result = ipam.allocate(svc("s", pool="nope"))
    assert _reason(result) is NoIPReason.POOL_NOT_FOUND
    assert "'nope'" in result.message  # type: ignore[union-attr]


def test_requested_ip_picks_the_eip_holding_it() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True), eip("b", "10.0.1.0/24")])
    result = ipam.allocate(svc("s", ip="10.0.1.9"))
    assert isinstance(result, Allocation)
    assert result.ips == ("10.0.1.9",) and _pool(result) == "b"


def test_ip_annotation_wins_over_load_balancer_ip() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24")])
    result = ipam.allocate(svc("s", ip="10.0.0.7", lb_ip="10.0.0.8"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.7",)
    result = ipam.allocate(svc("t", lb_ip="10.0.0.8"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.8",)


def test_empty_ip_annotation_still_overrides_load_balancer_ip_as_in_openelb() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    result = ipam.allocate(svc("s", ip="", lb_ip="10.0.0.8"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.0",)


def test_requested_ip_must_be_inside_the_named_eip() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24"), eip("b", "10.0.1.0/24")])
    assert _reason(ipam.allocate(svc("s", pool="a", ip="10.0.1.1"))) is NoIPReason.IP_NOT_IN_POOL
    result = ipam.allocate(svc("t", pool="a", ip="10.0.0.42"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.42",)


def test_requested_ip_outside_every_eip_gives_no_ip() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    result = ipam.allocate(svc("s", lb_ip="192.168.9.9"))
    assert _reason(result) is NoIPReason.IP_OUTSIDE_POOLS
    assert "192.168.9.9" in result.message  # type: ignore[union-attr]


def test_unreadable_requested_ip_is_a_bad_request_naming_the_source() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    result = ipam.allocate(svc("s", ip="10.0.0.300"))
    assert _reason(result) is NoIPReason.BAD_REQUEST
    assert "eip.openelb.kubesphere.io/v1alpha1" in result.message  # type: ignore[union-attr]
    result = ipam.allocate(svc("s", lb_ip="nope"))
    assert "spec.loadBalancerIP" in result.message  # type: ignore[union-attr]


def test_namespace_list_makes_a_pool_eligible_before_the_default() -> None:
    ipam = Allocator(
        [
            eip("default", "10.0.0.0/24", default=True),
            eip("team", "10.0.1.0/24", namespaces=("team-a",)),
        ]
    )
    assert _pool(ipam.allocate(svc("s", namespace="team-a"))) == "team"
    assert _pool(ipam.allocate(svc("s", namespace="team-b"))) == "default"


def test_namespace_selector_matches_namespace_labels() -> None:
    ipam = Allocator(
        [
            eip("default", "10.0.0.0/24", default=True),
            eip("prod", "10.0.1.0/24", namespace_selector={"env": "prod", "tier": "web"}),
        ]
    )
    prod = {"env": "prod", "tier": "web", "x": "y"}
    assert _pool(ipam.allocate(svc("s", namespace="p", labels=prod))) == "prod"
    assert _pool(ipam.allocate(svc("s", namespace="q", labels={"env": "prod"}))) == "default"


def test_empty_namespace_selector_matches_every_labelled_namespace_as_in_openelb() -> None:
    ipam = Allocator([eip("all", "10.0.1.0/24", namespace_selector={})])
    assert _pool(ipam.allocate(svc("s", namespace="any"))) == "all"
    assert _reason(ipam.allocate(svc("t", namespace="bare", labels={}))) is NoIPReason.NO_POOL


def test_lower_priority_value_wins_among_eligible_pools() -> None:
    ipam = Allocator(
        [
            eip("p10", "10.0.0.0/24", namespaces=("ns",), priority=10, created=1),
            eip("p1", "10.0.1.0/24", namespaces=("ns",), priority=1, created=2),
            eip("p5", "10.0.2.0/24", namespaces=("ns",), priority=5, created=3),
        ]
    )
    assert _pool(ipam.allocate(svc("s", namespace="ns"))) == "p1"


def test_full_pools_sort_after_pools_with_room_whatever_their_priority() -> None:
    ipam = Allocator(
        [
            eip("small", "10.0.0.1", namespaces=("ns",), priority=1),
            eip("big", "10.0.1.0/24", namespaces=("ns",), priority=9),
        ]
    )
    assert _pool(ipam.allocate(svc("first", namespace="ns"))) == "small"
    assert _pool(ipam.allocate(svc("second", namespace="ns"))) == "big"


def test_priority_ties_go_to_the_older_pool() -> None:
    ipam = Allocator(
        [
            eip("young", "10.0.0.0/24", namespaces=("ns",), created=5),
            eip("old", "10.0.1.0/24", namespaces=("ns",), created=1),
        ]
    )
    assert _pool(ipam.allocate(svc("s", namespace="ns"))) == "old"


def test_disabled_and_invalid_pools_are_not_eligible() -> None:
    ipam = Allocator(
        [
            eip("default", "10.0.0.0/24", default=True),
            eip("off", "10.0.1.0/24", namespaces=("ns",), disable=True),
            eip("broken", "10.0.2.0/24", namespaces=("ns",), interface=""),
        ]
    )
    assert _pool(ipam.allocate(svc("s", namespace="ns"))) == "default"


def test_when_every_eligible_pool_is_full_there_is_no_fallback_to_the_default() -> None:
    ipam = Allocator(
        [eip("default", "10.0.0.0/24", default=True), eip("one", "10.0.1.1", namespaces=("ns",))]
    )
    assert _pool(ipam.allocate(svc("a", namespace="ns"))) == "one"
    assert _reason(ipam.allocate(svc("b", namespace="ns"))) is NoIPReason.POOL_FULL


def test_without_eligible_or_default_pool_there_is_no_ip() -> None:
    ipam = Allocator([eip("other", "10.0.0.0/24", namespaces=("elsewhere",))])
    result = ipam.allocate(svc("s", namespace="ns"))
    assert _reason(result) is NoIPReason.NO_POOL
    assert "namespace 'ns'" in result.message  # type: ignore[union-attr]


def test_a_disabled_default_pool_is_not_used() -> None:
    ipam = Allocator([eip("default", "10.0.0.0/24", default=True, disable=True)])
    assert _reason(ipam.allocate(svc("s"))) is NoIPReason.NO_POOL


def test_named_disabled_or_invalid_pool_says_which() -> None:
    ipam = Allocator(
        [eip("off", "10.0.0.0/24", disable=True), eip("broken", "10.0.1.0/24", interface="")]
    )
    assert _reason(ipam.allocate(svc("s", pool="off"))) is NoIPReason.POOL_DISABLED
    result = ipam.allocate(svc("s", pool="broken"))
    assert _reason(result) is NoIPReason.POOL_INVALID
    assert "spec.interface" in result.message  # type: ignore[union-attr]
    assert _reason(ipam.allocate(svc("s", ip="10.0.0.5"))) is NoIPReason.POOL_DISABLED


def test_the_newer_of_two_overlapping_pools_is_not_used() -> None:
    ipam = Allocator([eip("old", "10.0.0.0/24", created=1), eip("new", "10.0.0.128/25", created=2)])
    result = ipam.allocate(svc("s", ip="10.0.0.200"))
    assert _pool(result) == "old"
    assert _reason(ipam.allocate(svc("t", pool="new"))) is NoIPReason.POOL_INVALID


def test_named_pool_of_the_wrong_family_is_a_family_mismatch() -> None:
    ipam = Allocator([eip("v6", "2001:db8::/64")])
    result = ipam.allocate(svc("s", pool="v6", families=("IPv4",)))
    assert _reason(result) is NoIPReason.FAMILY_MISMATCH


def test_with_two_default_pools_of_a_family_the_older_one_is_the_default() -> None:
    ipam = Allocator(
        [
            eip("second", "10.0.1.0/24", default=True, created=2),
            eip("first", "10.0.0.0/24", default=True, created=1),
        ]
    )
    assert _pool(ipam.allocate(svc("s"))) == "first"
    assert _reason(ipam.allocate(svc("t", pool="second"))) is NoIPReason.POOL_INVALID


def test_each_family_has_its_own_default_pool() -> None:
    ipam = Allocator(
        [eip("d4", "10.0.0.0/24", default=True), eip("d6", "2001:db8::/64", default=True)]
    )
    assert _pool(ipam.allocate(svc("s4", families=("IPv4",)))) == "d4"
    assert _pool(ipam.allocate(svc("s6", families=("IPv6",)))) == "d6"


def test_namespace_pools_of_the_other_family_do_not_hide_the_default() -> None:
    ipam = Allocator(
        [eip("d4", "10.0.0.0/24", default=True), eip("team6", "2001:db8::/64", namespaces=("ns",))]
    )
    assert _pool(ipam.allocate(svc("s", namespace="ns", families=("IPv4",)))) == "d4"
