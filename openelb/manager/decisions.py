"""What the reconcile core decides: plain values the controller turns into API writes.

Keeping decisions as data lets the core be tested without a server and lets the controller choose
the write order (Eip reservations before Service statuses, finalizers last on release).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from openelb.ipam import Assigned, NoIPReason, ServiceKey
from openelb.manager.conditions import ServiceCondition


class FinalizerChange(enum.Enum):
    """What to do with :data:`openelb.manager.optin.FINALIZER` on a Service."""

    KEEP = "keep"
    """Leave the finalizers as they are."""
    ADD = "add"
    """Add ours before the Service gets an address, so its deletion waits for the release."""
    REMOVE = "remove"
    """Remove ours once the release is written to the Eip status."""


@dataclass(frozen=True)
class EventNote:
    """An Event to record on the object the decision is about."""

    type: str
    """``Normal`` or ``Warning``."""
    reason: str
    """CamelCase reason (bounded set: NoIPReason values and a few of ours)."""
    message: str
    """What ``kubectl describe`` shows."""


@dataclass(frozen=True)
class ServiceDecision:
    """The desired state of one Service, and what happened to reach it."""

    key: ServiceKey
    """The Service."""
    ingress: tuple[str, ...] | None = None
    """Desired ``status.loadBalancer.ingress`` IPs; None leaves the status alone."""
    finalizer: FinalizerChange = FinalizerChange.KEEP
    """Finalizer change."""
    events: tuple[EventNote, ...] = ()
    """Events to record on the Service."""
    retry_after: float | None = None
    """Set when the decision had to wait (an address is still published for another Service);
    reconcile again after this many seconds."""
    allocated: tuple[Assigned, ...] = ()
    """Addresses newly taken by this decision (metrics)."""
    released: tuple[str, ...] = ()
    """Addresses given back by this decision (metrics)."""
    failure: NoIPReason | None = None
    """Why the Service got no (complete) address, when it did not."""
    condition: ServiceCondition | None = None
    """Desired ``openelb.io/AddressAssigned`` condition (meaningful when ``condition_write``)."""
    condition_write: bool = False
    """The stored condition differs from ``condition`` (None: ours is to be removed)."""

    @property
    def writes_status(self) -> bool:
        """The Service's status needs a write (addresses or condition)."""
        return self.ingress is not None or self.condition_write


@dataclass(frozen=True)
class StartReport:
    """What the rebuild on start found beyond the stored allocations."""

    services: int
    """Services of ours (opted in or carrying our finalizer)."""
    restored: int
    """Addresses restored from Service statuses and Eip reservations."""
    conflicts: tuple[str, ...] = ()
    """Contested addresses (readable; each loser gets a Warning Event and a new address)."""
    dropped: tuple[str, ...] = ()
    """Stored claims ignored (readable)."""


def ingress_status(status: dict[str, object] | None, ips: tuple[str, ...]) -> dict[str, object]:
    """A Service status with ``loadBalancer.ingress`` set to ``ips``, other fields kept."""
    result = dict(status or {})
    result["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}
    return result
