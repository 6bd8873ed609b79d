"""Eip status and conditions, exact and in OpenELB's shape."""

from __future__ import annotations

from openelb.ipam import Allocator, eip_conditions, eip_status

from .builders import eip, svc


def test_status_counts_addresses_and_lists_holders_in_joining_order() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/30", default=True)])
    ipam.allocate(svc("x", ip="10.0.0.2", key="k", ports=(80,)))
    ipam.allocate(svc("y", ip="10.0.0.2", key="k", ports=(81,)))
    ipam.allocate(svc("z", namespace="other"))
    status = eip_status(ipam, "a")
    assert status.to_dict() == {
        "poolSize": 4,
        "poolSizeExact": "4",
        "usage": 2,
        "used": {"10.0.0.0": "other/z", "10.0.0.2": "default/x;default/y"},
        "firstIP": "10.0.0.0",
        "lastIP": "10.0.0.3",
        "v4": True,
        "occupied": False,
    }


def test_occupied_when_every_address_is_held_or_excluded() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/30", default=True, exclude=("10.0.0.0-10.0.0.2",))])
    assert not eip_status(ipam, "a").occupied
    ipam.allocate(svc("x"))
    status = eip_status(ipam, "a")
    assert status.occupied and status.usage == 1


def test_huge_pool_size_is_exact_and_clamped_for_the_crd_integer() -> None:
    ipam = Allocator([eip("v6", "2001:db8::/48")])
    fields = eip_status(ipam, "v6").to_dict()
    assert fields["poolSize"] == 2**63 - 1
    assert fields["poolSizeExact"] == str(2**80)
    assert fields["v4"] is False
    assert fields["lastIP"] == "2001:db8:0:ffff:ffff:ffff:ffff:ffff"


def test_an_unparsable_pool_has_an_empty_status_and_says_why() -> None:
    ipam = Allocator([eip("bad", "10.0.0.0-10.0.0")])
    status = eip_status(ipam, "bad")
    assert (status.pool_size, status.first_ip, status.usage) == (0, "", 0)
    ready, overlap, invalid = eip_conditions(ipam.pools["bad"], status)
    assert (ready.status, ready.reason) == ("False", "BadAddress")
    assert overlap.status == "False"
    assert (invalid.status, invalid.reason) == ("True", "BadAddress")
    assert "range end" in invalid.message


def test_conditions_of_a_healthy_pool() -> None:
    ipam = Allocator([eip("a", "10.0.0.0/24")])
    ready, overlap, invalid = eip_conditions(ipam.pools["a"], eip_status(ipam, "a"))
    assert (ready.type, ready.status, ready.reason) == ("Ready", "True", "Ready")
    assert (overlap.type, overlap.status) == ("Overlap", "False")
    assert (invalid.type, invalid.status) == ("Invalid", "False")


def test_overlap_conditions_on_both_pools_only_the_newer_is_not_ready() -> None:
    ipam = Allocator([eip("old", "10.0.0.0/24", created=1), eip("new", "10.0.0.9", created=2)])
    old = eip_conditions(ipam.pools["old"], eip_status(ipam, "old"))
    new = eip_conditions(ipam.pools["new"], eip_status(ipam, "new"))
    assert (old[0].status, old[1].status) == ("True", "True")
    assert (new[0].status, new[0].reason, new[1].status) == ("False", "Overlap", "True")
    assert new[2].status == "False"


def test_an_address_in_two_pools_counts_against_the_usable_one_only() -> None:
    ipam = Allocator([eip("old", "10.0.0.0/24", created=1), eip("new", "10.0.0.9", created=2)])
    ipam.allocate(svc("s", ip="10.0.0.9"))
    assert eip_status(ipam, "old").used == {"10.0.0.9": "default/s"}
    assert eip_status(ipam, "new").used == {}


def test_warnings_show_in_the_ready_message() -> None:
    ipam = Allocator([eip("a", "10.0.0.5/24")])
    ready, _, invalid = eip_conditions(ipam.pools["a"], eip_status(ipam, "a"))
    assert ready.status == "True" and "host bits" in ready.message
    assert invalid.status == "False"
