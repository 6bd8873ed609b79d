"""Eip validation: typed problems for every mistake, decided by age between pools, never a crash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from openelb.ipam import EipSpec, ProblemKind, validate_eip, validate_eips

from .builders import eip


def _kinds(problems: tuple[object, ...]) -> list[ProblemKind]:
    return [p.kind for p in problems]  # type: ignore[attr-defined]


def test_a_clean_eip_has_no_problems() -> None:
    assert validate_eips([eip("a", "10.0.0.0/24")]) == {"a": ()}


def test_bad_address_is_a_blocking_problem_naming_the_part() -> None:
    (problem,) = validate_eips([eip("a", "10.0.0.9-10.0.0.1")])["a"]
    assert problem.kind is ProblemKind.BAD_ADDRESS
    assert problem.blocking
    assert problem.condition == "Invalid"
    assert "reversed" in problem.message


def test_host_bits_in_a_cidr_are_a_warning_not_an_error() -> None:
    (problem,) = validate_eips([eip("a", "10.0.0.5/24")])["a"]
    assert problem.kind is ProblemKind.HOST_BITS_SET
    assert not problem.blocking
    assert "10.0.0.0-10.0.0.255" in problem.message


def test_layer2_and_vip_need_an_interface_bgp_does_not() -> None:
    problems = validate_eips(
        [
            eip("l2", "10.0.0.0/24", interface=""),
            eip("vip", "10.0.1.0/24", protocol="vip", interface=" "),
            eip("bgp", "10.0.2.0/24", protocol="bgp", interface=""),
            eip("empty-means-bgp", "10.0.3.0/24", protocol="", interface=""),
        ]
    )
    assert _kinds(problems["l2"]) == [ProblemKind.MISSING_INTERFACE]
    assert _kinds(problems["vip"]) == [ProblemKind.MISSING_INTERFACE]
    assert problems["bgp"] == ()
    assert problems["empty-means-bgp"] == ()


def test_unknown_protocol_is_invalid() -> None:
    (problem,) = validate_eips([eip("a", "10.0.0.0/24", protocol="ospf")])["a"]
    assert problem.kind is ProblemKind.UNKNOWN_PROTOCOL
    assert "'ospf'" in problem.message


def test_priority_must_be_an_int32() -> None:
    for bad in ("high", 2**31, True, 1.5, None):
        (problem,) = validate_eips([eip("a", "10.0.0.0/24", priority=bad)])["a"]
        assert problem.kind is ProblemKind.BAD_PRIORITY, bad
    assert validate_eips([eip("a", "10.0.0.0/24", priority=-5)])["a"] == ()


def test_overlap_blocks_the_newer_pool_and_is_reported_on_both() -> None:
    problems = validate_eips(
        [eip("new", "10.0.0.128/25", created=10), eip("old", "10.0.0.0/24", created=1)]
    )
    (on_new,) = problems["new"]
    (on_old,) = problems["old"]
    assert on_new.kind is on_old.kind is ProblemKind.OVERLAP
    assert on_new.blocking and not on_old.blocking
    assert on_new.others == ("old",) and on_old.others == ("new",)
    assert str(on_new.overlap) == "10.0.0.128-10.0.0.255"
    assert on_new.condition == "Overlap"


def test_overlap_ties_on_age_are_broken_by_name() -> None:
    problems = validate_eips([eip("b", "10.0.0.5"), eip("a", "10.0.0.0-10.0.0.9")])
    assert problems["b"][0].blocking and not problems["a"][0].blocking


def test_overlap_lists_every_pool_involved() -> None:
    problems = validate_eips(
        [
            eip("wide", "10.0.0.0/16", created=1),
            eip("x", "10.0.1.0/24", created=2),
            eip("y", "10.0.2.0/24", created=3),
            eip("v6", "2001:db8::/64", created=4),
        ]
    )
    assert sorted(p.others[0] for p in problems["wide"]) == ["x", "y"]
    assert [p.others for p in problems["x"]] == [("wide",)]
    assert problems["v6"] == ()


def test_adjacent_pools_do_not_overlap() -> None:
    problems = validate_eips([eip("a", "10.0.0.0/25"), eip("b", "10.0.0.128-10.0.0.255")])
    assert problems == {"a": (), "b": ()}


def test_a_second_default_pool_of_a_family_is_invalid_but_one_per_family_is_fine() -> None:
    problems = validate_eips(
        [
            eip("d4", "10.0.0.0/24", default=True, created=1),
            eip("d6", "2001:db8::/64", default=True, created=2),
            eip("d4-again", "10.0.1.0/24", default=True, created=3),
        ]
    )
    assert problems["d4"] == () and problems["d6"] == ()
    (problem,) = problems["d4-again"]
    assert problem.kind is ProblemKind.DUPLICATE_DEFAULT
    assert problem.others == ("d4",)


def test_exclusions_that_do_not_parse_block_and_those_outside_warn() -> None:
    (bad,) = validate_eips([eip("a", "10.0.0.0/24", exclude=("10.0.0.x",))])["a"]
    assert bad.kind is ProblemKind.BAD_EXCLUSION and bad.blocking
    assert "spec.exclude[0]" in bad.message
    (outside,) = validate_eips([eip("a", "10.0.0.0/24", exclude=("10.0.0.250-10.0.1.5",))])["a"]
    assert outside.kind is ProblemKind.EXCLUSION_OUTSIDE_POOL and not outside.blocking
    assert "partly outside" in outside.message


def test_admission_form_judges_the_candidate_as_the_newest() -> None:
    existing = [eip("old", "10.0.0.0/24", default=True, created=100)]
    candidate = eip("new", "10.0.0.7", default=True, created=0)
    kinds = sorted(p.kind.value for p in validate_eip(candidate, existing))
    assert kinds == ["DuplicateDefault", "Overlap"]
    # An update of an existing Eip is not judged against its own old version.
    assert validate_eip(existing[0], existing) == ()


def test_several_problems_are_all_reported_at_once() -> None:
    problems = validate_eips(
        [eip("a", "nope", protocol="vip", interface="", priority="x", exclude=("y",))]
    )["a"]
    assert sorted(p.kind.value for p in problems) == [
        "BadAddress",
        "BadExclusion",
        "BadPriority",
        "MissingInterface",
    ]


_anything = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12))


@given(
    st.lists(
        st.builds(
            EipSpec,
            name=st.text(min_size=1, max_size=4),
            address=st.one_of(
                st.text(max_size=30),
                st.sampled_from(["10.0.0.0/24", "10.0.0.5", "10.0.0.0-10.0.0.9", "::/0"]),
            ),
            protocol=st.text(max_size=8),
            interface=st.text(max_size=4),
            priority=_anything,
            exclude=st.lists(st.text(max_size=20), max_size=3).map(tuple),
        ),
        max_size=6,
    )
)
def test_validation_never_crashes(specs: list[EipSpec]) -> None:
    result = validate_eips(specs)
    assert set(result) == {spec.name for spec in specs}
    for problems in result.values():
        assert all(problem.message for problem in problems)
