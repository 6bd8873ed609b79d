"""One IP for several Services: same sharing key, no (port, protocol) in common; else a reason."""

from __future__ import annotations

from openelb.ipam import Allocation, Allocator, NoIP, NoIPReason, ServiceKey

from .builders import eip, svc


def _pool() -> Allocator:
    return Allocator([eip("a", "10.0.0.0/24", default=True)])


def test_same_key_and_different_ports_share_a_requested_ip() -> None:
    ipam = _pool()
    ipam.allocate(svc("web", ip="10.0.0.5", key="k", ports=(80, 443)))
    result = ipam.allocate(svc("dns", ip="10.0.0.5", key="k", ports=((53, "UDP"), (53, "TCP"))))
    assert isinstance(result, Allocation)
    assert result.ips == ("10.0.0.5",)
    assert result.addresses[0].shared_with == (ServiceKey("default", "web"),)
    assert ipam.holders("10.0.0.5") == (ServiceKey("default", "web"), ServiceKey("default", "dns"))


def test_same_port_with_another_protocol_does_not_clash() -> None:
    ipam = _pool()
    ipam.allocate(svc("tcp", ip="10.0.0.5", key="k", ports=((53, "TCP"),)))
    result = ipam.allocate(svc("udp", ip="10.0.0.5", key="k", ports=((53, "udp"),)))
    assert isinstance(result, Allocation)


def test_a_port_clash_is_refused_naming_the_port_and_holder() -> None:
    ipam = _pool()
    ipam.allocate(svc("web", ip="10.0.0.5", key="k", ports=(80, 443)))
    result = ipam.allocate(svc("other", ip="10.0.0.5", key="k", ports=(8080, 443)))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.PORT_CLASH
    assert "443/TCP" in result.message and "default/web" in result.message


def test_a_different_key_is_refused() -> None:
    ipam = _pool()
    ipam.allocate(svc("web", ip="10.0.0.5", key="k1"))
    result = ipam.allocate(svc("other", ip="10.0.0.5", key="k2", ports=(81,)))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.SHARING_KEY_MISMATCH
    assert "'k1'" in result.message


def test_sharing_needs_a_key_on_both_sides() -> None:
    ipam = _pool()
    ipam.allocate(svc("keyless", ip="10.0.0.5"))
    result = ipam.allocate(svc("keyed", ip="10.0.0.5", key="k", ports=(81,)))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.IP_IN_USE
    ipam.allocate(svc("keyed2", ip="10.0.0.6", key="k"))
    result = ipam.allocate(svc("keyless2", ip="10.0.0.6", ports=(81,)))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.IP_IN_USE


def test_services_with_a_key_join_an_ip_of_that_key_before_taking_a_new_one() -> None:
    ipam = _pool()
    ipam.allocate(svc("first", key="k", ports=(80,)))
    ipam.allocate(svc("unrelated"))
    second = ipam.allocate(svc("second", key="k", ports=(443,)))
    third = ipam.allocate(svc("third", key="k", ports=(80,)))
    assert isinstance(second, Allocation) and second.ips == ("10.0.0.0",)
    assert isinstance(third, Allocation) and third.ips == ("10.0.0.2",)


def test_the_address_is_freed_only_when_the_last_sharer_leaves() -> None:
    ipam = _pool()
    ipam.allocate(svc("a", ip="10.0.0.0", key="k", ports=(80,)))
    ipam.allocate(svc("b", ip="10.0.0.0", key="k", ports=(81,)))
    ipam.release(ServiceKey("default", "a"))
    result = ipam.allocate(svc("c"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.1",)
    ipam.release(ServiceKey("default", "b"))
    result = ipam.allocate(svc("d"))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.0",)


def test_a_sharer_whose_ports_now_clash_leaves_the_ip_and_the_other_keeps_it() -> None:
    ipam = _pool()
    ipam.allocate(svc("a", ip="10.0.0.0", key="k", ports=(80,)))
    ipam.allocate(svc("b", key="k", ports=(81,)))
    result = ipam.allocate(svc("b", key="k", ports=(80,)))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.1",)
    assert ipam.holders("10.0.0.0") == (ServiceKey("default", "a"),)


def test_a_sole_holder_may_change_its_key_and_ports_freely() -> None:
    ipam = _pool()
    ipam.allocate(svc("a", key="k", ports=(80,)))
    result = ipam.allocate(svc("a", key="other", ports=(81,)))
    assert isinstance(result, Allocation) and not result.changed
    joined = ipam.allocate(svc("b", key="other", ports=(82,)))
    assert isinstance(joined, Allocation) and joined.ips == ("10.0.0.0",)


def test_a_full_pool_still_lets_a_compatible_service_share() -> None:
    ipam = Allocator([eip("one", "10.0.0.1", default=True)])
    ipam.allocate(svc("a", key="k", ports=(80,)))
    result = ipam.allocate(svc("b", key="k", ports=(81,)))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.1",)
    full = ipam.allocate(svc("c", key="k", ports=(80,)))
    assert isinstance(full, NoIP) and full.reason is NoIPReason.POOL_FULL


def test_automatic_sharing_never_joins_an_address_that_is_now_excluded() -> None:
    ipam = _pool()
    ipam.allocate(svc("a", key="k", ports=(80,)))
    ipam.set_eips([eip("a", "10.0.0.0/24", default=True, exclude=("10.0.0.0",))])
    result = ipam.allocate(svc("b", key="k", ports=(81,)))
    assert isinstance(result, Allocation) and result.ips == ("10.0.0.1",)


def test_sharing_is_refused_when_any_holder_has_another_key() -> None:
    ipam = _pool()
    ipam.allocate(svc("a", ip="10.0.0.3", key="k", ports=(80,)))
    ipam.allocate(svc("b", ip="10.0.0.3", key="k", ports=(81,)))
    result = ipam.allocate(svc("c", ip="10.0.0.3", key="j", ports=(82,)))
    assert isinstance(result, NoIP) and result.reason is NoIPReason.SHARING_KEY_MISMATCH
    assert "default/a, default/b" in result.message
