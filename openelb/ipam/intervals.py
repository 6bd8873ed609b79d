"""A set of integers kept as sorted, disjoint, non-touching intervals.

This is what makes a pool's size irrelevant: a pool's blocked addresses (exclusions plus held
addresses) are a handful of intervals however many addresses they cover, "lowest free address" is
one binary search, and handing out addresses in order only grows an interval. Adjacent intervals
are always merged, so the first integer after an interval is never in the set.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator


class IntervalSet:
    """Integers as merged ``[start, end]`` intervals (both ends included)."""

    __slots__ = ("_count", "_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._count = 0

    @property
    def count(self) -> int:
        """How many integers the set holds (exact, however large)."""
        return self._count

    def __len__(self) -> int:
        """Number of intervals (not of integers: those may not fit ``len``)."""
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        i = bisect_right(self._starts, value) - 1
        return i >= 0 and self._ends[i] >= value

    def intervals(self) -> Iterator[tuple[int, int]]:
        """The intervals in ascending order."""
        return zip(self._starts, self._ends, strict=True)

    def add(self, start: int, end: int) -> int:
        """Add ``[start, end]``; return how many integers were not in the set before."""
        if start > end:
            raise ValueError(f"empty interval [{start}, {end}]")
        starts, ends = self._starts, self._ends
        # Intervals that overlap or touch [start, end] are i..j-1.
        i = bisect_left(ends, start - 1)
        j = bisect_right(starts, end + 1)
        if i == j:
            starts.insert(i, start)
            ends.insert(i, end)
            added = end - start + 1
        else:
            merged_start = min(start, starts[i])
            merged_end = max(end, ends[j - 1])
            before = sum(ends[k] - starts[k] + 1 for k in range(i, j))
            starts[i:j] = [merged_start]
            ends[i:j] = [merged_end]
            added = merged_end - merged_start + 1 - before
        self._count += added
        return added

    def add_point(self, value: int) -> bool:
        """Add one integer (the allocation fast path); return whether it was new."""
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, value) - 1
        if i >= 0 and ends[i] >= value:
            return False
        joins_left = i >= 0 and ends[i] == value - 1
        joins_right = i + 1 < len(starts) and starts[i + 1] == value + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif joins_left:
            ends[i] = value
        elif joins_right:
            starts[i + 1] = value
        else:
            starts.insert(i + 1, value)
            ends.insert(i + 1, value)
        self._count += 1
        return True

    def remove_point(self, value: int) -> bool:
        """Remove one integer (the release fast path); return whether it was there."""
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, value) - 1
        if i < 0 or ends[i] < value:
            return False
        start, end = starts[i], ends[i]
        if start == end:
            del starts[i], ends[i]
        elif start == value:
            starts[i] = value + 1
        elif end == value:
            ends[i] = value - 1
        else:
            ends[i] = value - 1
            starts.insert(i + 1, value + 1)
            ends.insert(i + 1, end)
        self._count -= 1
        return True

    def remove(self, start: int, end: int) -> int:
        """Remove ``[start, end]``; return how many integers were in the set."""
        if start > end:
            raise ValueError(f"empty interval [{start}, {end}]")
        starts, ends = self._starts, self._ends
        # Intervals that overlap [start, end] are i..j-1.
        i = bisect_left(ends, start)
        j = bisect_right(starts, end)
        if i >= j:
            return 0
        removed = sum(min(ends[k], end) - max(starts[k], start) + 1 for k in range(i, j))
        new_starts: list[int] = []
        new_ends: list[int] = []
        if starts[i] < start:
            new_starts.append(starts[i])
            new_ends.append(start - 1)
        if ends[j - 1] > end:
            new_starts.append(end + 1)
            new_ends.append(ends[j - 1])
        starts[i:j] = new_starts
        ends[i:j] = new_ends
        self._count -= removed
        return removed

    def first_gap(self, start: int, end: int) -> int | None:
        """The lowest integer of ``[start, end]`` not in the set, or None when all are."""
        i = bisect_right(self._starts, start) - 1
        candidate = start
        if i >= 0 and self._ends[i] >= start:
            # Merged intervals never touch, so the integer after this one is free.
            candidate = self._ends[i] + 1
        return candidate if candidate <= end else None

    def count_within(self, start: int, end: int) -> int:
        """How many integers of ``[start, end]`` the set holds."""
        starts, ends = self._starts, self._ends
        i = bisect_left(ends, start)
        j = bisect_right(starts, end)
        return sum(min(ends[k], end) - max(starts[k], start) + 1 for k in range(i, j))

    def __repr__(self) -> str:
        shown = ", ".join(f"[{s}, {e}]" for s, e in self.intervals())
        return f"IntervalSet({shown})"
