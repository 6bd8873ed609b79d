"""Pool edits never move an address a Service holds, and never hand it to someone else."""

from __future__ import annotations

from openelb.ipam import (
    Allocation,
    Allocator,
    KeptReason,
    NoIP,
    NoIPReason,
    ServiceKey,
    eip_conditions,
    eip_status,
)

from .builders import eip, svc

S = ServiceKey("default", "s")


def _holding_10_0_0_200() -> Allocator:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    result = ipam.allocate(svc("s", ip="10.0.0.200"))
    assert isinstance(result, Allocation)
    return ipam


def test_shrinking_a_pool_keeps_the_holder_and_the_pool_reports_it_outside() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips([eip("a", "10.0.0.0/25", default=True)])
    again = ipam.allocate(svc("s", ip="10.0.0.200"))
    assert isinstance(again, Allocation) and again.ips == ("10.0.0.200",) and not again.changed
    status = eip_status(ipam, "a")
    assert status.used == {"10.0.0.200": "default/s"}
    (kept,) = status.kept
    assert kept.reason is KeptReason.OUTSIDE_POOL and kept.holders == (S,)
    ready, _, _ = eip_conditions(ipam.pools["a"], status)
    assert (ready.status, ready.reason) == ("True", "KeptAddresses")
    assert "10.0.0.200" in ready.message


def test_disabling_a_pool_keeps_holders_and_stops_new_allocations() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips([eip("a", "10.0.0.0/24", default=True, disable=True)])
    assert ipam.holders("10.0.0.200") == (S,)
    again = ipam.allocate(svc("s"))
    assert isinstance(again, Allocation) and again.ips == ("10.0.0.200",)
    other = ipam.allocate(svc("other"))
    assert isinstance(other, NoIP) and other.reason is NoIPReason.NO_POOL
    status = eip_status(ipam, "a")
    assert [k.reason for k in status.kept] == [KeptReason.POOL_DISABLED]
    ready, _, _ = eip_conditions(ipam.pools["a"], status)
    assert (ready.status, ready.reason) == ("False", "Disabled")


def test_excluding_a_held_address_keeps_its_holder_but_not_after_release() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips([eip("a", "10.0.0.200/29", default=True, exclude=("10.0.0.200",))])
    assert [k.reason for k in eip_status(ipam, "a").kept] == [KeptReason.EXCLUDED]
    other = ipam.allocate(svc("other"))
    assert isinstance(other, Allocation) and other.ips == ("10.0.0.201",)
    ipam.release(S)
    newcomer = ipam.allocate(svc("newcomer"))
    assert isinstance(newcomer, Allocation) and newcomer.ips == ("10.0.0.202",)


def test_deleting_a_pool_keeps_holders_and_their_address_is_not_reused() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips([])
    assert ipam.holders("10.0.0.200") == (S,)
    (assigned,) = ipam.addresses(S)
    assert assigned.pool is None
    ipam.set_eips([eip("b", "10.0.0.200-10.0.0.201", default=True)])
    other = ipam.allocate(svc("other"))
    assert isinstance(other, Allocation) and other.ips == ("10.0.0.201",)
    assert eip_status(ipam, "b").used == {
        "10.0.0.200": "default/s",
        "10.0.0.201": "default/other",
    }


def test_a_pool_being_deleted_keeps_reporting_its_holders_and_hands_out_nothing() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips([eip("a", "10.0.0.0/24", default=True, deleting=True)])
    assert ipam.holders("10.0.0.200") == (S,)
    again = ipam.allocate(svc("s", ip="10.0.0.200"))
    assert isinstance(again, Allocation) and again.ips == ("10.0.0.200",) and not again.changed
    named = ipam.allocate(svc("named", pool="a"))
    assert isinstance(named, NoIP) and named.reason is NoIPReason.POOL_DELETING
    other = ipam.allocate(svc("other"))
    assert isinstance(other, NoIP) and other.reason is NoIPReason.NO_POOL
    status = eip_status(ipam, "a")
    assert status.used == {"10.0.0.200": "default/s"} and status.usage == 1
    assert [k.reason for k in status.kept] == [KeptReason.POOL_DELETING]
    ready, _, _ = eip_conditions(ipam.pools["a"], status)
    assert (ready.status, ready.reason) == ("False", "Deleting")
    assert "10.0.0.200" in ready.message
    ipam.release(S)
    assert eip_status(ipam, "a").usage == 0


def test_a_replacement_for_a_pool_being_deleted_is_valid_and_takes_over_its_holders() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips(
        [
            eip("a", "10.0.0.0/24", default=True, deleting=True),
            eip("b", "10.0.0.128/25", default=True, created=10),
        ]
    )
    assert not ipam.pools["b"].problems
    assert eip_status(ipam, "a").used == {}
    assert eip_status(ipam, "b").used == {"10.0.0.200": "default/s"}
    newcomer = ipam.allocate(svc("newcomer"))
    assert isinstance(newcomer, Allocation) and newcomer.ips == ("10.0.0.128",)


def test_a_new_overlapping_pool_never_hands_out_an_address_held_through_another() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips(
        [
            eip("a", "10.0.0.0/25", default=True, created=1),
            eip("b", "10.0.0.200-10.0.0.210", namespaces=("default",), created=2),
        ]
    )
    result = ipam.allocate(svc("other"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.201",)


def test_invalidating_a_pool_keeps_holders_and_reports_them() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips([eip("a", "10.0.0.0/24", default=True, interface="")])
    status = eip_status(ipam, "a")
    assert [k.reason for k in status.kept] == [KeptReason.POOL_INVALID]
    ready, _, invalid = eip_conditions(ipam.pools["a"], status)
    assert (ready.status, ready.reason) == ("False", "MissingInterface")
    assert (invalid.status, invalid.reason) == ("True", "MissingInterface")
    assert ipam.holders("10.0.0.200") == (S,)


def test_unchanged_pool_shapes_keep_their_state_across_edits() -> None:
    ipam = _holding_10_0_0_200()
    ipam.set_eips([eip("a", "10.0.0.0/24", default=True, priority=3)])
    other = ipam.allocate(svc("other"))
    assert isinstance(other, Allocation) and other.ips == ("10.0.0.0",)
    assert eip_status(ipam, "a").usage == 2
