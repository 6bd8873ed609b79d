"""Dual-stack: one address per family when the Service asks for two and pools of both exist."""

from __future__ import annotations

from openelb.ipam import Allocation, Allocator, Family, NoIP, NoIPReason, ServiceKey

from .builders import eip, svc

BOTH = ("IPv4", "IPv6")


def _both_defaults() -> Allocator:
    return Allocator(
        [eip("v4", "10.0.0.0/24", default=True), eip("v6", "2001:db8::/64", default=True)]
    )


def test_require_dual_stack_gets_one_address_per_family_primary_first() -> None:
    ipam = _both_defaults()
    result = ipam.allocate(svc("s", families=("IPv6", "IPv4"), policy="RequireDualStack"))
    assert isinstance(result, Allocation)
    assert result.ips == ("2001:db8::", "10.0.0.0")
    assert [a.pool for a in result.addresses] == ["v6", "v4"]


def test_prefer_dual_stack_gets_both_when_both_exist() -> None:
    ipam = _both_defaults()
    result = ipam.allocate(svc("s", families=BOTH, policy="PreferDualStack"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.0", "2001:db8::")
    assert result.degraded == ()


def test_require_dual_stack_without_a_v6_pool_gets_nothing_and_says_why() -> None:
    ipam = Allocator([eip("v4", "10.0.0.0/24", default=True)])
    result = ipam.allocate(svc("s", families=BOTH, policy="RequireDualStack"))
    assert isinstance(result, NoIP)
    assert result.reason is NoIPReason.NO_POOL
    assert [f.family for f in result.failures] == [Family.IPV6]
    assert "RequireDualStack" in result.message
    assert ipam.holders("10.0.0.0") == ()


def test_prefer_dual_stack_degrades_to_the_family_it_can_get() -> None:
    ipam = Allocator([eip("v6", "2001:db8::/64", default=True)])
    result = ipam.allocate(svc("s", families=BOTH, policy="PreferDualStack"))
    assert isinstance(result, Allocation)
    assert result.ips == ("2001:db8::",)
    (missing,) = result.degraded
    assert (missing.family, missing.reason) == (Family.IPV4, NoIPReason.NO_POOL)


def test_prefer_dual_stack_picks_up_the_missing_family_when_a_pool_appears() -> None:
    ipam = Allocator([eip("v4", "10.0.0.0/24", default=True)])
    ipam.allocate(svc("s", families=BOTH, policy="PreferDualStack"))
    ipam.set_eips(
        [eip("v4", "10.0.0.0/24", default=True), eip("v6", "2001:db8::/64", default=True)]
    )
    result = ipam.allocate(svc("s", families=BOTH, policy="PreferDualStack"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.0", "2001:db8::")


def test_prefer_dual_stack_fails_when_an_explicitly_requested_ip_fails() -> None:
    ipam = _both_defaults()
    result = ipam.allocate(
        svc("s", families=BOTH, policy="PreferDualStack", ip="10.0.0.1,2001:db9::1")
    )
    assert isinstance(result, NoIP) and result.reason is NoIPReason.IP_OUTSIDE_POOLS


def test_single_stack_uses_the_first_family_and_defaults_to_ipv4() -> None:
    ipam = _both_defaults()
    result = ipam.allocate(svc("v6-first", families=("IPv6", "IPv4"), policy="SingleStack"))
    assert isinstance(result, Allocation) and result.ips == ("2001:db8::",)
    result = ipam.allocate(svc("unset"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.0",)


def test_without_declared_families_the_requested_ip_decides_the_family() -> None:
    ipam = _both_defaults()
    result = ipam.allocate(svc("s", ip="2001:db8::99"))
    assert isinstance(result, Allocation) and result.ips == ("2001:db8::99",)


def test_a_requested_ip_of_a_family_the_service_lacks_is_a_family_mismatch() -> None:
    ipam = _both_defaults()
    result = ipam.allocate(svc("s", families=("IPv4",), ip="2001:db8::99"))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.FAMILY_MISMATCH


def test_one_requested_ip_and_one_eip_name_per_family() -> None:
    ipam = Allocator(
        [
            eip("a4", "10.0.0.0/24"),
            eip("b4", "10.0.1.0/24"),
            eip("a6", "2001:db8::/64"),
        ]
    )
    result = ipam.allocate(
        svc("s", families=BOTH, policy="RequireDualStack", pool="b4, a6", ip="2001:db8::7")
    )
    assert isinstance(result, Allocation) and result.ips == ("10.0.1.0", "2001:db8::7")
    two_v4 = ipam.allocate(svc("t", pool="a4,b4"))
    assert isinstance(two_v4, NoIP) and two_v4.reason is NoIPReason.BAD_REQUEST
    two_ips = ipam.allocate(svc("t", ip="10.0.0.1,10.0.0.2"))
    assert isinstance(two_ips, NoIP) and two_ips.reason is NoIPReason.BAD_REQUEST


def test_switching_to_single_stack_releases_the_secondary_family() -> None:
    ipam = _both_defaults()
    ipam.allocate(svc("s", families=BOTH, policy="RequireDualStack"))
    result = ipam.allocate(svc("s", families=("IPv4",), policy="SingleStack"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.0",)
    assert ipam.holders("2001:db8::") == ()
    assert [a.ip for a in ipam.addresses(ServiceKey("default", "s"))] == ["10.0.0.0"]
