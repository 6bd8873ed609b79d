"""A pool at run time: its range, what it may not hand out, and which pools hold an address.

A pool's *blocked* set is its exclusions plus every held address inside its range, whoever holds
it and through whichever pool it was handed out; so "lowest free address" is one lookup and never
lands on an address someone holds, even when pools overlap or an address came from a rebuild.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping

from openelb.ipam.addresses import AddressRange, Family
from openelb.ipam.intervals import IntervalSet
from openelb.ipam.validation import EipAnalysis, Problem


class Pool:
    """One Eip's run-time state."""

    __slots__ = (
        "analysis",
        "blocked",
        "excluded",
        "held",
        "is_default",
        "name",
        "priority",
        "range",
        "spec",
        "usable",
    )

    def __init__(self, analysis: EipAnalysis) -> None:
        self.analysis = analysis
        self.spec = analysis.spec
        self.name = analysis.spec.name
        self.range: AddressRange | None = analysis.range
        self.priority = analysis.priority
        self.usable = analysis.valid and not self.spec.disable and not self.spec.deleting
        """May hand out new addresses (valid, not disabled, not being deleted)."""
        self.is_default = self.usable and self.spec.is_default
        self.excluded = IntervalSet()
        for excluded in analysis.exclusions:
            self.excluded.add(excluded.first, excluded.last)
        self.blocked = IntervalSet()
        for start, end in self.excluded.intervals():
            self.blocked.add(start, end)
        self.held: set[int] = set()
        """Held addresses inside the range."""

    @property
    def family(self) -> Family | None:
        """The pool's family (None when its address does not parse)."""
        return self.range.family if self.range else None

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Validation problems."""
        return self.analysis.problems

    @property
    def free(self) -> int:
        """Addresses that can still be handed out (neither held nor excluded)."""
        return self.range.size - self.blocked.count if self.range else 0

    @property
    def full(self) -> bool:
        """Nothing left to hand out (OpenELB's ``occupied``)."""
        return self.free == 0

    def lowest_free(self) -> int | None:
        """The lowest address neither held nor excluded, or None."""
        if self.range is None:
            return None
        return self.blocked.first_gap(self.range.first, self.range.last)

    def hold(self, value: int) -> None:
        """Record that ``value`` (inside the range) is held."""
        if value not in self.held:
            self.held.add(value)
            self.blocked.add_point(value)

    def unhold(self, value: int) -> None:
        """``value`` is no longer held (it stays blocked if it is excluded)."""
        if value in self.held:
            self.held.remove(value)
            if value not in self.excluded:
                self.blocked.remove_point(value)

    def same_shape(self, analysis: EipAnalysis) -> bool:
        """Same range and exclusions: the held/blocked sets can be carried over."""
        return analysis.range == self.range and analysis.exclusions == self.analysis.exclusions

    def adopt(self, older: Pool) -> None:
        """Take over the held/blocked sets of the same pool's previous incarnation."""
        self.held = older.held
        self.blocked = older.blocked


class PoolIndex:
    """Which pools contain an address: a sorted segment table per family (pools may overlap).

    Segment boundaries are every pool's first address and the address after its last one; each
    segment lists the pools covering it, usable ones first, then oldest first.
    """

    def __init__(self, pools: Iterable[Pool]) -> None:
        by_family: dict[Family, list[Pool]] = {Family.IPV4: [], Family.IPV6: []}
        for pool in pools:
            if pool.range is not None:
                by_family[pool.range.family].append(pool)
        self._points: dict[Family, list[int]] = {}
        self._covering: dict[Family, list[tuple[Pool, ...]]] = {}
        for family, members in by_family.items():
            members.sort(key=lambda p: (not p.usable, p.spec.order_key))
            points = sorted(
                {p.range.first for p in members if p.range}
                | {p.range.last + 1 for p in members if p.range}
            )
            covering = [
                tuple(p for p in members if p.range and p.range.first <= start <= p.range.last)
                for start in points[:-1]
            ]
            self._points[family] = points
            self._covering[family] = covering

    def containing(self, family: Family, value: int) -> tuple[Pool, ...]:
        """Pools whose range holds ``value``: usable first, then oldest first."""
        points = self._points[family]
        index = bisect_right(points, value) - 1
        if index < 0 or index >= len(points) - 1:
            return ()
        return self._covering[family][index]


def build_pools(
    analyses: Mapping[str, EipAnalysis], previous: Mapping[str, Pool]
) -> tuple[dict[str, Pool], list[Pool]]:
    """Pools for a new set of Eips, re-using the held sets of pools whose shape is unchanged.

    Returns all pools and those that are new or changed shape: they come with empty held sets
    and the caller fills them from its holdings.
    """
    pools: dict[str, Pool] = {}
    fresh: list[Pool] = []
    for name, analysis in analyses.items():
        pool = Pool(analysis)
        old = previous.get(name)
        if old is not None and old.same_shape(analysis):
            pool.adopt(old)
        else:
            fresh.append(pool)
        pools[name] = pool
    return pools, fresh
