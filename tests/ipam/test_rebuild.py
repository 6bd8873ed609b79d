"""Rebuild from what Kubernetes stores: deterministic, conflicts resolved oldest first."""

from __future__ import annotations

import itertools

from openelb.ipam import (
    Allocation,
    EipState,
    NoIPReason,
    ServiceKey,
    ServiceState,
    eip_status,
    rebuild,
)

from .builders import eip, svc

A = ServiceKey("default", "a")
B = ServiceKey("default", "b")


def test_ingress_ips_are_restored_and_later_allocations_avoid_them() -> None:
    result = rebuild(
        [EipState(eip("p", "10.0.0.0/24", default=True))],
        [ServiceState(svc("a"), ("10.0.0.0",)), ServiceState(svc("b"), ("10.0.0.1",))],
    )
    assert result.conflicts == () and result.dropped == ()
    assert result.allocator.holders("10.0.0.1") == (B,)
    new = result.allocator.allocate(svc("c"))
    assert isinstance(new, Allocation) and new.ips == ("10.0.0.2",)
    again = result.allocator.allocate(svc("a"))
    assert isinstance(again, Allocation) and not again.changed


def test_two_claims_without_sharing_the_oldest_keeps_the_ip() -> None:
    services = [
        ServiceState(svc("b", created=1), ("10.0.0.5",)),
        ServiceState(svc("a", created=2), ("10.0.0.5",)),
    ]
    result = rebuild([EipState(eip("p", "10.0.0.0/24"))], services)
    (conflict,) = result.conflicts
    assert conflict.kept_by == (B,) and conflict.lost_by == A
    assert conflict.reason is NoIPReason.IP_IN_USE
    assert result.allocator.addresses(A) == ()


def test_same_age_claims_are_decided_by_namespace_then_name() -> None:
    services = [
        ServiceState(svc("b", namespace="ns1"), ("10.0.0.5",)),
        ServiceState(svc("a", namespace="ns2"), ("10.0.0.5",)),
    ]
    result = rebuild([EipState(eip("p", "10.0.0.0/24"))], services)
    assert result.conflicts[0].kept_by == (ServiceKey("ns1", "b"),)


def test_valid_sharing_is_restored_and_a_clashing_sharer_loses() -> None:
    services = [
        ServiceState(svc("a", key="k", ports=(80,), created=1), ("10.0.0.5",)),
        ServiceState(svc("b", key="k", ports=(81,), created=2), ("10.0.0.5",)),
        ServiceState(svc("c", key="k", ports=(80,), created=3), ("10.0.0.5",)),
    ]
    result = rebuild([EipState(eip("p", "10.0.0.0/24"))], services)
    assert result.allocator.holders("10.0.0.5") == (A, B)
    (conflict,) = result.conflicts
    assert conflict.lost_by == ServiceKey("default", "c")
    assert conflict.reason is NoIPReason.PORT_CLASH


def test_addresses_outside_pools_excluded_or_disabled_are_kept() -> None:
    eips = [
        EipState(eip("off", "10.0.1.0/24", disable=True)),
        EipState(eip("ex", "10.0.2.0/24", exclude=("10.0.2.9",))),
    ]
    services = [
        ServiceState(svc("a"), ("192.168.1.1",)),
        ServiceState(svc("b"), ("10.0.1.1",)),
        ServiceState(svc("c"), ("10.0.2.9",)),
    ]
    result = rebuild(eips, services)
    assert result.conflicts == ()
    assert [k.reason.value for k in eip_status(result.allocator, "off").kept] == ["PoolDisabled"]
    assert [k.reason.value for k in eip_status(result.allocator, "ex").kept] == ["Excluded"]
    assert result.allocator.holders("192.168.1.1") == (A,)


def test_eip_used_entries_restore_reservations_of_services_without_status() -> None:
    eips = [EipState(eip("p", "10.0.0.0/24", default=True), used={"10.0.0.7": "default/a"})]
    result = rebuild(eips, [ServiceState(svc("a"))])
    ((key, assigned),) = result.reserved
    assert key == A and assigned.ip == "10.0.0.7"
    again = result.allocator.allocate(svc("a"))
    assert isinstance(again, Allocation) and again.ips == ("10.0.0.7",)


def test_stale_eip_entries_are_dropped_not_restored() -> None:
    eips = [
        EipState(
            eip("p", "10.0.0.0/24"),
            used={
                "10.0.0.1": "default/gone",
                "10.0.0.2": "default/b",
                "10.0.0.3": "default/a",
                "bogus": "default/a",
            },
        )
    ]
    services = [ServiceState(svc("a", created=1), ("10.0.0.2",)), ServiceState(svc("b"))]
    result = rebuild(eips, services)
    assert result.allocator.holders("10.0.0.2") == (A,)
    assert result.allocator.holders("10.0.0.1") == ()
    assert result.allocator.holders("10.0.0.3") == ()
    whys = sorted((d.ip, d.why.split(":")[0]) for d in result.dropped)
    assert whys == [
        ("10.0.0.1", "no such Service"),
        ("10.0.0.2", "stale reservation"),
        ("10.0.0.3", "stale"),
        ("bogus", "address 'bogus' is not an IPv4 or IPv6 address"),
    ]


def test_unreadable_ingress_and_a_second_ip_of_one_family_are_dropped() -> None:
    result = rebuild(
        [EipState(eip("p", "10.0.0.0/24"))],
        [ServiceState(svc("a"), ("10.0.0.1", "10.0.0.2", "not-an-ip", "2001:db8::1"))],
    )
    assert [a.ip for a in result.allocator.addresses(A)] == ["10.0.0.1", "2001:db8::1"]
    assert sorted(d.ip for d in result.dropped) == ["10.0.0.2", "not-an-ip"]


def test_the_result_does_not_depend_on_input_order() -> None:
    eips = [
        EipState(eip("p", "10.0.0.0/24", created=1), used={"10.0.0.9": "default/d"}),
        EipState(eip("q", "10.0.0.8/29", created=2)),
    ]
    services = [
        ServiceState(svc("a", created=3), ("10.0.0.5",)),
        ServiceState(svc("b", created=1), ("10.0.0.5",)),
        ServiceState(svc("c", key="k", ports=(1,), created=2), ("10.0.0.6",)),
        ServiceState(svc("d", key="k", ports=(2,), created=2), ("10.0.0.6",)),
    ]
    outcomes = set()
    for eip_order in itertools.permutations(eips):
        for service_order in itertools.permutations(services):
            result = rebuild(eip_order, service_order)
            holders = tuple(
                (ip, result.allocator.holders(ip)) for ip in ("10.0.0.5", "10.0.0.6", "10.0.0.9")
            )
            outcomes.add((holders, result.conflicts, result.reserved, result.dropped))
    assert len(outcomes) == 1


def test_an_address_stranded_by_a_shrunk_pool_stays_attributed_to_it_after_rebuild() -> None:
    eips = [EipState(eip("p", "10.0.0.0/25"), used={"10.0.0.200": "default/a"})]
    result = rebuild(eips, [ServiceState(svc("a"), ("10.0.0.200",))])
    status = eip_status(result.allocator, "p")
    assert status.used == {"10.0.0.200": "default/a"}
    assert [k.reason.value for k in status.kept] == ["OutsidePool"]
