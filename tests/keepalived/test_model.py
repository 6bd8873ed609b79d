"""Planning VRRP instances: grouping, ranking, peers, and refusing what would break VRRP."""

from __future__ import annotations

from openelb.config import KeepalivedSettings
from openelb.keepalived.model import IssueKind, instance_name, plan, rank_priority
from tests.keepalived.builders import state, vip

SETTINGS = KeepalivedSettings()


def test_vips_of_one_eip_share_an_instance_with_unicast_peers() -> None:
    p = plan(state("a", vip("10.250.0.201"), vip("10.250.0.200")), SETTINGS)
    (inst,) = p.instances
    assert inst.name == "oelb_pool1_v4_7"
    assert inst.vips == ("10.250.0.200", "10.250.0.201")
    assert inst.source == "10.250.0.11"
    assert inst.peers == ("10.250.0.12", "10.250.0.13")
    assert p.vip_instance == {"10.250.0.200": inst.name, "10.250.0.201": inst.name}
    assert p.vips_by_interface() == {"eth0": {"10.250.0.200", "10.250.0.201"}}


def test_dual_stack_gets_one_instance_per_family_with_the_same_router_id() -> None:
    p = plan(state("b", vip("10.250.0.200"), vip("fd0e:1b:0::200")), SETTINGS)
    assert [(i.family, i.router_id, i.vips) for i in p.instances] == [
        (4, 7, ("10.250.0.200",)),
        (6, 7, ("fd0e:1b::200",)),
    ]
    assert p.instances[1].source == "fd0e:1b::12"
    assert p.instances[1].peers == ("fd0e:1b::11", "fd0e:1b::13")


def test_every_node_agrees_on_priorities_and_exactly_one_is_preferred() -> None:
    vips = [vip(f"10.250.1.{rid}", eip=f"e{rid}", router_id=rid) for rid in range(1, 7)]
    plans = {n: plan(state(n, *vips), SETTINGS) for n in ("a", "b", "c")}
    preferred: dict[str, str] = {}
    for rid in range(1, 7):
        prios = {
            n: next(i for i in p.instances if i.router_id == rid).priority for n, p in plans.items()
        }
        assert len(set(prios.values())) == 3  # no ties
        top = max(prios, key=lambda n: prios[n])
        assert all(
            i.preferred == top for p in plans.values() for i in p.instances if i.router_id == rid
        )
        preferred[f"e{rid}"] = top
    # Spread: six Eips do not all prefer one node.
    assert len(set(preferred.values())) > 1


def test_many_router_ids_spread_over_the_nodes() -> None:
    names = ["a", "b", "c", "d"]
    counts = {n: 0 for n in names}
    for rid in range(1, 201):
        counts[rank_priority(node="a", eligible=names, router_id=rid, settings=SETTINGS)[1]] += 1
    assert all(20 <= c <= 80 for c in counts.values()), counts


def test_a_node_leaving_moves_only_the_instances_it_was_preferred_for() -> None:
    names = ["a", "b", "c", "d", "e"]
    for rid in range(1, 101):
        before = rank_priority(node="a", eligible=names, router_id=rid, settings=SETTINGS)[1]
        for gone in names:
            rest = [n for n in names if n != gone]
            after = rank_priority(node=rest[0], eligible=rest, router_id=rid, settings=SETTINGS)[1]
            if gone != before:
                assert after == before, (rid, gone)


def test_ranking_keeps_distinct_priorities_for_large_node_sets() -> None:
    names = [f"n{i:03d}" for i in range(150)]
    prios = {
        n: rank_priority(node=n, eligible=names, router_id=9, settings=SETTINGS)[0] for n in names
    }
    assert len(set(prios.values())) == 150 and min(prios.values()) >= 1


def test_node_not_eligible_runs_no_instance() -> None:
    p = plan(state("c", vip("10.250.0.200", eligible=("a", "b"))), SETTINGS)
    assert p.instances == () and p.issues == ()


def test_single_eligible_node_advertises_to_itself_to_stay_unicast() -> None:
    (inst,) = plan(state("a", vip("10.250.0.200", eligible=("a",))), SETTINGS).instances
    assert inst.peers == (inst.source,) and inst.priority == SETTINGS.priority_top


def test_same_router_id_with_another_node_set_is_a_conflict_on_every_node() -> None:
    vips = (
        vip("10.250.0.200", eip="x", router_id=5, eligible=("a", "b")),
        vip("10.250.0.201", eip="y", router_id=5, eligible=("b", "c")),
    )
    for node in ("a", "b", "c"):
        p = plan(state(node, *vips), SETTINGS)
        assert [i.kind for i in p.issues] == [IssueKind.ROUTER_ID_CONFLICT]
        assert p.issues[0].vip == "10.250.0.201" and "'x'" in p.issues[0].message
        assert all(i.eip == "x" for i in p.instances)


def test_missing_own_address_of_the_family_is_reported() -> None:
    s = state("a", vip("fd0e:1b::200"))
    s = type(s)(s.node, s.vips, {**s.nodes, "a": type(s.nodes["a"])("a", "10.250.0.11", None)})
    p = plan(s, SETTINGS)
    assert p.instances == ()
    assert [i.kind for i in p.issues] == [IssueKind.NO_NODE_ADDRESS]
    # Multicast needs no own address.
    assert plan(s, KeepalivedSettings(unicast=False)).instances


def test_bad_inputs_become_issues_not_config() -> None:
    p = plan(
        state(
            "a",
            vip("not-an-ip"),
            vip("10.250.0.200", router_id=0),
            vip("10.250.0.201", interface="eth0 ; rm -rf"),
        ),
        SETTINGS,
    )
    assert p.instances == ()
    assert sorted(i.kind.value for i in p.issues) == [
        "InvalidAddress",
        "InvalidInterface",
        "InvalidRouterID",
    ]


def test_planning_is_deterministic_whatever_the_input_order() -> None:
    vips = [vip(f"10.250.1.{i}", eip=f"e{i % 3}", router_id=10 + i % 3) for i in range(30)]
    assert plan(state("a", *vips), SETTINGS) == plan(state("a", *reversed(vips)), SETTINGS)


def test_instance_names_are_keepalived_safe() -> None:
    assert instance_name(eip="my pool/x", family=6, router_id=3) == "oelb_my_pool_x_v6_3"
