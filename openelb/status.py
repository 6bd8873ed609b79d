"""`openelb status`: what a user asks first — which pools, which Service has which IP, who answers.

Read-only and one-shot: a single list of each resource, then the same pure functions the speakers
run (:func:`openelb.speaker.desired.desired_vips`, the sha256 ranking) to say which node holds each
Layer 2 VIP and which is its backup. Speakers agree on that from the same inputs, so the answer is
what the cluster converges to; within a detection interval of a failure the speakers may already
have moved on (their Leases expire only after seconds), which the output says.

For Services without an IP the reason is the latest Warning Event the manager wrote on them, and
for VIP-mode pools the holder is the latest ``VIPHeld`` Event of the speakers (keepalived elects
the master, not openelb).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from openelb.kube.client import KubeApi
from openelb.kube.resources import EIPS, ENDPOINTSLICES, EVENTS, LEASES, NODES, SERVICES
from openelb.kube.views import Eip, EndpointSlice, Lease, Node, Service, ViewError
from openelb.speaker.desired import (
    AddressPool,
    address_pools,
    desired_vips,
    node_eligibility,
    pool_of,
)
from openelb.speaker.ownership import compute_placement
from openelb.speaker.records import SpeakerRecord, node_of_lease, parse_record

MANAGER_LEASE = "openelb-manager"
DEFAULT_NAMESPACE = "openelb-system"


@dataclass(frozen=True)
class LeaderInfo:
    holder: str
    renewed_ago: float | None
    expired: bool


@dataclass(frozen=True)
class SpeakerInfo:
    node: str
    alive: bool
    renewed_ago: float | None
    interfaces: Mapping[str, str]
    macs: Mapping[str, str]
    node_eligible: bool


@dataclass(frozen=True)
class PoolInfo:
    name: str
    address: str
    protocol: str
    interface: str
    usage: int | None
    pool_size: str
    default: bool
    disabled: bool
    conditions: tuple[str, ...]


@dataclass(frozen=True)
class AddressInfo:
    ip: str
    pool: str
    holder: str
    """Node that answers for the IP by the speakers' rule (``-`` when nobody can)."""
    backup: str
    announced_by: str
    """Node of the latest ``Announced``/``VIPHeld`` Event for this IP (``-`` if none)."""
    note: str


@dataclass(frozen=True)
class ServiceInfo:
    key: str
    addresses: tuple[AddressInfo, ...]
    note: str
    """Why there is no IP, when there is none."""

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(a.ip for a in self.addresses)


@dataclass(frozen=True)
class ClusterStatus:
    leader: LeaderInfo | None
    speakers: tuple[SpeakerInfo, ...]
    pools: tuple[PoolInfo, ...]
    services: tuple[ServiceInfo, ...]
    problems: tuple[str, ...] = field(default=())
    """Objects that could not be read (malformed), named."""

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)


def collect(
    api: KubeApi, *, namespace: str = DEFAULT_NAMESPACE, now: float | None = None
) -> ClusterStatus:
    """Read the cluster once and work out the status (``namespace``: where the Leases live)."""
    now = time.time() if now is None else now
    problems: list[str] = []
    services = _views(api.list(SERVICES)[0], Service.from_raw, problems)
    eips = _views(api.list(EIPS)[0], Eip.from_raw, problems)
    nodes = _views(api.list(NODES)[0], Node.from_raw, problems)
    slices = _views(api.list(ENDPOINTSLICES)[0], EndpointSlice.from_raw, problems)
    leases = _views(api.list(LEASES, namespace=namespace)[0], Lease.from_raw, problems)
    events = api.list(EVENTS)[0]
    return build_status(
        services=services,
        eips=eips,
        nodes=nodes,
        slices=slices,
        leases=leases,
        events=events,
        now=now,
        problems=problems,
    )


def build_status(
    *,
    services: list[Service],
    eips: list[Eip],
    nodes: list[Node],
    slices: list[EndpointSlice],
    leases: list[Lease],
    events: list[dict[str, Any]],
    now: float,
    problems: list[str] | None = None,
) -> ClusterStatus:
    """The pure part of :func:`collect`: objects in, status out."""
    problems = list(problems or [])
    eligible = node_eligibility(nodes)
    leader: LeaderInfo | None = None
    records: dict[str, SpeakerRecord] = {}
    speakers: list[SpeakerInfo] = []
    for lease in leases:
        ago = _ago(lease, now)
        expired = ago is None or ago > lease.duration_seconds
        if lease.name == MANAGER_LEASE:
            leader = LeaderInfo(lease.holder, ago, expired)
            continue
        node = node_of_lease(lease.name)
        if node is None:
            continue
        record = parse_record(node, lease.meta.annotations)
        if isinstance(record, str):
            problems.append(record)
            continue
        if not expired:
            records[node] = record
        speakers.append(
            SpeakerInfo(
                node=node,
                alive=not expired,
                renewed_ago=ago,
                interfaces=dict(record.interfaces),
                macs=dict(record.macs),
                node_eligible=eligible.get(node, False),
            )
        )
    plans = desired_vips(services=services, eips=eips, slices=slices, records=records)
    live = [n for n in records if eligible.get(n, False)]
    pools = [_pool_info(e) for e in sorted(eips, key=lambda e: e.name)]
    protocol_of = {p.name: p.protocol for p in pools}
    macs = {n: r.macs for n, r in records.items()}
    latest = _latest_events(events)
    ranges = address_pools(eips)  # every Eip, any protocol: which pool an address is from
    announced = _announcers(events)
    infos: list[ServiceInfo] = []
    for svc in sorted(services, key=lambda s: s.key):
        if not svc.is_load_balancer or not svc.opted_in:
            continue
        infos.append(
            _service_info(
                svc,
                plans=plans,
                live=live,
                macs=macs,
                protocol_of=protocol_of,
                latest=latest,
                announced=announced,
                ranges=ranges,
            )
        )
    return ClusterStatus(
        leader=leader,
        speakers=tuple(sorted(speakers, key=lambda s: s.node)),
        pools=tuple(pools),
        services=tuple(infos),
        problems=tuple(problems),
    )


def _service_info(
    svc: Service,
    *,
    plans: Mapping[str, Any],
    live: list[str],
    macs: Mapping[str, Mapping[str, str]],
    protocol_of: Mapping[str, str],
    latest: Mapping[tuple[str, str], dict[str, tuple[str, str]]],
    announced: Mapping[str, str],
    ranges: list[AddressPool],
) -> ServiceInfo:
    reasons = latest.get((svc.namespace, svc.name), {})
    if not svc.ingress_ips:
        warning = reasons.get("Warning")
        note = f"no IP: {warning[0]}: {warning[1]}" if warning else "no IP yet"
        return ServiceInfo(svc.key, (), note)
    addresses = []
    for ip in svc.ingress_ips:
        by_event = announced.get(ip, "-")
        plan = plans.get(ip)
        if plan is None:
            pool = pool_of(ip, ranges) or "?"
            note = (
                "VIP mode: keepalived elects the holder"
                if protocol_of.get(pool) == "vip"
                else "not in an enabled layer2 pool (VIP/BGP mode, or the pool is gone)"
            )
            addresses.append(AddressInfo(ip, pool, by_event, "-", by_event, note))
            continue
        placement = compute_placement(ip, live=live, candidates=plan.candidates)
        note = ""
        if placement.owner is None:
            note = "nobody answers: no live speaker with the pool's interface"
            if plan.local:
                note += " and a ready local endpoint (externalTrafficPolicy: Local)"
        elif by_event not in ("-", placement.owner):
            note = (
                f"last announced by {by_event}: {placement.owner}'s speaker may have stopped "
                "within its Lease's duration, or is starting"
            )
        holder = placement.owner or "-"
        mac = next(iter(macs.get(holder, {}).values()), "")
        addresses.append(
            AddressInfo(
                ip=ip,
                pool=plan.eip,
                holder=f"{holder} ({mac})" if mac else holder,
                backup=placement.backup or "-",
                announced_by=by_event,
                note=note,
            )
        )
    return ServiceInfo(svc.key, tuple(addresses), "")


def _pool_info(eip: Eip) -> PoolInfo:
    spec, status = eip.spec, eip.status
    conditions = tuple(
        f"{c.get('type')}={c.get('status')}" + (f" ({c.get('reason')})" if c.get("reason") else "")
        for c in status.get("conditions") or []
        if isinstance(c, dict)
    )
    usage = status.get("usage")
    return PoolInfo(
        name=eip.name,
        address=str(spec.get("address") or ""),
        protocol=str(spec.get("protocol") or "bgp"),
        interface=str(spec.get("interface") or ""),
        usage=usage if isinstance(usage, int) else None,
        pool_size=str(status.get("poolSize", "?")),
        default=eip.annotations.get("eip.openelb.kubesphere.io/is-default-eip") == "true",
        disabled=bool(spec.get("disable")),
        conditions=conditions,
    )


def _latest_events(
    events: Iterable[dict[str, Any]],
) -> dict[tuple[str, str], dict[str, tuple[str, str]]]:
    """(namespace, name) of a Service -> {"Warning" | reason: (reason, message)} of the latest."""
    out: dict[tuple[str, str], dict[str, tuple[str, str, str]]] = {}
    for ev in events:
        obj = ev.get("involvedObject") or {}
        if obj.get("kind") != "Service":
            continue
        stamp = str(ev.get("lastTimestamp") or ev.get("eventTime") or "")
        reason, message = str(ev.get("reason") or ""), str(ev.get("message") or "")
        slot = out.setdefault((str(obj.get("namespace") or ""), str(obj.get("name") or "")), {})
        keys = [reason] + (["Warning"] if ev.get("type") == "Warning" else [])
        for key in keys:
            if key not in slot or slot[key][0] <= stamp:
                slot[key] = (stamp, reason, message)
    return {k: {r: (v[1], v[2]) for r, v in slot.items()} for k, slot in out.items()}


def _event_order(ev: dict[str, Any]) -> tuple[str, int]:
    """Latest last: by lastTimestamp (seconds), then resourceVersion (the write order)."""
    stamp = str(ev.get("lastTimestamp") or ev.get("eventTime") or "")
    rv = str((ev.get("metadata") or {}).get("resourceVersion") or "0")
    return stamp, int(rv) if rv.isdigit() else 0


def _announcers(events: Iterable[dict[str, Any]]) -> dict[str, str]:
    """IP -> node of the latest speaker Event saying it announced / holds it."""
    out: dict[str, str] = {}
    for ev in sorted(events, key=_event_order):
        message = str(ev.get("message") or "")
        if ev.get("reason") == "Announced" and " announced by node " in message:
            ip, _, rest = message.partition(" announced by node ")
            out[ip.strip()] = rest.split(" ", 1)[0]
        elif (
            ev.get("reason") == "VIPHeld" and message.startswith("VIP ") and " by node " in message
        ):
            # "VIP <ip> (Eip <e>, VRRP instance <i>) is held by node <n>[ (took over ...)]"
            out[message.split()[1]] = message.partition(" by node ")[2].split(" ", 1)[0]
    return out


def _views(raws: list[dict[str, Any]], make: Any, problems: list[str]) -> list[Any]:
    views = []
    for raw in raws:
        try:
            views.append(make(raw))
        except ViewError as exc:
            problems.append(str(exc))
    return views


def _ago(lease: Lease, now: float) -> float | None:
    renewed = lease.renewed_at
    return None if renewed is None else max(0.0, now - renewed)


def render(status: ClusterStatus) -> str:
    """The human-readable tables."""
    lines: list[str] = []
    if status.leader is None:
        lines.append("manager: no leader Lease (is the manager running?)")
    else:
        state = "EXPIRED" if status.leader.expired else "leader"
        lines.append(f"manager: {state} {status.leader.holder} ({_age(status.leader.renewed_ago)})")
    lines.append("")
    lines.append(f"speakers ({sum(s.alive for s in status.speakers)} alive):")
    rows = [["NODE", "STATE", "LEASE RENEWED", "NODE READY", "INTERFACES (pool=nic)", "MAC"]]
    for s in status.speakers:
        rows.append(
            [
                s.node,
                "alive" if s.alive else "EXPIRED",
                _age(s.renewed_ago),
                "yes" if s.node_eligible else "no/excluded",
                ",".join(f"{k}={v}" for k, v in sorted(s.interfaces.items())) or "-",
                ",".join(sorted(set(s.macs.values()))) or "-",
            ]
        )
    lines += _table(rows) if status.speakers else ["  none (no speaker Leases)"]
    lines.append("")
    lines.append("pools (Eips):")
    rows = [["NAME", "ADDRESS", "PROTOCOL", "INTERFACE", "USED", "FLAGS", "CONDITIONS"]]
    for p in status.pools:
        flags = ",".join(f for f, on in (("default", p.default), ("disabled", p.disabled)) if on)
        used = f"{p.usage}/{p.pool_size}" if p.usage is not None else f"?/{p.pool_size}"
        rows.append(
            [
                p.name,
                p.address,
                p.protocol,
                p.interface or "-",
                used,
                flags or "-",
                " ".join(p.conditions) or "-",
            ]
        )
    lines += _table(rows) if status.pools else ["  none"]
    lines.append("")
    lines.append("services (opted in to openelb):")
    rows = [["SERVICE", "IP", "POOL", "ANSWERED BY", "BACKUP", "LAST ANNOUNCED BY", "NOTE"]]
    for svc in status.services:
        if not svc.addresses:
            rows.append([svc.key, "-", "-", "-", "-", "-", svc.note])
        for a in svc.addresses:
            rows.append([svc.key, a.ip, a.pool, a.holder, a.backup, a.announced_by, a.note])
    lines += _table(rows) if status.services else ["  none"]
    if status.problems:
        lines.append("")
        lines.append("objects that could not be read:")
        lines += [f"  {p}" for p in status.problems]
    return "\n".join(lines)


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f}s ago"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
