"""The reconcile core: from Services, Eips and Namespaces to decisions. No I/O, no clock.

One :class:`Reconciler` lives in the leading manager. It owns the IPAM :class:`Allocator` and a
*published* index: which addresses each of our Services shows in its stored status. The index is
what keeps an address from being handed out twice while writes are in flight. An address a
Service gives up (its request changed, it left openelb, it is being deleted) is free in IPAM at
once, but it is not handed to another Service while the old holder's stored status still shows it:
such a decision is rolled back and retried (``retry_after``) until the old holder's status is
cleared or the object is gone. So at any instant, and after a crash at any point, no address is
in two Services' statuses without a valid sharing.

Restart safety: :meth:`Reconciler.start` rebuilds IPAM from Service statuses and Eip ``used``
reservations (``openelb.ipam.rebuild``); nothing moves. The controller writes an Eip's ``used``
before the Services' statuses, so a manager killed in between finds the reservation and gives the
Service the same address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from openelb.ipam import (
    AddressError,
    Allocation,
    Allocator,
    Assigned,
    EipSpec,
    EipState,
    NoIP,
    NoIPReason,
    RouterIdRange,
    ServiceKey,
    ServiceRequest,
    ServiceState,
    format_ip,
    parse_ip,
    rebuild,
)
from openelb.manager.conditions import ServiceCondition, condition_differs
from openelb.manager.decisions import EventNote, FinalizerChange, ServiceDecision, StartReport
from openelb.manager.eipstatus import VipRouterIds, assign_vip_router_ids, desired_eip_status
from openelb.manager.optin import Raw, has_finalizer, is_deleting, is_opted_in
from openelb.manager.reading import (
    eip_router_ids,
    eip_spec,
    eip_used,
    ingress_ips,
    namespace_labels,
    service_key,
    service_request,
)

DEFER_SECONDS = 0.2
"""How long a decision waits for another Service's stored status to let go of an address."""


def _assigned_condition(result: Allocation) -> ServiceCondition:
    """True, naming the addresses and their Eips (not who shares them: that would rewrite
    every sharer's status when one more joins)."""
    described = ", ".join(
        f"{a.ip} from Eip '{a.pool}'" if a.pool else f"{a.ip} (in no Eip)" for a in result.addresses
    )
    if result.degraded:
        failure = result.degraded[0]
        return ServiceCondition(
            True,
            "PartiallyAssigned",
            f"{described}; no {failure.family.value} address: {failure.message}",
        )
    return ServiceCondition(True, "Assigned", described)


def canonical_ip(text: str) -> str:
    """The canonical spelling of an IP (so ``2001:DB8::1`` and ``2001:db8::1`` compare equal)."""
    try:
        family, value = parse_ip(text)
    except AddressError:
        return text.strip()
    return format_ip(family, value)


def is_ours(raw: Raw) -> bool:
    """Opted in, or still carrying our finalizer (it was ours and has not been released)."""
    return is_opted_in(raw) or has_finalizer(raw)


class Reconciler:
    """Decisions for Services and Eips over one allocator. Not thread-safe: one worker at a time."""

    def __init__(self, *, router_id_range: RouterIdRange | None = None) -> None:
        self.allocator = Allocator()
        """IPAM state (read it; the reconciler changes it)."""
        self._router_id_range = router_id_range
        self._namespaces: dict[str, dict[str, str]] = {}
        self._eips: dict[str, Raw] = {}
        self._specs: list[EipSpec] = []
        self._published: dict[ServiceKey, tuple[str, ...]] = {}
        self._by_ip: dict[str, set[ServiceKey]] = {}
        self._last_warning: dict[ServiceKey, tuple[str, str]] = {}
        self._waiting: dict[ServiceKey, NoIPReason] = {}
        """Services without (all) their addresses, and why (the unassigned gauge)."""
        self._unlisted: dict[ServiceKey, tuple[str, ...]] = {}
        """Addresses a Service keeps that no Eip lists (reported once per set)."""
        self._pending: dict[ServiceKey, list[EventNote]] = {}
        self._eip_problems: dict[str, frozenset[tuple[str, str]]] = {}
        self._router_ids = VipRouterIds()
        self.generation = 0
        """Bumped whenever what IPAM holds (or the pools) changed: Eip statuses may differ."""

    # --- start and inputs ----------------------------------------------------------------------

    def start(
        self,
        *,
        services: Iterable[Raw],
        eips: Iterable[Raw],
        namespaces: Iterable[Raw],
    ) -> StartReport:
        """Rebuild from stored state (call once, before any :meth:`reconcile`)."""
        for ns in namespaces:
            self._namespaces[str(ns.get("metadata", {}).get("name", ""))] = namespace_labels(ns)
        self._eips = {str(raw.get("metadata", {}).get("name", "")): raw for raw in eips}
        self._specs = [eip_spec(raw) for raw in self._eips.values()]
        ours = [raw for raw in services if is_ours(raw)]
        states = [
            ServiceState(
                service_request(raw, self._labels(raw)),
                tuple(canonical_ip(ip) for ip in ingress_ips(raw)),
            )
            for raw in ours
        ]
        eip_states = [EipState(spec, eip_used(self._eips[spec.name])) for spec in self._specs]
        rebuilt = rebuild(eip_states, states)
        self.allocator = rebuilt.allocator
        for raw in ours:
            self._publish(service_key(raw), ingress_ips(raw))
        for conflict in rebuilt.conflicts:
            self._pending.setdefault(conflict.lost_by, []).append(
                EventNote("Warning", "IPConflict", conflict.message)
            )
        self._refresh_router_ids()
        restored = sum(len(self.allocator.holdings.of_service(s.request.key)) for s in states)
        return StartReport(
            services=len(ours),
            restored=restored,
            conflicts=tuple(c.message for c in rebuilt.conflicts),
            dropped=tuple(f"{d.ip} {d.holder} ({d.source}): {d.why}" for d in rebuilt.dropped),
        )

    def set_eips(self, eips: Iterable[Raw]) -> None:
        """Apply the current Eips (edits never move a held address; see ``openelb.ipam``)."""
        self._eips = {str(raw.get("metadata", {}).get("name", "")): raw for raw in eips}
        self._specs = [eip_spec(raw) for raw in self._eips.values()]
        self.allocator.set_eips(self._specs)
        self._refresh_router_ids()
        self.generation += 1

    def set_namespace(self, name: str, raw: Raw | None) -> None:
        """A Namespace appeared, changed its labels or went away."""
        if raw is None:
            self._namespaces.pop(name, None)
        else:
            self._namespaces[name] = namespace_labels(raw)

    def published(self, key: ServiceKey, ips: Iterable[str]) -> None:
        """The controller wrote ``ips`` into the Service's status (or saw them there)."""
        self._publish(key, ips)

    # --- Services ------------------------------------------------------------------------------

    def reconcile(self, key: ServiceKey, raw: Raw | None) -> ServiceDecision:
        """The desired state of Service ``key`` (``raw`` None: it no longer exists)."""
        before = dict(self.allocator.holdings.of_service(key))
        decision = self._decide(key, raw)
        if self.allocator.holdings.of_service(key) != before:
            self.generation += 1
        if decision.failure is not None:
            self._waiting[key] = decision.failure
        elif decision.retry_after is None:
            self._waiting.pop(key, None)
        return decision

    def unassigned(self) -> dict[str, int]:
        """Services without (all) their addresses, counted by reason (``NoIPReason`` values)."""
        counts = dict.fromkeys((reason.value for reason in NoIPReason), 0)
        for reason in self._waiting.values():
            counts[reason.value] += 1
        return counts

    def _decide(self, key: ServiceKey, raw: Raw | None) -> ServiceDecision:
        if raw is None:
            released = self.allocator.release(key)
            self._publish(key, ())
            self._last_warning.pop(key, None)
            self._unlisted.pop(key, None)
            self._pending.pop(key, None)
            return ServiceDecision(key, released=released)
        if not is_ours(raw) and not self.allocator.holdings.of_service(key):
            return ServiceDecision(key)
        self._publish(key, ingress_ips(raw))
        if is_deleting(raw) or not is_opted_in(raw):
            return self._release(key, raw)
        return self._allocate(key, raw)

    def _release(self, key: ServiceKey, raw: Raw) -> ServiceDecision:
        released = self.allocator.release(key)
        finalizer = FinalizerChange.REMOVE if has_finalizer(raw) else FinalizerChange.KEEP
        self._last_warning.pop(key, None)
        if is_deleting(raw):
            return ServiceDecision(key, finalizer=finalizer, released=released)
        observed = ingress_ips(raw)
        ours = set(released) | set(self._published.get(key, ()))
        remaining = tuple(ip for ip in observed if canonical_ip(ip) not in ours)
        events: tuple[EventNote, ...] = ()
        if released:
            events = (
                EventNote(
                    "Normal",
                    "IPReleased",
                    f"released {', '.join(released)}: the Service no longer asks for openelb",
                ),
            )
        return ServiceDecision(
            key,
            ingress=remaining if remaining != observed else None,
            finalizer=finalizer,
            events=events,
            released=released,
            condition_write=condition_differs(raw, None),
        )

    def _allocate(self, key: ServiceKey, raw: Raw) -> ServiceDecision:
        request = service_request(raw, self._labels(raw))
        self._adopt(key, request, raw)
        before = self.allocator.addresses(key)
        result = self.allocator.allocate(request)
        finalizer = FinalizerChange.KEEP if has_finalizer(raw) else FinalizerChange.ADD
        events = self._pending.pop(key, [])
        held_before = {a.ip for a in before}
        if isinstance(result, NoIP):
            ips = tuple(a.ip for a in result.kept)
            note = (result.reason.value, result.message)
            if self._last_warning.get(key) != note:
                self._last_warning[key] = note
                events.append(EventNote("Warning", result.reason.value, result.message))
            released = tuple(ip for ip in held_before if ip not in ips)
            kept_note = f" (keeps {', '.join(ips)})" if ips else ""
            condition = ServiceCondition(False, result.reason.value, result.message + kept_note)
            return ServiceDecision(
                key,
                ingress=self._ingress_if_changed(raw, ips),
                finalizer=finalizer,
                events=tuple(events),
                released=released,
                failure=result.reason,
                condition=condition,
                condition_write=condition_differs(raw, condition),
            )
        new = tuple(a for a in result.addresses if a.ip not in held_before)
        blocked = [a.ip for a in new if self._published_elsewhere(a.ip, key)]
        if blocked:
            self._roll_back(key, before, raw)
            return ServiceDecision(
                key, finalizer=finalizer, events=tuple(events), retry_after=DEFER_SECONDS
            )
        events.extend(self._allocation_notes(key, result))
        events.extend(self._unlisted_notes(key, result))
        kept = {a.ip for a in result.addresses}
        condition = _assigned_condition(result)
        return ServiceDecision(
            key,
            ingress=self._ingress_if_changed(raw, result.ips),
            finalizer=finalizer,
            events=tuple(events),
            allocated=new,
            released=tuple(ip for ip in held_before if ip not in kept),
            failure=result.degraded[0].reason if result.degraded else None,
            condition=condition,
            condition_write=condition_differs(raw, condition),
        )

    def _adopt(self, key: ServiceKey, request: ServiceRequest, raw: Raw) -> None:
        """Take the stored status as truth where IPAM knows nothing better.

        An address in the Service's status that nobody holds in IPAM (written by a previous
        leader after this one listed, say) is restored to it before deciding, so the decision
        keeps it rather than moving the Service and handing the address to someone else.
        """
        held = self.allocator.holdings.of_service(key)
        for ip in ingress_ips(raw):
            try:
                family, _ = parse_ip(ip)
            except AddressError:
                continue
            if family not in held and not self.allocator.holders(ip):
                self.allocator.restore(request, ip)

    def _allocation_notes(self, key: ServiceKey, result: Allocation) -> list[EventNote]:
        notes: list[EventNote] = []
        if result.degraded:
            failure = result.degraded[0]
            note = (failure.reason.value, failure.message)
            if self._last_warning.get(key) != note:
                self._last_warning[key] = note
                notes.append(
                    EventNote(
                        "Warning",
                        failure.reason.value,
                        f"PreferDualStack: no {failure.family.value} address: {failure.message}",
                    )
                )
        else:
            self._last_warning.pop(key, None)
        if result.changed:
            described = ", ".join(
                f"{a.ip} (Eip '{a.pool}')" if a.pool else a.ip for a in result.addresses
            )
            shared = sorted({str(k) for a in result.addresses for k in a.shared_with})
            tail = f", shared with {', '.join(shared)}" if shared else ""
            notes.append(EventNote("Normal", "IPAllocated", f"assigned {described}{tail}"))
        return notes

    def _unlisted_notes(self, key: ServiceKey, result: Allocation) -> list[EventNote]:
        """A Warning when the Service keeps an address that no Eip contains or reports (its
        Eip was removed without our finalizer, or the address was written by someone else)."""
        unlisted = tuple(a.ip for a in result.addresses if a.pool is None)
        if self._unlisted.get(key, ()) == unlisted:
            return []
        if not unlisted:
            self._unlisted.pop(key, None)
            return []
        self._unlisted[key] = unlisted
        return [
            EventNote(
                "Warning",
                "AddressOutsidePools",
                f"keeps {', '.join(unlisted)}, which no Eip contains any more: it is not moved, "
                "but no Eip status lists it; add an Eip covering it or remove the Service's "
                "requested IP to get a new address",
            )
        ]

    def _roll_back(self, key: ServiceKey, before: tuple[Assigned, ...], raw: Raw) -> None:
        """Undo an allocation that took an address still published for another Service."""
        self.allocator.release(key)
        request = service_request(raw, self._labels(raw))
        for assigned in before:
            self.allocator.restore(request, assigned.ip, origin=assigned.pool)

    def _published_elsewhere(self, ip: str, key: ServiceKey) -> bool:
        """Another Service's stored status shows ``ip`` and IPAM does not count it a holder."""
        holders = set(self.allocator.holders(ip))
        return any(other != key and other not in holders for other in self._by_ip.get(ip, ()))

    def _ingress_if_changed(self, raw: Raw, ips: tuple[str, ...]) -> tuple[str, ...] | None:
        observed = tuple(canonical_ip(ip) for ip in ingress_ips(raw))
        return None if observed == ips else ips

    def _labels(self, raw: Raw) -> Mapping[str, str]:
        namespace = str(raw.get("metadata", {}).get("namespace", ""))
        labels = self._namespaces.get(namespace)
        return labels if labels is not None else {"kubernetes.io/metadata.name": namespace}

    def _publish(self, key: ServiceKey, ips: Iterable[str]) -> None:
        new = tuple(canonical_ip(ip) for ip in ips)
        old = self._published.get(key, ())
        if new == old:
            return
        for ip in old:
            holders = self._by_ip.get(ip)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._by_ip[ip]
        if new:
            self._published[key] = new
            for ip in new:
                self._by_ip.setdefault(ip, set()).add(key)
        else:
            self._published.pop(key, None)

    # --- Eips ----------------------------------------------------------------------------------

    def eip_names(self) -> tuple[str, ...]:
        """The Eips the reconciler knows."""
        return tuple(self._eips)

    def refresh_router_ids(self) -> None:
        """Recompute VIP router IDs (after a batch of Service decisions)."""
        self._refresh_router_ids()

    def _refresh_router_ids(self) -> None:
        stored: dict[str, int] = {}
        for raw in self._eips.values():
            for ip, value in eip_router_ids(raw).items():
                stored.setdefault(canonical_ip(ip), value)
        for ip, value in self._router_ids.ids.items():
            stored.setdefault(ip, value)
        self._router_ids = assign_vip_router_ids(
            self.allocator, self._specs, stored, self._router_id_range
        )

    def eip_status(self, name: str, *, now: str) -> dict[str, Any] | None:
        """Desired status of Eip ``name`` (None when unknown)."""
        raw = self._eips.get(name)
        if raw is None or name not in self.allocator.pools:
            return None
        return desired_eip_status(self.allocator, raw, router_ids=self._router_ids.ids, now=now)

    def eip_events(self, name: str) -> tuple[EventNote, ...]:
        """Warning Events for problems of Eip ``name`` not reported before (each once)."""
        pool = self.allocator.pools.get(name)
        if pool is None:
            self._eip_problems.pop(name, None)
            return ()
        problems = frozenset((p.kind.value, p.message) for p in pool.problems)
        notes = [
            (note.issue.value, f"VIP {ip}: {note.message}")
            for ip, note in self._router_ids.notes.items()
            if self._ip_in(name, ip)
        ]
        current = problems | frozenset(notes)
        seen = self._eip_problems.get(name, frozenset())
        self._eip_problems[name] = current
        return tuple(
            EventNote("Warning", reason, message) for reason, message in sorted(current - seen)
        )

    def _ip_in(self, name: str, ip: str) -> bool:
        try:
            family, value = parse_ip(ip)
        except AddressError:
            return False
        pool = self.allocator.pools[name]
        return pool.range is not None and pool.range.family is family and value in pool.range
