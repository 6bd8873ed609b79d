"""An Eip's desired status as the CRD spells it: IPAM's numbers, conditions, VRRP router IDs.

``openelb.ipam`` computes the numbers and the Ready/Overlap/Invalid verdicts; this adds what an
API object needs: ``lastTransitionTime`` that only moves when a condition's status changes,
``observedGeneration``, and ``virtualRouterIDs`` (VIP -> VRRP router ID) for ``protocol: vip``.

Every Eip carries :data:`~openelb.manager.optin.EIP_FINALIZER`, so deleting a pool that Services
still use leaves it in place, reporting them (Ready False, reason Deleting) and handing out
nothing, until the last one lets its address go: no address ever goes unlisted.

Router IDs are assigned per VIP across every VIP-mode Eip (each VIP is its own VRRP instance so
VIPs can be spread over nodes), stored in the status and kept across restarts: every node reads
the same value, where OpenELB hashed them per node and nodes could disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from openelb.ipam import (
    Allocator,
    EipSpec,
    RouterIdNote,
    RouterIdRange,
    assign_router_ids,
    eip_conditions,
    eip_status,
)
from openelb.manager.decisions import FinalizerChange
from openelb.manager.optin import EIP_FINALIZER, Raw, has_finalizer, is_deleting


@dataclass(frozen=True)
class VipRouterIds:
    """Router IDs of every VIP-mode address, and what could not be kept or given."""

    ids: dict[str, int] = field(default_factory=dict)
    """VIP -> router ID."""
    notes: dict[str, RouterIdNote] = field(default_factory=dict)
    """VIP -> why it has no ID or a new one."""


def assign_vip_router_ids(
    allocator: Allocator,
    eips: Iterable[EipSpec],
    stored: Mapping[str, int],
    id_range: RouterIdRange | None = None,
) -> VipRouterIds:
    """IDs for the addresses held in VIP-mode Eips, keeping ``stored`` ones where possible.

    Reuses IPAM's per-Eip rule (keep a stored ID unless out of range or claimed by an older one;
    the rest get the lowest free ID, oldest first) with one entry per VIP, ordered by its Eip's
    age and then the address.
    """
    entries: list[EipSpec] = []
    for spec in eips:
        if spec.effective_protocol != "vip" or spec.name not in allocator.pools:
            continue
        for ip in eip_status(allocator, spec.name).used:
            entries.append(
                EipSpec(
                    name=ip,
                    address=ip,
                    protocol="vip",
                    interface=spec.interface,
                    created=spec.created,
                    router_id=stored.get(ip),
                )
            )
    assignment = assign_router_ids(entries, id_range)
    return VipRouterIds(dict(assignment.ids), dict(assignment.notes))


def desired_eip_status(
    allocator: Allocator,
    raw: Raw,
    *,
    router_ids: Mapping[str, int],
    now: str,
) -> dict[str, Any]:
    """The status Eip ``raw`` should have; ``now`` (RFC 3339) stamps changed conditions."""
    meta = raw.get("metadata", {})
    name = str(meta.get("name", ""))
    pool = allocator.pools[name]
    computed = eip_status(allocator, name)
    status: dict[str, Any] = computed.to_dict()
    previous = {
        c.get("type"): c
        for c in (raw.get("status") or {}).get("conditions") or ()
        if isinstance(c, Mapping)
    }
    conditions = []
    for condition in eip_conditions(pool, computed):
        before = previous.get(condition.type) or {}
        since = (
            before.get("lastTransitionTime") if before.get("status") == condition.status else None
        )
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": since or now,
        }
        if "generation" in meta:
            entry["observedGeneration"] = meta["generation"]
        conditions.append(entry)
    status["conditions"] = conditions
    if pool.spec.effective_protocol == "vip":
        status["virtualRouterIDs"] = {
            ip: router_ids[ip] for ip in computed.used if ip in router_ids
        }
    return status


def eip_finalizer_change(raw: Raw, *, usage: int) -> FinalizerChange:
    """Add the finalizer to a live Eip; remove it from a deleted one that holds no address."""
    present = has_finalizer(raw, EIP_FINALIZER)
    if is_deleting(raw):
        return FinalizerChange.REMOVE if present and usage == 0 else FinalizerChange.KEEP
    return FinalizerChange.KEEP if present else FinalizerChange.ADD
