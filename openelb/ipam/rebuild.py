"""Rebuild the allocator from what Kubernetes stores: Service ingress IPs and Eip ``used`` maps.

Nothing else is persisted, so a restarted manager starts here. The result does not depend on the
order of the inputs: Services are taken oldest first (creationTimestamp, then namespace/name).

1. Every Service's ``status.loadBalancer.ingress`` IPs are restored as they are (outside every
   pool, excluded or in a disabled pool included: a restart must not move anyone). When two
   Services claim one IP without a valid sharing, the older keeps it and the newer is reported
   in a :class:`Conflict`.
2. Eip ``used`` entries naming an existing Service that holds no address of that family are
   restored as well: they are reservations a manager wrote to the Eip before it could write the
   Service's status (killed in between). Entries of Services that do not exist, or that lost
   to someone's ingress, are reported as dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from openelb.ipam.addresses import AddressError, parse_ip
from openelb.ipam.allocator import Allocator
from openelb.ipam.model import EipSpec, ServiceKey, ServiceRequest
from openelb.ipam.outcomes import Assigned, NoIPReason


@dataclass(frozen=True)
class ServiceState:
    """A Service as stored: its request and the IPs in ``status.loadBalancer.ingress``."""

    request: ServiceRequest
    """The Service's current request."""
    ingress: tuple[str, ...] = ()
    """``status.loadBalancer.ingress[].ip`` in order (hostname-only entries left out)."""


@dataclass(frozen=True)
class EipState:
    """An Eip as stored: its spec and its status ``used`` map."""

    spec: EipSpec
    """The Eip."""
    used: Mapping[str, str] = field(default_factory=dict)
    """status.used: address -> ``ns/name[;ns/name]``."""


@dataclass(frozen=True)
class Conflict:
    """Two Services claimed one IP without a valid sharing; the older one kept it."""

    ip: str
    """The contested address."""
    kept_by: tuple[ServiceKey, ...]
    """Who holds it after the rebuild."""
    lost_by: ServiceKey
    """Who claimed it too and does not hold it (its status must be rewritten)."""
    reason: NoIPReason
    """IP_IN_USE, SHARING_KEY_MISMATCH or PORT_CLASH."""
    message: str
    """Readable explanation."""


@dataclass(frozen=True)
class Dropped:
    """A stored claim that was not restored, and why."""

    ip: str
    """The address as stored."""
    holder: str
    """The Service as stored (``ns/name``)."""
    source: str
    """``ingress`` or ``eip/<name>``."""
    why: str
    """Readable explanation."""


@dataclass(frozen=True)
class Rebuilt:
    """The rebuilt allocator and everything that did not fit."""

    allocator: Allocator
    """Pools and holdings as stored."""
    conflicts: tuple[Conflict, ...] = ()
    """Contested IPs (the losers need their status rewritten)."""
    reserved: tuple[tuple[ServiceKey, Assigned], ...] = ()
    """Addresses restored from Eip ``used`` alone (the Service status lacks them)."""
    dropped: tuple[Dropped, ...] = ()
    """Stored claims ignored: unreadable IPs, unknown Services, a second IP of one family."""


def rebuild(eips: Iterable[EipState], services: Iterable[ServiceState]) -> Rebuilt:
    """Reconstruct allocations deterministically from persisted state."""
    eip_states = sorted(eips, key=lambda state: state.spec.order_key)
    allocator = Allocator(state.spec for state in eip_states)
    ordered = sorted(services, key=lambda s: (s.request.created, s.request.key))
    origins = _origins(eip_states)
    conflicts: list[Conflict] = []
    dropped: list[Dropped] = []
    for state in ordered:
        for ip in state.ingress:
            _restore(
                allocator,
                state.request,
                ip,
                source="ingress",
                origin=origins.get(ip.strip()),
                conflicts=conflicts,
                dropped=dropped,
            )
    reserved = _restore_reservations(allocator, eip_states, ordered, dropped)
    return Rebuilt(allocator, tuple(conflicts), tuple(reserved), tuple(dropped))


def _origins(eip_states: list[EipState]) -> dict[str, str]:
    """IP text -> the (oldest) Eip whose ``used`` lists it."""
    origins: dict[str, str] = {}
    for state in eip_states:
        for ip in state.used:
            origins.setdefault(ip.strip(), state.spec.name)
    return origins


def _restore(
    allocator: Allocator,
    request: ServiceRequest,
    ip: str,
    *,
    source: str,
    origin: str | None,
    conflicts: list[Conflict],
    dropped: list[Dropped],
) -> Assigned | None:
    result = allocator.restore(request, ip, origin=origin)
    if isinstance(result, Assigned):
        return result
    if result.reason is NoIPReason.BAD_REQUEST:
        dropped.append(Dropped(ip, str(request.key), source, result.message))
    else:
        conflicts.append(
            Conflict(
                ip=ip.strip(),
                kept_by=allocator.holders(ip),
                lost_by=request.key,
                reason=result.reason,
                message=f"{request.key} claims {ip.strip()} ({source}), which is {result.message}",
            )
        )
    return None


def _restore_reservations(
    allocator: Allocator,
    eip_states: list[EipState],
    ordered: list[ServiceState],
    dropped: list[Dropped],
) -> list[tuple[ServiceKey, Assigned]]:
    requests = {state.request.key: (rank, state.request) for rank, state in enumerate(ordered)}
    pending: list[tuple[int, str, str, ServiceRequest]] = []
    for state in eip_states:
        source = f"eip/{state.spec.name}"
        for ip, holders_text in sorted(state.used.items()):
            for holder in holders_text.split(";"):
                key = ServiceKey.parse(holder)
                found = requests.get(key) if key is not None else None
                if found is None:
                    if holder.strip():
                        dropped.append(Dropped(ip, holder.strip(), source, "no such Service"))
                    continue
                pending.append((found[0], state.spec.name, ip, found[1]))
    reserved: list[tuple[ServiceKey, Assigned]] = []
    conflicts: list[Conflict] = []
    for _, eip_name, ip, request in sorted(pending, key=lambda item: item[:3]):
        try:
            family, value = parse_ip(ip)
        except AddressError as exc:
            dropped.append(Dropped(ip, str(request.key), f"eip/{eip_name}", str(exc)))
            continue
        holds = allocator.holdings.of_service(request.key).get(family)
        if holds is not None:
            # The Service's own status (or an older entry) already decided this family.
            if holds != value:
                dropped.append(
                    Dropped(ip, str(request.key), f"eip/{eip_name}", "stale: it holds another")
                )
            continue
        restored = _restore(
            allocator,
            request,
            ip,
            source=f"eip/{eip_name}",
            origin=eip_name,
            conflicts=conflicts,
            dropped=dropped,
        )
        if restored is not None:
            reserved.append((request.key, restored))
    # A reservation that loses to someone's ingress is stale rather than a conflict between
    # two live claims: the Service's own status never had it.
    dropped.extend(
        Dropped(c.ip, str(c.lost_by), "eip", f"stale reservation: {c.message}") for c in conflicts
    )
    return reserved
