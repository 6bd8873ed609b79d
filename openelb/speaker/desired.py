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
        # Once per address: a Service listing an address twice is still one Service on it.
        for ip in dict.fromkeys(_canonical(ip) for ip in svc.ingress_ips):
            on_ip.setdefault(ip, []).append(svc)
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


@dataclass(frozen=True, slots=True)
class _ServiceFacts:
    """What one Service contributes: its canonical ingress IPs and whether it is ETP Local."""

    ips: tuple[str, ...]
    local: bool


class DesiredVips:
    """:func:`desired_vips`, kept current object by object.

    At 10,000 Services a full :func:`desired_vips` takes ~170 ms of CPU, and the speaker ran it on
    every watch change: with ten speakers on two CPUs, control-loop iterations took seconds. Here
    each changed Service or EndpointSlice only marks the VIPs it touches, and :meth:`update`
    rebuilds the plans of those VIPs alone; a change of pools or of which nodes have each Eip's
    interface (rare) re-plans every VIP from what is already parsed. The result always equals
    :func:`desired_vips` over the same objects (a test checks it over random event sequences).
    """

    def __init__(self) -> None:
        self.plans: dict[str, VipPlan] = {}
        """ip -> plan, as of the last :meth:`update` (do not mutate)."""
        self._services: dict[str, _ServiceFacts] = {}
        self._on_ip: dict[str, set[str]] = {}  # ip -> keys of the Services carrying it
        self._slices: dict[str, tuple[str, frozenset[str]]] = {}  # slice -> (service, ready nodes)
        self._ready: dict[str, dict[str, frozenset[str]]] = {}  # service -> slice -> ready nodes
        self._pools: list[AddressPool] = []
        self._eip_of: dict[str, str | None] = {}  # ip -> pool (cache, reset with the pools)
        self._with_nic: dict[str, frozenset[str]] = {}  # eip -> nodes that may serve it
        self._records: Mapping[str, SpeakerRecord] = {}
        self._dirty: set[str] = set()
        self._all_dirty = False

    # --- inputs ----------------------------------------------------------------------------------

    def set_service(self, key: str, svc: Service | None) -> None:
        """The Service ``key`` is now ``svc`` (None: deleted)."""
        old = self._services.pop(key, None)
        if old is not None:
            for ip in old.ips:
                self._dirty.add(ip)
                holders = self._on_ip.get(ip)
                if holders is not None:
                    holders.discard(key)
                    if not holders:
                        del self._on_ip[ip]
        if svc is None or not svc.opted_in or svc.deleting or not svc.ingress_ips:
            return
        facts = _ServiceFacts(
            ips=tuple(dict.fromkeys(_canonical(ip) for ip in svc.ingress_ips)),
            local=svc.external_traffic_policy == "Local",
        )
        self._services[key] = facts
        for ip in facts.ips:
            self._dirty.add(ip)
            self._on_ip.setdefault(ip, set()).add(key)

    def set_slice(self, key: str, sl: EndpointSlice | None) -> None:
        """The EndpointSlice ``key`` is now ``sl`` (None: deleted)."""
        old = self._slices.pop(key, None)
        if old is not None:
            per_slice = self._ready.get(old[0])
            if per_slice is not None:
                per_slice.pop(key, None)
                if not per_slice:
                    del self._ready[old[0]]
            self._touch_service(old[0])
        if sl is None:
            return
        entry = (sl.service_key, sl.ready_nodes())
        self._slices[key] = entry
        self._ready.setdefault(entry[0], {})[key] = entry[1]
        self._touch_service(entry[0])

    def set_pools(self, eips: Iterable[Eip]) -> None:
        """The Eips now (cheap to call on every recompute: only a change re-plans)."""
        pools = layer2_pools(eips)
        if pools != self._pools:
            self._pools = pools
            self._eip_of.clear()
            self._all_dirty = True

    def set_records(self, records: Mapping[str, SpeakerRecord]) -> None:
        """Every live speaker's record (cheap when nothing that matters changed)."""
        self._records = records
        names = {p.name for p in self._pools} | set(self._with_nic)
        with_nic = {
            eip: frozenset(n for n, r in records.items() if r.may_serve(eip)) for eip in names
        }
        if with_nic != self._with_nic:
            self._with_nic = with_nic
            self._all_dirty = True

    def reset(
        self,
        *,
        services: Iterable[Service],
        slices: Iterable[EndpointSlice],
    ) -> None:
        """Forget every Service and slice and take these instead (after a relist)."""
        for key in list(self._services):
            self.set_service(key, None)
        for key in list(self._slices):
            self.set_slice(key, None)
        for svc in services:
            self.set_service(svc.key, svc)
        for sl in slices:
            self.set_slice(sl.key, sl)

    # --- output ----------------------------------------------------------------------------------

    def update(self) -> tuple[dict[str, VipPlan], set[str]]:
        """Re-plan what changed since the last call: (new or changed plans, removed VIPs)."""
        if self._all_dirty:
            dirty: Iterable[str] = set(self.plans) | set(self._on_ip)
            # Pools or interfaces changed: the with-NIC sets of Eips that are gone go too.
            self._with_nic = {p.name: self._nic_nodes(p.name) for p in self._pools}
        else:
            dirty = self._dirty
        changed: dict[str, VipPlan] = {}
        removed: set[str] = set()
        for ip in dirty:
            plan = self._plan(ip)
            old = self.plans.get(ip)
            if plan is None:
                if old is not None:
                    del self.plans[ip]
                    removed.add(ip)
            elif plan != old:
                self.plans[ip] = plan
                changed[ip] = plan
        self._dirty = set()
        self._all_dirty = False
        return changed, removed

    # --- internals -------------------------------------------------------------------------------

    def _touch_service(self, key: str) -> None:
        facts = self._services.get(key)
        if facts is not None:
            self._dirty.update(facts.ips)

    def _nic_nodes(self, eip: str) -> frozenset[str]:
        found = self._with_nic.get(eip)
        if found is None:
            found = frozenset(n for n, r in self._records.items() if r.may_serve(eip))
        return found

    def _plan(self, ip: str) -> VipPlan | None:
        keys = self._on_ip.get(ip)
        if not keys:
            return None
        if ip in self._eip_of:
            eip = self._eip_of[ip]
        else:
            eip = self._eip_of[ip] = pool_of(ip, self._pools)
        if eip is None:
            return None
        with_nic = self._nic_nodes(eip)
        facts = [self._services[k] for k in keys]
        local = all(f.local for f in facts)
        candidates = with_nic
        if local:
            endpoints: set[str] = set()
            for k in keys:
                for ready in self._ready.get(k, {}).values():
                    endpoints |= ready
            candidates = with_nic & endpoints
        return VipPlan(
            ip=ip, eip=eip, services=tuple(sorted(keys)), candidates=candidates, local=local
        )
