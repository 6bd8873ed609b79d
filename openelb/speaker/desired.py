"""From the cluster's objects to what the speakers must serve: VIPs and who may hold each.

Every speaker runs this over the same watched objects, so the inputs of the ownership table are
the same everywhere:

- node eligibility: Node Ready and not labelled ``node.kubernetes.io/exclude-from-external-load-
  balancers``;
- the VIPs: ingress IPs of opted-in LoadBalancer Services that lie in an enabled ``layer2`` Eip
  (the manager wrote them; the speaker never allocates);
- per VIP, the candidate nodes: speakers that resolved the Eip's interface on their node, or
  have not published yet that they lack it (their Lease says so: ``SpeakerRecord.may_serve``)
  and, when every Service on that IP has ``externalTrafficPolicy: Local``, nodes with a ready
  endpoint (EndpointSlices).

Pure: views in, plain data out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from openelb.ipam.addresses import (
    AddressError,
    AddressRange,
    format_ip,
    parse_ip,
    parse_pool_address,
)
from openelb.kube.views import Eip, EndpointSlice, Node, Service
from openelb.speaker.records import SpeakerRecord

LAYER2 = "layer2"


@dataclass(frozen=True)
class VipPlan:
    """One VIP to serve: its pool, the Services on it, and who may hold it."""

    ip: str
    eip: str
    services: tuple[str, ...]
    """``namespace/name`` of every Service with this ingress IP (sharing)."""
    candidates: frozenset[str]
    """Nodes allowed to hold it (already filtered by interface and endpoints)."""
    local: bool
    """Every Service on it has ``externalTrafficPolicy: Local``."""


def node_eligibility(nodes: Iterable[Node]) -> dict[str, bool]:
    """Node -> may hold VIPs (Ready, not excluded)."""
    return {n.name: n.ready and not n.excluded_from_load_balancers for n in nodes}


@dataclass(frozen=True)
class AddressPool:
    """An Eip's name and the addresses its spec covers."""

    name: str
    range: AddressRange


def address_pools(
    eips: Iterable[Eip], *, keep: Callable[[Eip], bool] = lambda _eip: True
) -> list[AddressPool]:
    """The kept Eips with a parsable address, by name (invalid ones are the manager's to report)."""
    pools = []
    for eip in eips:
        if not keep(eip):
            continue
        try:
            parsed = parse_pool_address(str(eip.spec.get("address") or ""))
        except AddressError:
            continue
        pools.append(AddressPool(eip.name, parsed.range))
    return sorted(pools, key=lambda p: p.name)


def layer2_pools(eips: Iterable[Eip]) -> list[AddressPool]:
    """Enabled Layer 2 Eips with a parsable address."""
    return address_pools(
        eips,
        keep=lambda eip: (
            str(eip.spec.get("protocol") or "") == LAYER2 and not eip.spec.get("disable")
        ),
    )


def pool_of(ip: str, pools: list[AddressPool]) -> str | None:
    """Name of the first pool whose range holds ``ip``, None if none does (or ``ip`` is bad)."""
    try:
        family, value = parse_ip(ip)
    except AddressError:
        return None
    for pool in pools:
        if pool.range.family is family and value in pool.range:
            return pool.name
    return None


def desired_vips(
    *,
    services: Iterable[Service],
    eips: Iterable[Eip],
    slices: Iterable[EndpointSlice],
    records: Mapping[str, SpeakerRecord],
) -> dict[str, VipPlan]:
    """Every VIP this cluster serves in Layer 2 mode, with its candidate nodes."""
    pools = layer2_pools(eips)
    ready_by_service: dict[str, set[str]] = {}
    for sl in slices:
        ready_by_service.setdefault(sl.service_key, set()).update(sl.ready_nodes())
    on_ip: dict[str, list[Service]] = {}
    for svc in services:
        if not svc.opted_in or svc.deleting:
            continue
        for ip in svc.ingress_ips:
            on_ip.setdefault(_canonical(ip), []).append(svc)
    plans: dict[str, VipPlan] = {}
    for ip, svcs in sorted(on_ip.items()):
        eip = pool_of(ip, pools)
        if eip is None:
            continue
        with_nic = frozenset(n for n, r in records.items() if r.may_serve(eip))
        local = all(s.external_traffic_policy == "Local" for s in svcs)
        candidates = with_nic
        if local:
            endpoints: set[str] = set()
            for s in svcs:
                endpoints |= ready_by_service.get(s.key, set())
            candidates = with_nic & endpoints
        plans[ip] = VipPlan(
            ip=ip,
            eip=eip,
            services=tuple(sorted(s.key for s in svcs)),
            candidates=candidates,
            local=local,
        )
    return plans


def _canonical(ip: str) -> str:
    try:
        family, value = parse_ip(ip)
    except AddressError:
        return ip
    return format_ip(family, value)
