"""VRRP router IDs for VIP-mode Eips: unique, stable across restarts, from a configured range."""

from __future__ import annotations

import dataclasses

import pytest

from openelb.ipam import EipSpec, RouterIdIssue, RouterIdRange, assign_router_ids

from .builders import eip


def _vip(name: str, created: int, router_id: int | None = None) -> EipSpec:
    return dataclasses.replace(
        eip(name, f"10.0.{created}.0/24", protocol="vip", created=created), router_id=router_id
    )


def test_vip_eips_get_the_lowest_free_ids_oldest_first() -> None:
    result = assign_router_ids([_vip("b", 2), _vip("a", 1), eip("l2", "10.9.0.0/24")])
    assert result.ids == {"a": 1, "b": 2}
    assert result.notes == {}


def test_stored_ids_are_kept_so_a_restart_changes_nothing() -> None:
    first = assign_router_ids([_vip("a", 1), _vip("b", 2), _vip("c", 3)])
    stored = [_vip(name, i + 1, first.ids[name]) for i, name in enumerate("abc")]
    # Deleting "a" frees its ID but does not renumber the others.
    again = assign_router_ids([*stored[1:], _vip("d", 4)])
    assert again.ids == {"b": 2, "c": 3, "d": 1}


def test_a_duplicate_stored_id_stays_with_the_older_eip() -> None:
    result = assign_router_ids([_vip("new", 5, 7), _vip("old", 1, 7)])
    assert result.ids["old"] == 7
    assert result.ids["new"] == 1
    assert result.notes["new"].issue is RouterIdIssue.DUPLICATE


def test_ids_come_from_the_configured_range_minus_reserved_ones() -> None:
    id_range = RouterIdRange(first=100, last=103, reserved=frozenset({100, 102}))
    result = assign_router_ids(
        [_vip("a", 1), _vip("b", 2, 50)],
        id_range,
    )
    assert result.ids == {"a": 101, "b": 103}
    assert result.notes["b"].issue is RouterIdIssue.OUT_OF_RANGE


def test_exhaustion_is_reported_as_a_typed_reason() -> None:
    id_range = RouterIdRange(first=10, last=11)
    result = assign_router_ids([_vip(n, i) for i, n in enumerate("abc")], id_range)
    assert result.ids == {"a": 10, "b": 11}
    assert result.notes["c"].issue is RouterIdIssue.EXHAUSTED
    assert "10-11" in result.notes["c"].message


def test_a_range_outside_vrrp_ids_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="1-255"):
        RouterIdRange(first=0, last=10)
    with pytest.raises(ValueError, match="1-255"):
        RouterIdRange(first=1, last=256)
