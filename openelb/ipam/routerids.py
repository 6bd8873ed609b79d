"""Virtual router IDs for VIP-mode (``protocol: vip``) Eips: unique, stable, from a set range.

OpenELB hashed router IDs on each node, so nodes could disagree and two Eips could collide. Here
the manager assigns them and stores them in the Eip status; every node reads the same value. An ID
already in a status is kept (so a manager restart changes nothing) unless it is outside the
configured range, reserved, or also claimed by an older Eip; everyone else gets the lowest free
ID, oldest Eip first. The range is configurable so two clusters on one segment can use disjoint
IDs (VRRP router IDs are 1-255 per segment and address family).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from openelb.ipam.model import EipSpec

VRID_MIN, VRID_MAX = 1, 255


@dataclass(frozen=True)
class RouterIdRange:
    """The IDs this cluster may use."""

    first: int = VRID_MIN
    """Lowest ID (>= 1)."""
    last: int = VRID_MAX
    """Highest ID (<= 255)."""
    reserved: frozenset[int] = frozenset()
    """IDs never assigned (used by other VRRP routers on the segment)."""

    def __post_init__(self) -> None:
        if not VRID_MIN <= self.first <= self.last <= VRID_MAX:
            raise ValueError(
                f"router ID range {self.first}-{self.last} must lie within {VRID_MIN}-{VRID_MAX}"
            )

    def allows(self, value: int) -> bool:
        """In range and not reserved."""
        return self.first <= value <= self.last and value not in self.reserved


class RouterIdIssue(enum.Enum):
    """Why an Eip has no router ID, or a different one from its status."""

    EXHAUSTED = "RouterIDsExhausted"
    """Every ID of the range is taken."""
    OUT_OF_RANGE = "RouterIDOutOfRange"
    """The stored ID is outside the configured range (or reserved): reassigned."""
    DUPLICATE = "RouterIDDuplicate"
    """An older Eip holds the same stored ID: reassigned."""


@dataclass(frozen=True)
class RouterIdNote:
    """Something the Eip's owner should be told (condition/Event material)."""

    issue: RouterIdIssue
    """Typed issue."""
    message: str
    """Readable explanation."""


@dataclass(frozen=True)
class RouterIdAssignment:
    """Router IDs for every VIP-mode Eip."""

    ids: dict[str, int] = field(default_factory=dict)
    """Eip name -> router ID."""
    notes: dict[str, RouterIdNote] = field(default_factory=dict)
    """Eips without an ID (EXHAUSTED) or whose stored ID changed."""


def assign_router_ids(
    eips: Iterable[EipSpec], id_range: RouterIdRange | None = None
) -> RouterIdAssignment:
    """IDs for the ``protocol: vip`` Eips among ``eips``, keeping stored ones where possible."""
    id_range = id_range or RouterIdRange()
    vip = sorted(
        (spec for spec in eips if spec.effective_protocol == "vip"),
        key=lambda spec: spec.order_key,
    )
    ids: dict[str, int] = {}
    notes: dict[str, RouterIdNote] = {}
    owner: dict[int, str] = {}
    for spec in vip:
        stored = spec.router_id
        if stored is None:
            continue
        if not id_range.allows(stored):
            notes[spec.name] = RouterIdNote(
                RouterIdIssue.OUT_OF_RANGE,
                f"stored router ID {stored} is outside {id_range.first}-{id_range.last} "
                "or reserved; assigning another",
            )
        elif stored in owner:
            notes[spec.name] = RouterIdNote(
                RouterIdIssue.DUPLICATE,
                f"stored router ID {stored} is also Eip '{owner[stored]}''s (older); "
                "assigning another",
            )
        else:
            ids[spec.name] = stored
            owner[stored] = spec.name
    candidates = (v for v in range(id_range.first, id_range.last + 1) if id_range.allows(v))
    free = iter([v for v in candidates if v not in owner])
    for spec in vip:
        if spec.name in ids:
            continue
        value = next(free, None)
        if value is None:
            notes[spec.name] = RouterIdNote(
                RouterIdIssue.EXHAUSTED,
                f"all router IDs {id_range.first}-{id_range.last} are taken "
                f"({len(ids)} VIP-mode Eips); widen the range or remove an Eip",
            )
            continue
        ids[spec.name] = value
        owner[value] = spec.name
    return RouterIdAssignment(ids, notes)
