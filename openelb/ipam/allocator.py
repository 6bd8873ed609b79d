"""The allocator: which addresses a Service gets, following OpenELB's pool choice.

Per family the Service needs, the pool is (as in OpenELB's ``getEIP``): the Eip named by
``eip.openelb.kubesphere.io/v1alpha2``; else, for a requested IP (annotation
``eip.openelb.kubesphere.io/v1alpha1``, which wins over ``spec.loadBalancerIP``), the Eip holding
it; else the usable Eips of that family serving the namespace (``namespaces`` or
``namespaceSelector``), not-full first, then ascending ``priority`` (then oldest, then name, where
OpenELB's unstable sort left ties open), without falling back when they are all full; else the
default Eip of that family. Beyond OpenELB: one Eip name or IP per family for dual-stack, sharing
with a port check, and a Service joins an IP of its sharing key before taking a new one.

Addresses a Service holds are never moved by pool edits: a shrunk, disabled or deleted pool, or a
new exclusion, leaves them where they are (the pool reports them). They change only when the
Service's own request changes, and then only if the new request can be met: otherwise the
Service keeps what it had and gets :class:`NoIP` saying why.

Every call is a few dictionary and interval-set operations: no scan of holders or addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from openelb.ipam.addresses import AddressError, Family, format_ip, parse_ip
from openelb.ipam.holdings import Holdings
from openelb.ipam.model import (
    ANNOTATION_IP,
    ANNOTATION_POOL,
    EipSpec,
    IPFamilyPolicy,
    ServiceKey,
    ServiceRequest,
)
from openelb.ipam.outcomes import (
    DEGRADABLE,
    Allocation,
    Assigned,
    FamilyFailure,
    NoIP,
    NoIPReason,
)
from openelb.ipam.pools import Pool, build_pools
from openelb.ipam.sharing import Claim, Refusal, sharing_refusal
from openelb.ipam.validation import analyze_eips


@dataclass(slots=True)
class _Request:
    """A ServiceRequest, read and checked against the pools."""

    service: ServiceKey
    claim: Claim
    policy: IPFamilyPolicy
    families: tuple[Family, ...]
    requested: dict[Family, int]
    named: dict[Family, Pool]
    names: tuple[str, ...]
    namespace: str
    namespace_labels: Mapping[str, str]


_EligibleKey = tuple[Family, str, frozenset[tuple[str, str]]]
"""Family, namespace and its labels: what decides which pools serve a Service."""


@dataclass(slots=True)
class _Plan:
    family: Family
    value: int
    pool: Pool | None
    new: bool


class Allocator:
    """IPAM state: pools and holdings, and the decisions over them. Not thread-safe."""

    def __init__(self, eips: Iterable[EipSpec] = ()) -> None:
        self.holdings = Holdings()
        """Who holds what (read it; change it only through this class)."""
        self._by_family: dict[Family, list[Pool]] = {Family.IPV4: [], Family.IPV6: []}
        self._defaults: dict[Family, Pool] = {}
        self._eligible_cache: dict[_EligibleKey, tuple[Pool, ...]] = {}
        self.set_eips(eips)

    # --- pools ---------------------------------------------------------------------------------

    def set_eips(self, eips: Iterable[EipSpec]) -> None:
        """Apply the current set of Eips (add, change, remove pools); holders stay put."""
        analyses = analyze_eips(eips)
        pools, fresh = build_pools(analyses, self.holdings.pools)
        self.holdings.set_pools(pools, fresh)
        ordered = sorted(pools.values(), key=lambda pool: pool.spec.order_key)
        self._by_family = {
            family: [p for p in ordered if p.family is family and p.usable] for family in Family
        }
        self._defaults = {}
        self._eligible_cache = {}
        for pool in ordered:
            if pool.is_default and pool.family is not None:
                self._defaults.setdefault(pool.family, pool)

    @property
    def pools(self) -> Mapping[str, Pool]:
        """Current pools by Eip name."""
        return self.holdings.pools

    # --- reading -------------------------------------------------------------------------------

    def addresses(self, service: ServiceKey) -> tuple[Assigned, ...]:
        """What a Service holds now (IPv4 first)."""
        held = self.holdings.of_service(service)
        return tuple(
            self._assigned(service, family, held[family]) for family in Family if family in held
        )

    def holders(self, ip: str) -> tuple[ServiceKey, ...]:
        """Services holding ``ip``, in the order they got it (empty when free or invalid)."""
        try:
            family, value = parse_ip(ip)
        except AddressError:
            return ()
        held = self.holdings.get(family, value)
        return tuple(held.holders) if held else ()

    # --- allocating ----------------------------------------------------------------------------

    def allocate(self, request: ServiceRequest) -> Allocation | NoIP:
        """Give ``request`` its address(es), keeping what it holds when that still fits."""
        service = request.key
        read = self._read(request)
        if isinstance(read, NoIP):
            return read
        changed = self._leave_incompatible(read)
        current = dict(self.holdings.of_service(service))
        plans: dict[Family, _Plan] = {}
        failures: list[FamilyFailure] = []
        for family in read.families:
            value = current.get(family)
            if value is not None and self._still_fits(read, family, value):
                plans[family] = _Plan(family, value, None, new=False)
                continue
            planned = self._plan(read, family)
            if isinstance(planned, FamilyFailure):
                failures.append(planned)
                if value is not None:
                    plans[family] = _Plan(family, value, None, new=False)
            else:
                plans[family] = planned
        if failures and not self._tolerable(read, failures, plans):
            first = failures[0]
            return self._no_ip(service, first.reason, self._explain(read, failures), failures)
        return self._commit(read, current, plans, tuple(failures), changed=changed)

    def release(self, service: ServiceKey) -> tuple[str, ...]:
        """Free everything ``service`` holds; returns the addresses it had."""
        held = dict(self.holdings.of_service(service))
        for family, value in held.items():
            self.holdings.drop(service, family, value)
        return tuple(format_ip(family, value) for family, value in held.items())

    def restore(
        self, request: ServiceRequest, ip: str, *, origin: str | None = None
    ) -> Assigned | Refusal:
        """Record that ``request`` holds ``ip`` (rebuild from persisted state).

        Pools are not consulted (an address outside every pool, excluded or in a disabled pool
        is kept, as on a live manager); only the sharing rules and one-address-per-family are.
        """
        service = request.key
        try:
            family, value = parse_ip(ip, what="ingress IP")
        except AddressError as exc:
            return Refusal(NoIPReason.BAD_REQUEST, str(exc))
        current = self.holdings.of_service(service).get(family)
        if current == value:
            return self._assigned(service, family, value)
        if current is not None:
            return Refusal(
                NoIPReason.BAD_REQUEST,
                f"{service} already holds {family.value} address {format_ip(family, current)}",
            )
        claim = Claim.of(request)
        held = self.holdings.get(family, value)
        if held is not None:
            refusal = sharing_refusal(held.holders, service, claim)
            if refusal is not None:
                return refusal
        containing = self.holdings.index.containing(family, value)
        if containing:
            origin = containing[0].name
        self.holdings.take(service, claim, family, value, origin)
        return self._assigned(service, family, value)

    # --- reading a request ---------------------------------------------------------------------

    def _read(self, request: ServiceRequest) -> _Request | NoIP:
        service = request.key
        named: dict[Family, Pool] = {}
        names = request.pool_names
        for name in names:
            pool = self.pools.get(name)
            if pool is None:
                return self._no_ip(
                    service,
                    NoIPReason.POOL_NOT_FOUND,
                    f"Eip '{name}' (annotation {ANNOTATION_POOL}) does not exist",
                )
            if pool.family is None:
                return self._no_ip(service, NoIPReason.POOL_INVALID, _pool_unusable_message(pool))
            if pool.family in named:
                return self._no_ip(
                    service,
                    NoIPReason.BAD_REQUEST,
                    f"annotation {ANNOTATION_POOL} names two {pool.family.value} Eips "
                    f"('{named[pool.family].name}', '{name}'); name one per family",
                )
            named[pool.family] = pool
        requested = self._requested(request)
        if isinstance(requested, NoIP):
            return requested
        policy = IPFamilyPolicy.parse(request.ip_family_policy)
        families = _families(request, policy, requested, named)
        for family, value in requested.items():
            if family not in families:
                return self._no_ip(
                    service,
                    NoIPReason.FAMILY_MISMATCH,
                    f"requested {family.value} address {format_ip(family, value)} but the "
                    f"Service's families are {', '.join(f.value for f in families)}",
                )
        return _Request(
            service=service,
            claim=Claim.of(request),
            policy=policy,
            families=families,
            requested=requested,
            named=named,
            names=names,
            namespace=request.namespace,
            namespace_labels=request.namespace_labels,
        )

    def _requested(self, request: ServiceRequest) -> dict[Family, int] | NoIP:
        requested: dict[Family, int] = {}
        source = (
            f"annotation {ANNOTATION_IP}"
            if ANNOTATION_IP in request.annotations
            else "spec.loadBalancerIP"
        )
        for part in request.requested_ips_text.split(","):
            if not part.strip():
                continue
            try:
                family, value = parse_ip(part, what=f"requested IP ({source})")
            except AddressError as exc:
                return self._no_ip(request.key, NoIPReason.BAD_REQUEST, str(exc))
            if family in requested:
                return self._no_ip(
                    request.key,
                    NoIPReason.BAD_REQUEST,
                    f"{source} asks for two {family.value} addresses; ask for one per family",
                )
            requested[family] = value
        return requested

    # --- planning one family -------------------------------------------------------------------

    def _still_fits(self, read: _Request, family: Family, value: int) -> bool:
        if family in read.requested:
            return value == read.requested[family]
        pool = read.named.get(family)
        return pool is None or pool.range is None or value in pool.range

    def _plan(self, read: _Request, family: Family) -> _Plan | FamilyFailure:
        if family in read.requested:
            return self._plan_requested(read, family, read.requested[family])
        chosen = self._choose_pool(read, family)
        if isinstance(chosen, FamilyFailure):
            return chosen
        if read.claim.sharing_key is not None:
            joined = self._join_candidate(read, chosen, family)
            if joined is not None:
                return _Plan(family, joined, chosen, new=True)
        value = chosen.lowest_free()
        if value is None:
            return FamilyFailure(
                family,
                NoIPReason.POOL_FULL,
                f"Eip '{chosen.name}' ({chosen.range}) has no free address",
                chosen.name,
            )
        return _Plan(family, value, chosen, new=True)

    def _plan_requested(self, read: _Request, family: Family, value: int) -> _Plan | FamilyFailure:
        ip = format_ip(family, value)
        containing = self.holdings.index.containing(family, value)
        if read.named:
            pool = read.named.get(family)
            if pool is None or pool not in containing:
                where = f"Eip '{pool.name}' ({pool.range})" if pool else "the named Eip(s)"
                return FamilyFailure(
                    family, NoIPReason.IP_NOT_IN_POOL, f"requested IP {ip} is not in {where}"
                )
        elif not containing:
            return FamilyFailure(
                family, NoIPReason.IP_OUTSIDE_POOLS, f"requested IP {ip} is in no Eip"
            )
        else:
            pool = containing[0]
        if not pool.usable:
            return _unusable(pool, family)
        if value in pool.excluded:
            return FamilyFailure(
                family,
                NoIPReason.IP_EXCLUDED,
                f"requested IP {ip} is excluded in Eip '{pool.name}'",
                pool.name,
            )
        held = self.holdings.get(family, value)
        if held is not None:
            refusal = sharing_refusal(held.holders, read.service, read.claim)
            if refusal is not None:
                return FamilyFailure(
                    family, refusal.reason, f"requested IP {ip} is {refusal.message}", pool.name
                )
        return _Plan(family, value, pool, new=True)

    def _choose_pool(self, read: _Request, family: Family) -> Pool | FamilyFailure:
        if read.names:
            pool = read.named.get(family)
            if pool is None:
                return FamilyFailure(
                    family,
                    NoIPReason.FAMILY_MISMATCH,
                    f"no {family.value} Eip among {', '.join(read.names)} "
                    f"(annotation {ANNOTATION_POOL})",
                )
            return pool if pool.usable else _unusable(pool, family)
        eligible = self._eligible(read, family)
        if eligible:
            # Sorted by (priority, age): the first with room wins; all full, the first anyway.
            return next((pool for pool in eligible if not pool.full), eligible[0])
        default = self._defaults.get(family)
        if default is not None:
            return default
        return FamilyFailure(
            family,
            NoIPReason.NO_POOL,
            f"no usable {family.value} Eip serves namespace '{read.namespace}' and there is "
            f"no usable default {family.value} Eip",
        )

    def _eligible(self, read: _Request, family: Family) -> tuple[Pool, ...]:
        """Usable pools of ``family`` serving the namespace, by (priority, age), memoised per
        namespace and labels so many Eips do not cost every allocation a scan."""
        cache_key = (family, read.namespace, frozenset(read.namespace_labels.items()))
        eligible = self._eligible_cache.get(cache_key)
        if eligible is None:
            eligible = tuple(
                sorted(
                    (
                        pool
                        for pool in self._by_family[family]
                        if pool.spec.serves(read.namespace, read.namespace_labels)
                    ),
                    key=lambda pool: (pool.priority, pool.spec.order_key),
                )
            )
            self._eligible_cache[cache_key] = eligible
        return eligible

    def _join_candidate(self, read: _Request, pool: Pool, family: Family) -> int | None:
        assert read.claim.sharing_key is not None and pool.range is not None
        candidates = self.holdings.sharing_candidates(family, read.claim.sharing_key)
        for value in sorted(candidates):
            if value not in pool.range or value in pool.excluded:
                continue
            held = self.holdings.get(family, value)
            if held is not None and sharing_refusal(held.holders, read.service, read.claim) is None:
                return value
        return None

    # --- deciding and committing ---------------------------------------------------------------

    def _leave_incompatible(self, read: _Request) -> bool:
        """Drop shared addresses the Service's new ports or key clash on (it must not stay)."""
        left = False
        for family, value in list(self.holdings.of_service(read.service).items()):
            held = self.holdings.get(family, value)
            assert held is not None
            if sharing_refusal(held.holders, read.service, read.claim) is not None:
                self.holdings.drop(read.service, family, value)
                left = True
        return left

    @staticmethod
    def _tolerable(
        read: _Request, failures: list[FamilyFailure], plans: Mapping[Family, _Plan]
    ) -> bool:
        """PreferDualStack settles for what it got, unless an explicit request failed."""
        if read.policy is not IPFamilyPolicy.PREFER_DUAL_STACK:
            return False
        if any(f.reason not in DEGRADABLE or f.family in read.requested for f in failures):
            return False
        return bool(plans)

    def _commit(
        self,
        read: _Request,
        current: Mapping[Family, int],
        plans: Mapping[Family, _Plan],
        degraded: tuple[FamilyFailure, ...],
        *,
        changed: bool,
    ) -> Allocation:
        service = read.service
        for family, value in current.items():
            plan = plans.get(family)
            if plan is None or plan.value != value:
                self.holdings.drop(service, family, value)
                changed = True
        for plan in plans.values():
            if plan.new:
                origin = plan.pool.name if plan.pool else None
                self.holdings.take(service, read.claim, plan.family, plan.value, origin)
                changed = True
            else:
                self.holdings.update_claim(service, read.claim, plan.family, plan.value)
        addresses = tuple(
            self._assigned(service, family, plan.value, plan.pool)
            for family in read.families
            if (plan := plans.get(family)) is not None
        )
        return Allocation(service, addresses, degraded, changed=changed)

    def _assigned(
        self, service: ServiceKey, family: Family, value: int, chosen: Pool | None = None
    ) -> Assigned:
        held = self.holdings.get(family, value)
        others = tuple(key for key in held.holders if key != service) if held else ()
        # A usable pool that handed the address out is the one it counts against (usable pools
        # never overlap), which saves the lookup on the allocation path.
        pool = chosen.name if chosen is not None and chosen.usable else None
        if pool is None:
            pool = self.holdings.attributed_pool(family, value)
        return Assigned(family, format_ip(family, value), pool, others)

    def _no_ip(
        self,
        service: ServiceKey,
        reason: NoIPReason,
        message: str,
        failures: Iterable[FamilyFailure] = (),
    ) -> NoIP:
        return NoIP(service, reason, message, tuple(failures), self.addresses(service))

    @staticmethod
    def _explain(read: _Request, failures: list[FamilyFailure]) -> str:
        text = "; ".join(f"{f.family.value}: {f.message}" for f in failures)
        if read.policy is IPFamilyPolicy.REQUIRE_DUAL_STACK:
            return f"RequireDualStack needs an address of each family: {text}"
        return text


def _families(
    request: ServiceRequest,
    policy: IPFamilyPolicy,
    requested: Mapping[Family, int],
    named: Mapping[Family, Pool],
) -> tuple[Family, ...]:
    """The families to allocate, primary first.

    The Service's ipFamilies when it has them (the API server always fills them in: a
    PreferDualStack Service in a single-stack cluster lists one family, and kube-proxy would not
    serve a second); otherwise the family of the requested IP or named Eip, else IPv4.
    """
    declared: list[Family] = []
    for text in request.ip_families:
        family = Family.parse(text)
        if family is not None and family not in declared:
            declared.append(family)
    if declared:
        primary = declared[0]
    elif requested:
        primary = next(iter(requested))
    elif named:
        primary = next(iter(named))
    else:
        primary = Family.IPV4
    if policy is IPFamilyPolicy.SINGLE_STACK:
        return (primary,)
    if len(declared) == 1:
        return (
            (primary,) if policy is IPFamilyPolicy.PREFER_DUAL_STACK else (primary, primary.other)
        )
    return (primary, primary.other)


def _unusable(pool: Pool, family: Family) -> FamilyFailure:
    reason = NoIPReason.POOL_DISABLED if pool.spec.disable else NoIPReason.POOL_INVALID
    if pool.spec.disable and not pool.analysis.valid:
        reason = NoIPReason.POOL_INVALID
    if pool.spec.deleting:
        reason = NoIPReason.POOL_DELETING
    return FamilyFailure(family, reason, _pool_unusable_message(pool), pool.name)


def _pool_unusable_message(pool: Pool) -> str:
    if pool.spec.deleting:
        return f"Eip '{pool.name}' is being deleted"
    blocking = [problem.message for problem in pool.problems if problem.blocking]
    if blocking:
        return f"Eip '{pool.name}' is invalid: {'; '.join(blocking)}"
    return f"Eip '{pool.name}' is disabled"
