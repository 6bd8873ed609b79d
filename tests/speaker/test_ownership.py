"""OwnershipTable: the same inputs give every node the same owner, whatever the event order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from openelb.speaker.ownership import (
    OwnershipTable,
    Placement,
    compute_placement,
    rank_key,
)

NODES = [f"node-{i}" for i in range(6)]
IPS = [f"10.0.0.{i}" for i in range(1, 30)] + ["fd00::1", "fd00::2"]


def test_lowest_digest_owns_and_next_backs_up() -> None:
    table = OwnershipTable()
    for n in NODES[:3]:
        table.set_node_live(n, True)
    table.set_vip("10.0.0.1")
    ranked = sorted(NODES[:3], key=lambda n: rank_key(n, "10.0.0.1"))
    assert table.placement("10.0.0.1") == Placement(ranked[0], ranked[1])


def test_losing_the_owner_promotes_the_backup_and_reports_only_affected_vips() -> None:
    table = OwnershipTable()
    for n in NODES:
        table.set_node_live(n, True)
    for ip in IPS:
        table.set_vip(ip)
    victim = table.owner(IPS[0])
    assert victim is not None
    held = table.owned_by(victim) | table.backed_up_by(victim)
    changes = table.set_node_live(victim, False)
    assert {c.ip for c in changes} == held
    for c in changes:
        if c.before.owner == victim:
            assert c.after.owner == c.before.backup
    assert victim not in {table.owner(ip) for ip in IPS}


def test_candidates_restrict_placement_and_none_means_everyone() -> None:
    table = OwnershipTable()
    for n in NODES:
        table.set_node_live(n, True)
    table.set_vip("10.0.0.9", candidates=["node-4"])
    assert table.placement("10.0.0.9") == Placement("node-4", None)
    table.set_vip("10.0.0.9", candidates=[])
    assert table.placement("10.0.0.9") == Placement(None, None)
    table.set_vip("10.0.0.9", candidates=None)
    assert table.placement("10.0.0.9") == compute_placement("10.0.0.9", live=NODES)


def test_removed_vip_is_reported_moving_to_nowhere() -> None:
    table = OwnershipTable()
    table.set_node_live("a", True)
    table.set_vip("10.0.0.1")
    (change,) = table.remove_vip("10.0.0.1")
    assert change.after == Placement(None, None)
    assert table.owned_by("a") == set()


def test_forgotten_node_leaves_every_ranking() -> None:
    table = OwnershipTable()
    for n in ("a", "b"):
        table.set_node_live(n, True)
    table.set_vip("10.0.0.1")
    table.forget_node("a")
    assert table.placement("10.0.0.1") == Placement("b", None)
    table.set_node_live("a", True)
    assert table.placement("10.0.0.1") == compute_placement("10.0.0.1", live=["a", "b"])


_event = st.one_of(
    st.tuples(st.just("node"), st.sampled_from(NODES), st.booleans()),
    st.tuples(
        st.just("vip"),
        st.sampled_from(IPS),
        st.one_of(st.none(), st.frozensets(st.sampled_from(NODES))),
    ),
    st.tuples(st.just("rmvip"), st.sampled_from(IPS), st.none()),
    st.tuples(st.just("forget"), st.sampled_from(NODES), st.none()),
)


def _final_state(
    events: list[tuple[str, str, object]],
) -> tuple[dict[str, bool], dict[str, object]]:
    live: dict[str, bool] = {}
    vips: dict[str, object] = {}
    for kind, name, arg in events:
        if kind == "node":
            live[name] = bool(arg)
        elif kind == "forget":
            live[name] = False
        elif kind == "vip":
            vips[name] = arg
        else:
            vips.pop(name, None)
    return live, vips


def _apply(table: OwnershipTable, events: list[tuple[str, str, object]]) -> None:
    for kind, name, arg in events:
        if kind == "node":
            table.set_node_live(name, bool(arg))
        elif kind == "forget":
            table.forget_node(name)
        elif kind == "vip":
            table.set_vip(name, candidates=arg)  # type: ignore[arg-type]
        else:
            table.remove_vip(name)


@settings(max_examples=300, deadline=None)
@given(st.lists(_event, max_size=60), st.randoms(use_true_random=False))
def test_any_event_order_gives_the_from_scratch_answer(
    events: list[tuple[str, str, object]], rnd: random.Random
) -> None:
    table = OwnershipTable()
    _apply(table, events)
    live, vips = _final_state(events)
    alive = [n for n, up in live.items() if up]
    for ip, cands in vips.items():
        assert table.placement(ip) == compute_placement(ip, live=alive, candidates=cands)  # type: ignore[arg-type]
    assert set(table.vips()) == set(vips)

    # Another node sees the final facts in a different order: same placements.
    other = OwnershipTable()
    facts: list[tuple[str, str, object]] = [("node", n, up) for n, up in live.items()]
    facts += [("vip", ip, c) for ip, c in vips.items()]
    rnd.shuffle(facts)
    _apply(other, facts)
    for ip in vips:
        assert other.placement(ip) == table.placement(ip)


@settings(max_examples=100, deadline=None)
@given(st.lists(_event, max_size=40))
def test_index_matches_placements(events: list[tuple[str, str, object]]) -> None:
    table = OwnershipTable()
    _apply(table, events)
    for n in NODES:
        assert table.owned_by(n) == {ip for ip in table.vips() if table.owner(ip) == n}
        assert table.backed_up_by(n) == {ip for ip in table.vips() if table.backup(ip) == n}
