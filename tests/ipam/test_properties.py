"""Random sequences of allocate / release / pool edits, checked against invariants and a model.

What must hold after every step, whatever happened before:
- no address is held by two Services unless all carry one sharing key and no (port, protocol)
  appears twice; a Service holds at most one address per family;
- the allocator's answers agree with a model built only from those answers (release returns
  exactly what was handed out, a NoIP keeps what the Service had);
- pool edits never move anyone; a new address is always inside a usable pool, never excluded,
  and an automatic one is the lowest free address of its pool;
- every pool's blocked set is exactly its exclusions plus the held addresses inside it, and the
  usage in the statuses adds up to the held addresses;
- a rebuild from the statuses it would write reproduces the same holdings, without conflicts.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from openelb.ipam import (
    Allocation,
    Allocator,
    EipSpec,
    EipState,
    Family,
    NoIP,
    ServiceKey,
    ServiceRequest,
    ServiceState,
    eip_status,
    parse_ip,
    rebuild,
)

from .builders import eip, svc

NAMES = [f"s{i}" for i in range(8)]
V4_SHAPES = ["10.0.0.0/29", "10.0.0.0/30", "10.0.0.4-10.0.0.12", "10.0.0.2"]
V6_SHAPES = ["2001:db8::/64", "2001:db8::/126", "2001:db8::/48"]
EXCLUSIONS = [(), ("10.0.0.1",), ("10.0.0.0-10.0.0.3",), ("2001:db8::1", "10.0.0.5")]
REQUESTABLE = ["10.0.0.1", "10.0.0.5", "10.0.0.9", "10.0.1.1", "2001:db8::2", "2001:db8::5"]


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.specs: dict[str, EipSpec] = {}
        self.set_pools(
            a=eip("a", "10.0.0.0/29", default=True, created=1),
            b=eip("b", "10.0.1.0/30", namespaces=("team",), priority=1, created=2),
            c=eip("c", "2001:db8::/64", default=True, created=3),
        )
        self.ipam = Allocator(self.specs.values())
        self.model: dict[ServiceKey, set[str]] = {}
        self.last_success: dict[ServiceKey, ServiceRequest] = {}

    def set_pools(self, **specs: EipSpec | None) -> None:
        for name, spec in specs.items():
            if spec is None:
                self.specs.pop(name, None)
            else:
                self.specs[name] = spec

    # --- rules ---------------------------------------------------------------------------------

    @rule(
        name=st.sampled_from(NAMES),
        namespace=st.sampled_from(["default", "team"]),
        families=st.sampled_from([(), ("IPv4",), ("IPv6",), ("IPv4", "IPv6"), ("IPv6", "IPv4")]),
        policy=st.sampled_from([None, "SingleStack", "PreferDualStack", "RequireDualStack"]),
        requested=st.one_of(st.none(), st.sampled_from(REQUESTABLE)),
        pool=st.one_of(st.none(), st.sampled_from(["a", "b", "c", "gone"])),
        key=st.one_of(st.none(), st.sampled_from(["k1", "k2"])),
        ports=st.lists(st.sampled_from([80, 443, 53]), min_size=1, max_size=2, unique=True),
    )
    def allocate(
        self,
        *,
        name: str,
        namespace: str,
        families: tuple[str, ...],
        policy: str | None,
        requested: str | None,
        pool: str | None,
        key: str | None,
        ports: list[int],
    ) -> None:
        request = svc(
            name,
            namespace=namespace,
            families=families,
            policy=policy,
            ip=requested,
            pool=pool,
            key=key,
            ports=tuple(ports),
        )
        service = request.key
        before = set(self.model.get(service, set()))
        expected_lowest = self.lowest_free_by_pool()
        result = self.ipam.allocate(request)
        if isinstance(result, NoIP):
            got = {k.ip for k in result.kept}
            assert got <= before, "a NoIP never hands out something new"
            assert result.message
        else:
            assert isinstance(result, Allocation)
            got = set(result.ips)
            self.last_success[service] = request
            for assigned in result.addresses:
                if assigned.ip not in before:
                    self.check_new_address(request, assigned.ip, assigned.pool, expected_lowest)
        self.set_model(service, got)

    @rule(name=st.sampled_from(NAMES), namespace=st.sampled_from(["default", "team"]))
    def release(self, name: str, namespace: str) -> None:
        service = ServiceKey(namespace, name)
        released = set(self.ipam.release(service))
        assert released == self.model.pop(service, set())

    @rule(
        pool=st.sampled_from(["a", "b", "c"]),
        shape=st.integers(0, 10),
        disable=st.booleans(),
        exclusions=st.sampled_from(EXCLUSIONS),
        delete=st.booleans(),
    )
    def edit_pool(
        self, *, pool: str, shape: int, disable: bool, exclusions: tuple[str, ...], delete: bool
    ) -> None:
        shapes = V6_SHAPES if pool == "c" else V4_SHAPES
        address = shapes[shape % len(shapes)] if pool != "b" else "10.0.1.0/30"
        old = self.specs.get(pool)
        created = {"a": 1, "b": 2, "c": 3}[pool]
        spec = eip(
            pool,
            address,
            default=pool != "b",
            namespaces=("team",) if pool == "b" else (),
            priority=1,
            disable=disable,
            exclude=exclusions,
            created=created,
        )
        self.set_pools(**{pool: None if delete and old is not None else spec})
        holdings_before = {s: {a.ip for a in self.ipam.addresses(s)} for s in self.model}
        self.ipam.set_eips(self.specs.values())
        after = {s: {a.ip for a in self.ipam.addresses(s)} for s in self.model}
        assert after == holdings_before, "pool edits never move an allocation"

    @rule()
    def rebuild_reproduces_the_state(self) -> None:
        eips = [
            EipState(spec, used=eip_status(self.ipam, spec.name).used)
            for spec in self.specs.values()
        ]
        services = [
            ServiceState(self.last_success[s], tuple(a.ip for a in self.ipam.addresses(s)))
            for s in self.model
        ]
        rebuilt = rebuild(reversed(eips), reversed(services))
        assert (rebuilt.conflicts, rebuilt.reserved, rebuilt.dropped) == ((), (), ())
        for service, ips in self.model.items():
            assert {a.ip for a in rebuilt.allocator.addresses(service)} == ips
        for name in self.specs:
            live, again = eip_status(self.ipam, name), eip_status(rebuilt.allocator, name)
            assert live.used.keys() == again.used.keys()
            assert (live.usage, live.occupied) == (again.usage, again.occupied)

    # --- checks --------------------------------------------------------------------------------

    def set_model(self, service: ServiceKey, ips: set[str]) -> None:
        if ips:
            self.model[service] = ips
        else:
            self.model.pop(service, None)

    def lowest_free_by_pool(self) -> dict[str, int | None]:
        """Brute-force lowest free address of every usable pool, from the holders alone."""
        result: dict[str, int | None] = {}
        for name, pool in self.ipam.pools.items():
            if pool.range is None or not pool.usable:
                continue
            held = set(self.ipam.holdings.held(pool.range.family))
            value = pool.range.first
            while value <= pool.range.last and (value in held or value in pool.excluded):
                value += 1
            result[name] = value if value <= pool.range.last else None
        return result

    def check_new_address(
        self,
        request: ServiceRequest,
        ip: str,
        pool_name: str | None,
        expected_lowest: dict[str, int | None],
    ) -> None:
        family, value = parse_ip(ip)
        assert pool_name is not None, f"{ip} handed out from no pool"
        pool = self.ipam.pools[pool_name]
        assert pool.usable and pool.range is not None and value in pool.range
        assert value not in pool.excluded
        holders = self.ipam.holders(ip)
        automatic = not request.requested_ips_text and request.sharing_key is None
        if automatic and holders == (request.key,):
            assert value == expected_lowest[pool_name], "automatic means lowest free"
        assert family in (Family.IPV4, Family.IPV6)

    @invariant()
    def answers_match_the_model(self) -> None:
        actual = {s: {a.ip for a in self.ipam.addresses(s)} for s in self.ipam.holdings.services()}
        assert actual == self.model

    @invariant()
    def no_address_is_held_twice_without_valid_sharing(self) -> None:
        for family in Family:
            for held in self.ipam.holdings.held(family).values():
                claims = list(held.holders.values())
                assert claims
                if len(claims) > 1:
                    assert len({c.sharing_key for c in claims}) == 1
                    assert claims[0].sharing_key is not None
                    ports = [p for c in claims for p in c.ports]
                    assert len(ports) == len(set(ports))

    @invariant()
    def one_address_per_family_and_consistent_indexes(self) -> None:
        for service in self.ipam.holdings.services():
            for family, value in self.ipam.holdings.of_service(service).items():
                held = self.ipam.holdings.get(family, value)
                assert held is not None and service in held.holders

    @invariant()
    def pools_block_exactly_exclusions_and_held_addresses(self) -> None:
        total_usage = 0
        attributed = 0
        for name, pool in self.ipam.pools.items():
            if pool.range is None:
                continue
            rng = pool.range
            held_inside = {v for v in self.ipam.holdings.held(rng.family) if v in rng}
            assert pool.held == held_inside
            excluded_count = pool.excluded.count
            extra = sum(1 for v in held_inside if v not in pool.excluded)
            assert pool.blocked.count == excluded_count + extra
            assert all(v in pool.blocked for v in held_inside)
            status = eip_status(self.ipam, name)
            assert status.usage == len(status.used)
            assert status.occupied == (pool.free == 0)
            total_usage += status.usage
        for family in Family:
            for value in self.ipam.holdings.held(family):
                if self.ipam.holdings.attributed_pool(family, value) is not None:
                    attributed += 1
        assert total_usage == attributed


AllocatorMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_allocator_state_machine = AllocatorMachine.TestCase


@settings(max_examples=60, deadline=None)
@given(
    address=st.sampled_from(["10.20.0.0/24", "2001:db8::/64", "2001:db8::/48", "10.0.0.0/8"]),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=120),
)
def test_any_pool_size_hands_out_lowest_free_and_takes_back_on_release(
    address: str, ops: list[tuple[bool, int]]
) -> None:
    ipam = Allocator([eip("p", address, default=True)])
    pool = ipam.pools["p"]
    assert pool.range is not None
    family = pool.range.family.value
    held: dict[int, int] = {}  # service number -> offset from the first address
    for allocate, number in ops:
        service = svc(f"s{number}", families=(family,))
        if allocate:
            result = ipam.allocate(service)
            assert isinstance(result, Allocation)
            offset = parse_ip(result.ips[0])[1] - pool.range.first
            if number in held:
                assert offset == held[number] and not result.changed
            else:
                taken = set(held.values())
                assert offset == min(set(range(len(taken) + 1)) - taken)
                held[number] = offset
        else:
            released = ipam.release(service.key)
            expected = held.pop(number, None)
            assert [parse_ip(ip)[1] - pool.range.first for ip in released] == (
                [] if expected is None else [expected]
            )
        status = eip_status(ipam, "p")
        assert status.usage == len(held) == len(status.used)
        assert pool.free == pool.range.size - len(held)
