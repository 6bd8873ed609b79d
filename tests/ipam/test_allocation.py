"""Handing out and taking back addresses: lowest free, requested, released, excluded, any size."""

from __future__ import annotations

from openelb.ipam import Allocation, Allocator, NoIP, NoIPReason, ServiceKey

from .builders import eip, svc


def _ips(result: Allocation | NoIP) -> tuple[str, ...]:
    assert isinstance(result, Allocation), result
    return result.ips


def test_hands_out_the_lowest_free_address_including_the_network_address_like_openelb() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/30", default=True)])
    got = [_ips(ipam.allocate(svc(f"s{i}")))[0] for i in range(4)]
    assert got == ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]
    full = ipam.allocate(svc("s4"))
    assert isinstance(full, NoIP) and full.reason is NoIPReason.POOL_FULL
    assert "Eip 'a' (10.0.0.0-10.0.0.3) has no free address" in full.message
    assert full.failures[0].pool == "a"


def test_a_released_address_is_handed_out_again_lowest_first() -> None:
    ipam = Allocator([eip("a", "10.0.0.10-10.0.0.20", default=True)])
    for i in range(5):
        ipam.allocate(svc(f"s{i}"))
    assert ipam.release(ServiceKey("default", "s1")) == ("10.0.0.11",)
    assert ipam.release(ServiceKey("default", "s3")) == ("10.0.0.13",)
    assert _ips(ipam.allocate(svc("new1"))) == ("10.0.0.11",)
    assert _ips(ipam.allocate(svc("new2"))) == ("10.0.0.13",)
    assert _ips(ipam.allocate(svc("new3"))) == ("10.0.0.15",)


def test_releasing_a_service_without_addresses_is_harmless() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    assert ipam.release(ServiceKey("default", "ghost")) == ()


def test_allocating_again_returns_the_same_address_unchanged() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    first = ipam.allocate(svc("s"))
    again = ipam.allocate(svc("s"))
    assert isinstance(first, Allocation) and isinstance(again, Allocation)
    assert first.changed and not again.changed
    assert first.ips == again.ips


def test_excluded_addresses_are_never_handed_out() -> None:
    ipam = Allocator(
        [
            eip(
                "a",
                "10.0.0.0/29",
                default=True,
                exclude=("10.0.0.0", "10.0.0.2-10.0.0.3", "10.0.0.6/31"),
            )
        ]
    )
    got = [_ips(ipam.allocate(svc(f"s{i}")))[0] for i in range(3)]
    assert got == ["10.0.0.1", "10.0.0.4", "10.0.0.5"]
    result = ipam.allocate(svc("more"))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.POOL_FULL


def test_an_excluded_address_cannot_be_requested() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", exclude=("10.0.0.1",))])
    result = ipam.allocate(svc("s", ip="10.0.0.1"))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.IP_EXCLUDED


def test_a_requested_address_is_skipped_by_later_automatic_allocations() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    assert _ips(ipam.allocate(svc("pinned", ip="10.0.0.0"))) == ("10.0.0.0",)
    assert _ips(ipam.allocate(svc("auto"))) == ("10.0.0.1",)


def test_a_requested_address_held_by_another_service_is_refused() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    ipam.allocate(svc("first"))
    result = ipam.allocate(svc("second", ip="10.0.0.0"))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.IP_IN_USE
    assert "default/first" in result.message


def test_a_slash_64_pool_hands_out_addresses_without_enumerating_it() -> None:
    ipam = Allocator([eip("v6", "2001:db8::/64", default=True)])
    got = [_ips(ipam.allocate(svc(f"s{i}", families=("IPv6",))))[0] for i in range(3)]
    assert got == ["2001:db8::", "2001:db8::1", "2001:db8::2"]
    last = ipam.allocate(svc("top", ip="2001:db8::ffff:ffff:ffff:ffff"))
    assert _ips(last) == ("2001:db8::ffff:ffff:ffff:ffff",)
    assert ipam.pools["v6"].free == 2**64 - 4


def test_a_slash_48_and_the_whole_ipv6_space_work_too() -> None:
    ipam = Allocator([eip("all", "::/0", default=True)])
    assert _ips(ipam.allocate(svc("s", families=("IPv6",)))) == ("::",)
    assert ipam.pools["all"].free == 2**128 - 1
    ipam = Allocator([eip("48", "2001:db8::/48", default=True, exclude=("2001:db8::/64",))])
    assert _ips(ipam.allocate(svc("s", families=("IPv6",)))) == ("2001:db8:0:1::",)


def test_changing_the_requested_ip_moves_the_service_when_the_new_one_is_free() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    ipam.allocate(svc("s", ip="10.0.0.5"))
    assert _ips(ipam.allocate(svc("s", ip="10.0.0.6"))) == ("10.0.0.6",)
    assert ipam.holders("10.0.0.5") == ()


def test_a_request_that_cannot_be_met_keeps_what_the_service_had() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    ipam.allocate(svc("other", ip="10.0.0.9"))
    ipam.allocate(svc("s", ip="10.0.0.5"))
    result = ipam.allocate(svc("s", ip="10.0.0.9"))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.IP_IN_USE
    assert [k.ip for k in result.kept] == ["10.0.0.5"]
    assert ipam.holders("10.0.0.5") == (ServiceKey("default", "s"),)


def test_changing_the_named_pool_moves_the_service_to_it() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True), eip("b", "10.0.1.0/24")])
    assert _ips(ipam.allocate(svc("s"))) == ("10.0.0.0",)
    assert _ips(ipam.allocate(svc("s", pool="b"))) == ("10.0.1.0",)
    assert ipam.holders("10.0.0.0") == ()


def test_dropping_a_request_annotation_keeps_the_address() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    ipam.allocate(svc("s", ip="10.0.0.77"))
    assert _ips(ipam.allocate(svc("s"))) == ("10.0.0.77",)


def test_addresses_and_holders_report_current_state() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24", default=True)])
    ipam.allocate(svc("s"))
    (assigned,) = ipam.addresses(ServiceKey("default", "s"))
    assert (assigned.ip, assigned.pool, assigned.shared_with) == ("10.0.0.0", "a", ())
    assert ipam.holders("10.0.0.0") == (ServiceKey("default", "s"),)
    assert ipam.holders("not an ip") == ()
