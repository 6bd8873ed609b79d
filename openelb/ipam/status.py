"""An Eip's status and conditions, computed from the allocator's state.

The fields are OpenELB's (``poolSize``, ``usage``, ``used``, ``firstIP``, ``lastIP``, ``v4``,
``occupied``) with the same meaning: ``usage`` counts addresses (not Services), ``used`` maps each
address to ``ns/name[;ns/name]`` in the order the Services got it, ``occupied`` says nothing is
left to hand out. Every held address counts against exactly one pool: the (usable, then oldest)
pool containing it, or, when no pool contains it any more, the pool it was handed out from.

``poolSize`` of a /64 does not fit a CRD integer (int64), so :meth:`EipStatus.to_dict` clamps it
to 2**63-1 and adds the exact value as the string ``poolSizeExact``.

Conditions: Ready, Overlap and Invalid (OpenELB never set ``ready``). Addresses kept by their
Services although the pool would not hand them out now (outside a shrunk pool, excluded, in a
disabled or invalid pool) are listed so the pool can say so.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from openelb.ipam.addresses import Family, format_ip
from openelb.ipam.allocator import Allocator
from openelb.ipam.model import ServiceKey
from openelb.ipam.pools import Pool
from openelb.ipam.validation import ProblemKind

INT64_MAX = 2**63 - 1
"""Largest value a CRD ``integer`` holds."""
_SHOWN = 5
"""How many kept addresses a condition message names before summarising."""


class KeptReason(enum.Enum):
    """Why the pool would not hand out an address a Service still holds."""

    OUTSIDE_POOL = "OutsidePool"
    EXCLUDED = "Excluded"
    POOL_DISABLED = "PoolDisabled"
    POOL_DELETING = "PoolDeleting"
    POOL_INVALID = "PoolInvalid"


@dataclass(frozen=True)
class KeptAddress:
    """An address a Service keeps although this pool would not hand it out now."""

    ip: str
    """The address."""
    holders: tuple[ServiceKey, ...]
    """Who holds it."""
    reason: KeptReason
    """Why the pool would not hand it out."""


@dataclass(frozen=True)
class EipStatus:
    """Computed Eip status (without conditions)."""

    pool_size: int
    """Addresses in the range, exact (exclusions included, as in OpenELB)."""
    usage: int
    """Held addresses counted against this pool."""
    used: dict[str, str]
    """Address -> ``ns/name[;ns/name]``, addresses in ascending order."""
    first_ip: str
    """Lowest address of the range (empty when the address does not parse)."""
    last_ip: str
    """Highest address of the range."""
    v4: bool
    """True for an IPv4 pool."""
    occupied: bool
    """Nothing left to hand out (every address held or excluded)."""
    kept: tuple[KeptAddress, ...] = field(default=())
    """Held addresses this pool would not hand out now."""

    def to_dict(self) -> dict[str, object]:
        """The status fields as the CRD spells them (conditions are added by the caller)."""
        return {
            "poolSize": min(self.pool_size, INT64_MAX),
            "poolSizeExact": str(self.pool_size),
            "usage": self.usage,
            "used": dict(self.used),
            "firstIP": self.first_ip,
            "lastIP": self.last_ip,
            "v4": self.v4,
            "occupied": self.occupied,
        }


@dataclass(frozen=True)
class Condition:
    """A status condition (the caller adds lastTransitionTime and observedGeneration)."""

    type: str
    """Ready, Overlap or Invalid."""
    status: str
    """``"True"`` or ``"False"``."""
    reason: str
    """CamelCase reason."""
    message: str
    """Readable explanation."""


def eip_status(allocator: Allocator, name: str) -> EipStatus:
    """The status of Eip ``name``; O(addresses it holds), so compute it once per batch."""
    pool = allocator.pools[name]
    holdings = allocator.holdings
    entries: list[tuple[Family, int, KeptReason | None]] = []
    if pool.range is not None:
        family = pool.range.family
        inside_reason = _inside_reason(pool)
        for value in sorted(pool.held):
            if holdings.attributed_pool(family, value) != name:
                continue
            reason = KeptReason.EXCLUDED if value in pool.excluded else inside_reason
            entries.append((family, value, reason))
    entries.extend(
        (family, value, KeptReason.OUTSIDE_POOL) for family, value in holdings.stranded(name)
    )
    used: dict[str, str] = {}
    kept: list[KeptAddress] = []
    for family, value, reason in entries:
        held = holdings.get(family, value)
        assert held is not None
        ip = format_ip(family, value)
        used[ip] = ";".join(str(key) for key in held.holders)
        if reason is not None:
            kept.append(KeptAddress(ip, tuple(held.holders), reason))
    if pool.range is None:
        return EipStatus(0, len(used), used, "", "", False, False, tuple(kept))
    rng = pool.range
    return EipStatus(
        pool_size=rng.size,
        usage=len(used),
        used=used,
        first_ip=format_ip(rng.family, rng.first),
        last_ip=format_ip(rng.family, rng.last),
        v4=rng.family is Family.IPV4,
        occupied=pool.full,
        kept=tuple(kept),
    )


def _inside_reason(pool: Pool) -> KeptReason | None:
    if pool.spec.deleting:
        return KeptReason.POOL_DELETING
    if not pool.analysis.valid:
        return KeptReason.POOL_INVALID
    if pool.spec.disable:
        return KeptReason.POOL_DISABLED
    return None


def eip_conditions(pool: Pool, status: EipStatus) -> tuple[Condition, Condition, Condition]:
    """Ready, Overlap and Invalid for a pool and its computed status."""
    problems = pool.problems
    blocking = [p for p in problems if p.blocking]
    warnings = [p.message for p in problems if not p.blocking and p.kind is not ProblemKind.OVERLAP]
    overlaps = [p for p in problems if p.kind is ProblemKind.OVERLAP]
    invalid = [p for p in blocking if p.kind is not ProblemKind.OVERLAP]
    kept_note = _kept_summary(status.kept)

    if pool.spec.deleting:
        waiting = (
            f"deletion waits until the Services holding its {status.usage} address(es) let "
            "them go; it hands out no new ones"
            if status.usage
            else "deleted: no address is held, the finalizer can go"
        )
        ready = Condition("Ready", "False", "Deleting", _join([waiting], kept_note))
    elif blocking:
        reason = "Overlap" if not invalid else invalid[0].kind.value
        ready = Condition("Ready", "False", reason, _join([p.message for p in blocking], kept_note))
    elif pool.spec.disable:
        ready = Condition("Ready", "False", "Disabled", _join(["spec.disable is true"], kept_note))
    elif status.kept:
        ready = Condition("Ready", "True", "KeptAddresses", _join(warnings, kept_note))
    else:
        ready = Condition("Ready", "True", "Ready", _join(warnings, ""))

    if overlaps:
        overlap = Condition("Overlap", "True", "Overlap", _join([p.message for p in overlaps], ""))
    else:
        overlap = Condition("Overlap", "False", "NoOverlap", "")
    if invalid:
        message = _join([p.message for p in invalid], "")
        invalid_condition = Condition("Invalid", "True", invalid[0].kind.value, message)
    else:
        invalid_condition = Condition("Invalid", "False", "Valid", "")
    return ready, overlap, invalid_condition


def _kept_summary(kept: Iterable[KeptAddress]) -> str:
    kept = list(kept)
    if not kept:
        return ""
    shown = ", ".join(
        f"{k.ip} ({';'.join(map(str, k.holders))}: {k.reason.value})" for k in kept[:_SHOWN]
    )
    more = f" and {len(kept) - _SHOWN} more" if len(kept) > _SHOWN else ""
    return (
        f"{len(kept)} address(es) stay with their Services although this pool would not hand "
        f"them out now: {shown}{more}"
    )


def _join(parts: list[str], tail: str) -> str:
    return "; ".join([*parts, tail] if tail else parts)
