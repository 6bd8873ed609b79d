"""Overlap detection and the address -> pools index against brute force, on random pools."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from openelb.ipam import EipSpec, Family, ProblemKind, analyze_eips, validate_eips
from openelb.ipam.pools import Pool, PoolIndex

from .builders import eip

_ranges = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 8), st.booleans(), st.booleans()),
    min_size=1,
    max_size=7,
)


def _specs(ranges: list[tuple[int, int, bool, bool]]) -> list[EipSpec]:
    specs = []
    for index, (start, length, v6, disabled) in enumerate(ranges):
        if v6:
            address = f"2001:db8::{start:x}-2001:db8::{start + length:x}"
        else:
            address = f"10.0.0.{start}-10.0.0.{start + length}"
        specs.append(eip(f"p{index}", address, created=len(ranges) - index, disable=disabled))
    return specs


@settings(max_examples=200)
@given(_ranges)
def test_overlaps_found_are_exactly_the_overlapping_pairs(
    ranges: list[tuple[int, int, bool, bool]],
) -> None:
    specs = _specs(ranges)
    analyses = analyze_eips(specs)
    expected: set[tuple[str, str]] = set()
    for a in specs:
        for b in specs:
            ra, rb = analyses[a.name].range, analyses[b.name].range
            assert ra is not None and rb is not None
            if a.name != b.name and ra.intersection(rb) is not None:
                expected.add((a.name, b.name))
    found = {
        (name, problem.others[0])
        for name, problems in validate_eips(specs).items()
        for problem in problems
        if problem.kind is ProblemKind.OVERLAP
    }
    assert found == expected
    # Exactly one side of each overlapping pair is blocked by it: the newer one.
    for name, problems in validate_eips(specs).items():
        for problem in problems:
            if problem.kind is ProblemKind.OVERLAP:
                other = next(s for s in specs if s.name == problem.others[0])
                mine = next(s for s in specs if s.name == name)
                assert problem.blocking == (mine.order_key > other.order_key)


@settings(max_examples=200)
@given(_ranges, st.integers(0, 50))
def test_index_lists_every_pool_containing_an_address_usable_first(
    ranges: list[tuple[int, int, bool, bool]], offset: int
) -> None:
    pools = [Pool(analysis) for analysis in analyze_eips(_specs(ranges)).values()]
    index = PoolIndex(pools)
    for family, base in ((Family.IPV4, 0x0A000000), (Family.IPV6, 0x20010DB8 << 96)):
        value = base + offset
        found = index.containing(family, value)
        expected = {p.name for p in pools if p.range and p.family is family and value in p.range}
        assert {p.name for p in found} == expected
        usable = [p.usable for p in found]
        assert usable == sorted(usable, reverse=True)
