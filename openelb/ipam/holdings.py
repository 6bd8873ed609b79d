"""Who holds which address: the one registry every decision reads and every change goes through.

Each held address records its holders (Services and their sharing claims) and the pool it was
handed out from (its *origin*, so a pool that shrank or was disabled can still report the
holders it stranded). Taking or dropping an address updates the blocked set of every pool that
contains it, whichever pool it came through, so no pool can hand out a held address. Every
operation is a few dictionary updates and one interval-set update: nothing scans the holders.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

from openelb.ipam.addresses import Family
from openelb.ipam.model import ServiceKey
from openelb.ipam.pools import Pool, PoolIndex
from openelb.ipam.sharing import Claim

_K = TypeVar("_K")
_V = TypeVar("_V")


class HeldAddress:
    """One held address: its holders in the order they joined, and its origin pool."""

    __slots__ = ("holders", "origin")

    def __init__(self, origin: str | None) -> None:
        self.holders: dict[ServiceKey, Claim] = {}
        self.origin = origin


class Holdings:
    """Held addresses per family, per Service, per sharing key and per origin pool."""

    def __init__(self) -> None:
        self.pools: dict[str, Pool] = {}
        self.index = PoolIndex(())
        self._held: dict[Family, dict[int, HeldAddress]] = {Family.IPV4: {}, Family.IPV6: {}}
        self._services: dict[ServiceKey, dict[Family, int]] = {}
        self._by_key: dict[tuple[Family, str], set[int]] = {}
        self._by_origin: dict[str, set[tuple[Family, int]]] = {}

    # --- pools ---------------------------------------------------------------------------------

    def set_pools(self, pools: dict[str, Pool], fresh: list[Pool]) -> None:
        """Switch to a new pool set; ``fresh`` pools learn which of their addresses are held."""
        for pool in fresh:
            if pool.range is None:
                continue
            rng = pool.range
            for value in self._held[rng.family]:
                if rng.first <= value <= rng.last:
                    pool.hold(value)
        self.pools = pools
        self.index = PoolIndex(pools.values())

    # --- reading -------------------------------------------------------------------------------

    def get(self, family: Family, value: int) -> HeldAddress | None:
        """The holding of an address, if held."""
        return self._held[family].get(value)

    def of_service(self, service: ServiceKey) -> Mapping[Family, int]:
        """The addresses a Service holds, by family."""
        return self._services.get(service, {})

    def services(self) -> Iterator[ServiceKey]:
        """Every Service holding at least one address."""
        return iter(self._services)

    def held(self, family: Family) -> Mapping[int, HeldAddress]:
        """All held addresses of a family."""
        return self._held[family]

    def sharing_candidates(self, family: Family, sharing_key: str) -> set[int]:
        """Addresses whose holders all carry ``sharing_key``."""
        return self._by_key.get((family, sharing_key), set())

    def attributed_pool(self, family: Family, value: int) -> str | None:
        """The pool an address counts against: one containing it, else the one it came from."""
        containing = self.index.containing(family, value)
        if containing:
            return containing[0].name
        held = self._held[family].get(value)
        if held is not None and held.origin in self.pools:
            return held.origin
        return None

    def stranded(self, pool_name: str) -> list[tuple[Family, int]]:
        """Addresses handed out by ``pool_name`` that no pool contains any more."""
        return sorted(
            (family, value)
            for family, value in self._by_origin.get(pool_name, ())
            if not self.index.containing(family, value)
        )

    # --- changing ------------------------------------------------------------------------------

    def take(
        self, service: ServiceKey, claim: Claim, family: Family, value: int, origin: str | None
    ) -> None:
        """``service`` holds ``value`` (alone, or joining compatible holders)."""
        held = self._held[family].get(value)
        if held is None:
            held = HeldAddress(origin)
            self._held[family][value] = held
            for pool in self.index.containing(family, value):
                pool.hold(value)
            if origin is not None:
                self._by_origin.setdefault(origin, set()).add((family, value))
        held.holders[service] = claim
        self._services.setdefault(service, {})[family] = value
        if claim.sharing_key is not None:
            self._by_key.setdefault((family, claim.sharing_key), set()).add(value)

    def drop(self, service: ServiceKey, family: Family, value: int) -> None:
        """``service`` no longer holds ``value``; the last holder leaving frees it."""
        held = self._held[family][value]
        claim = held.holders.pop(service)
        owned = self._services[service]
        del owned[family]
        if not owned:
            del self._services[service]
        if held.holders:
            return
        del self._held[family][value]
        for pool in self.index.containing(family, value):
            pool.unhold(value)
        if held.origin is not None:
            self._discard(self._by_origin, held.origin, (family, value))
        if claim.sharing_key is not None:
            self._discard(self._by_key, (family, claim.sharing_key), value)

    def update_claim(self, service: ServiceKey, claim: Claim, family: Family, value: int) -> None:
        """A holder's ports or sharing key changed (the caller checked it is still compatible)."""
        held = self._held[family][value]
        old = held.holders[service]
        if old == claim:
            return
        held.holders[service] = claim
        if old.sharing_key != claim.sharing_key:
            # Compatibility means equal keys when shared, so only a sole holder gets here.
            if old.sharing_key is not None:
                self._discard(self._by_key, (family, old.sharing_key), value)
            if claim.sharing_key is not None:
                self._by_key.setdefault((family, claim.sharing_key), set()).add(value)

    @staticmethod
    def _discard(index: dict[_K, set[_V]], key: _K, value: _V) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(value)
            if not members:
                del index[key]
