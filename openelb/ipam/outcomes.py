"""What IPAM answers: an :class:`Allocation`, or :class:`NoIP` with a typed reason.

"No IP possible" is an ordinary outcome a user must be told about (an Event, a condition, a
metric label), never an exception. Reasons are a closed set so metrics labels stay bounded and
tests can assert on them; the message is what ``kubectl describe`` shows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from openelb.ipam.addresses import Family
from openelb.ipam.model import ServiceKey


class NoIPReason(enum.Enum):
    """Why a Service (or one family of it) got no address. Values are Event reasons."""

    NO_POOL = "NoPool"
    """No Eip of the family serves the namespace and there is no usable default Eip."""
    POOL_NOT_FOUND = "PoolNotFound"
    """The pool annotation names an Eip that does not exist."""
    POOL_DISABLED = "PoolDisabled"
    """The chosen Eip has ``spec.disable: true``."""
    POOL_INVALID = "PoolInvalid"
    """The chosen Eip failed validation (bad address, overlap, ...)."""
    POOL_DELETING = "PoolDeleting"
    """The chosen Eip is being deleted (it waits for its holders; it hands out nothing)."""
    POOL_FULL = "PoolFull"
    """Every address of the chosen Eip is in use or excluded."""
    FAMILY_MISMATCH = "FamilyMismatch"
    """The requested IP or named Eip is of a family the Service does not use."""
    BAD_REQUEST = "BadRequest"
    """The requested IPs or Eip names cannot be read (syntax, two of one family)."""
    IP_NOT_IN_POOL = "IPNotInPool"
    """The requested IP is outside the Eip named by the pool annotation."""
    IP_OUTSIDE_POOLS = "IPOutsidePools"
    """The requested IP is in no Eip at all."""
    IP_EXCLUDED = "IPExcluded"
    """The requested IP is on its Eip's exclusion list."""
    IP_IN_USE = "IPInUse"
    """The requested IP is held by another Service and one of them has no sharing key."""
    SHARING_KEY_MISMATCH = "SharingKeyMismatch"
    """The requested IP is held by Services with a different sharing key."""
    PORT_CLASH = "PortClash"
    """Same sharing key, but a (port, protocol) is already used on that IP."""


DEGRADABLE = frozenset(
    {
        NoIPReason.NO_POOL,
        NoIPReason.POOL_FULL,
        NoIPReason.POOL_DISABLED,
        NoIPReason.POOL_INVALID,
        NoIPReason.POOL_DELETING,
        NoIPReason.FAMILY_MISMATCH,
    }
)
"""Failures of one family that PreferDualStack tolerates (the Service keeps the other family).
A failed explicit request (a requested IP, a sharing clash) fails the whole Service instead."""


@dataclass(frozen=True)
class FamilyFailure:
    """Why one family of a Service got no address."""

    family: Family
    """The family that failed."""
    reason: NoIPReason
    """Typed reason."""
    message: str
    """Readable explanation naming the pool/IP involved."""
    pool: str | None = None
    """The Eip involved, when there is one."""


@dataclass(frozen=True)
class Assigned:
    """One address a Service holds."""

    family: Family
    """Family of the address."""
    ip: str
    """Canonical text of the address."""
    pool: str | None
    """The Eip it is attributed to (None when it is outside every Eip)."""
    shared_with: tuple[ServiceKey, ...] = ()
    """Other Services holding the same address (same sharing key)."""


@dataclass(frozen=True)
class Allocation:
    """A Service's addresses after :meth:`Allocator.allocate`, primary family first."""

    service: ServiceKey
    """The Service."""
    addresses: tuple[Assigned, ...]
    """One per family the Service got."""
    degraded: tuple[FamilyFailure, ...] = ()
    """PreferDualStack only: families whose request could not be met (Warning Event material).
    Such a family is missing, or keeps the address it already had."""
    changed: bool = True
    """False when the Service already held exactly these addresses."""

    @property
    def ips(self) -> tuple[str, ...]:
        """The addresses as text, for ``status.loadBalancer.ingress``."""
        return tuple(assigned.ip for assigned in self.addresses)


@dataclass(frozen=True)
class NoIP:
    """The Service cannot get (all) the addresses it asks for."""

    service: ServiceKey
    """The Service."""
    reason: NoIPReason
    """The deciding reason (of the first failing family)."""
    message: str
    """Readable explanation for the Event and the Service condition."""
    failures: tuple[FamilyFailure, ...] = ()
    """Per-family failures (empty for failures of the request as a whole)."""
    kept: tuple[Assigned, ...] = ()
    """Addresses the Service already held and keeps: a request that cannot be met never takes
    away what the Service had (so a typo does not cut traffic)."""
