"""IntervalSet against a plain Python set of integers, on random operation sequences."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from openelb.ipam.intervals import IntervalSet

_SPAN = 60
_bounds = st.tuples(st.integers(0, _SPAN), st.integers(0, _SPAN)).map(sorted)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _bounds),
        st.tuples(st.just("remove"), _bounds),
        st.tuples(st.just("add_point"), st.integers(0, _SPAN)),
        st.tuples(st.just("remove_point"), st.integers(0, _SPAN)),
    ),
    max_size=60,
)


def _check(intervals: IntervalSet, model: set[int]) -> None:
    pieces = list(intervals.intervals())
    covered = {v for start, end in pieces for v in range(start, end + 1)}
    assert covered == model
    assert intervals.count == len(model)
    # Sorted, disjoint and never touching: that is what makes first_gap one lookup.
    for (_, end), (start, _) in pairwise(pieces):
        assert end + 1 < start


@settings(max_examples=300)
@given(_ops)
def test_interval_set_behaves_like_a_set_of_integers(ops: list[tuple[str, object]]) -> None:
    intervals = IntervalSet()
    model: set[int] = set()
    for op, arg in ops:
        if op == "add":
            start, end = arg  # type: ignore[misc]
            new = set(range(start, end + 1)) - model
            assert intervals.add(start, end) == len(new)
            model |= new
        elif op == "remove":
            start, end = arg  # type: ignore[misc]
            gone = set(range(start, end + 1)) & model
            assert intervals.remove(start, end) == len(gone)
            model -= gone
        elif op == "add_point":
            assert intervals.add_point(arg) == (arg not in model)  # type: ignore[arg-type]
            model.add(arg)  # type: ignore[arg-type]
        else:
            assert intervals.remove_point(arg) == (arg in model)  # type: ignore[arg-type]
            model.discard(arg)  # type: ignore[arg-type]
        _check(intervals, model)


@given(_ops, _bounds)
def test_first_gap_and_count_within_match_the_model(
    ops: list[tuple[str, object]], window: list[int]
) -> None:
    intervals = IntervalSet()
    model: set[int] = set()
    for op, arg in ops:
        if op in ("add", "remove"):
            start, end = arg  # type: ignore[misc]
            getattr(intervals, op)(start, end)
            values = set(range(start, end + 1))
            model = model | values if op == "add" else model - values
    start, end = window
    free = [v for v in range(start, end + 1) if v not in model]
    assert intervals.first_gap(start, end) == (free[0] if free else None)
    assert intervals.count_within(start, end) == sum(1 for v in model if start <= v <= end)
    assert all((v in intervals) == (v in model) for v in range(-1, _SPAN + 2))


def test_huge_intervals_cost_nothing_to_hold() -> None:
    intervals = IntervalSet()
    intervals.add(0, 2**64 - 1)
    intervals.remove(2**63, 2**63)
    assert intervals.count == 2**64 - 1
    assert len(intervals) == 2
    assert intervals.first_gap(0, 2**64 - 1) == 2**63
