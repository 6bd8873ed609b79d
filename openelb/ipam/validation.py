"""Eip validation as a pure function: a list of typed problems, never an exception.

The same checks serve the manager (conditions and Events on every Eip change) and, later, an
admission webhook (:func:`validate_eip`: a candidate against the Eips that exist). A *blocking*
problem makes the pool unusable for new allocations; existing holders keep their addresses.

Conflicts between pools are decided by age, as an admission webhook would have decided them: of
two overlapping pools, or two default pools of one family, the older (then the name) keeps working
and the newer one is blocked. Both report the overlap, so a user looking at either sees it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from openelb.ipam.addresses import AddressError, AddressRange, ParsedAddress, parse_pool_address
from openelb.ipam.model import PROTOCOLS, PROTOCOLS_NEEDING_INTERFACE, EipSpec

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class ProblemKind(enum.Enum):
    """What is wrong with an Eip. Values are condition/Event reasons."""

    BAD_ADDRESS = "BadAddress"
    """spec.address does not parse."""
    HOST_BITS_SET = "HostBitsSet"
    """A CIDR with host bits set; the whole network is used (warning, as OpenELB accepts it)."""
    OVERLAP = "Overlap"
    """The address range overlaps another Eip's."""
    DUPLICATE_DEFAULT = "DuplicateDefault"
    """Another, older Eip of the same family is already the default pool."""
    MISSING_INTERFACE = "MissingInterface"
    """layer2/vip without spec.interface."""
    UNKNOWN_PROTOCOL = "UnknownProtocol"
    """spec.protocol is not layer2, vip or bgp."""
    BAD_PRIORITY = "BadPriority"
    """spec.priority is not a 32-bit integer."""
    BAD_EXCLUSION = "BadExclusion"
    """An exclusion entry does not parse (blocking: it may have been meant to protect an IP)."""
    EXCLUSION_OUTSIDE_POOL = "ExclusionOutsidePool"
    """An exclusion entry lies (partly) outside the pool (warning)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an Eip."""

    kind: ProblemKind
    """Typed kind."""
    message: str
    """Readable explanation naming the bad part."""
    blocking: bool = True
    """True when the pool must not hand out addresses because of it."""
    others: tuple[str, ...] = ()
    """Other Eips involved (overlap, duplicate default)."""
    overlap: AddressRange | None = None
    """For OVERLAP: the addresses both pools claim."""

    @property
    def condition(self) -> str:
        """The Eip condition type this problem sets: Overlap or Invalid."""
        return "Overlap" if self.kind is ProblemKind.OVERLAP else "Invalid"


@dataclass(frozen=True)
class EipAnalysis:
    """An Eip, parsed and judged against the others."""

    spec: EipSpec
    """The Eip."""
    parsed: ParsedAddress | None
    """The parsed address (None when it does not parse)."""
    exclusions: tuple[AddressRange, ...]
    """Exclusions clipped to the pool (those that parsed)."""
    problems: tuple[Problem, ...]
    """Everything found, blocking or not."""

    @property
    def range(self) -> AddressRange | None:
        """The pool's addresses, when the address parsed."""
        return self.parsed.range if self.parsed else None

    @property
    def valid(self) -> bool:
        """No blocking problem."""
        return not any(problem.blocking for problem in self.problems)

    @property
    def priority(self) -> int:
        """spec.priority when it is a valid int32, else 0 (the pool is invalid then)."""
        value = self.spec.priority
        return value if isinstance(value, int) and _is_int32(value) else 0


def analyze_eips(specs: Iterable[EipSpec]) -> dict[str, EipAnalysis]:
    """Parse and validate every Eip against the others; keyed by name."""
    ordered = sorted(specs, key=lambda spec: spec.order_key)
    return _analyze(ordered)


def validate_eips(specs: Iterable[EipSpec]) -> dict[str, tuple[Problem, ...]]:
    """Problems of every Eip (empty tuple for a clean one); keyed by name."""
    return {name: result.problems for name, result in analyze_eips(specs).items()}


def validate_eip(candidate: EipSpec, existing: Iterable[EipSpec]) -> tuple[Problem, ...]:
    """Admission form: ``candidate`` against the Eips already there, as the newest of them."""
    others = sorted(
        (spec for spec in existing if spec.name != candidate.name),
        key=lambda spec: spec.order_key,
    )
    return _analyze([*others, candidate])[candidate.name].problems


def _analyze(ordered: Sequence[EipSpec]) -> dict[str, EipAnalysis]:
    """``ordered`` oldest first: later Eips lose overlaps and default duplicates."""
    parsed: dict[str, ParsedAddress | None] = {}
    problems: dict[str, list[Problem]] = {}
    exclusions: dict[str, tuple[AddressRange, ...]] = {}
    for spec in ordered:
        found: list[Problem] = []
        parsed[spec.name] = _parse_address(spec, found)
        _check_fields(spec, found)
        exclusions[spec.name] = _parse_exclusions(spec, parsed[spec.name], found)
        problems[spec.name] = found
    _check_overlaps(ordered, parsed, problems)
    _check_defaults(ordered, parsed, problems)
    return {
        spec.name: EipAnalysis(
            spec, parsed[spec.name], exclusions[spec.name], tuple(problems[spec.name])
        )
        for spec in ordered
    }


def _parse_address(spec: EipSpec, found: list[Problem]) -> ParsedAddress | None:
    try:
        result = parse_pool_address(spec.address)
    except AddressError as exc:
        found.append(Problem(ProblemKind.BAD_ADDRESS, f"spec.address: {exc}"))
        return None
    if result.masked_host_bits:
        found.append(
            Problem(
                ProblemKind.HOST_BITS_SET,
                f"spec.address '{spec.address.strip()}' has host bits set; the pool is the "
                f"whole network {result.range} ({result.range.size} addresses), as in OpenELB",
                blocking=False,
            )
        )
    return result


def _check_fields(spec: EipSpec, found: list[Problem]) -> None:
    protocol = spec.effective_protocol
    if protocol not in PROTOCOLS:
        found.append(
            Problem(
                ProblemKind.UNKNOWN_PROTOCOL,
                f"spec.protocol '{spec.protocol}' is not one of {', '.join(PROTOCOLS)}",
            )
        )
    elif protocol in PROTOCOLS_NEEDING_INTERFACE and not spec.interface.strip():
        found.append(
            Problem(
                ProblemKind.MISSING_INTERFACE,
                f"spec.interface is required for protocol {protocol} "
                "(a NIC name or can_reach:<ip>)",
            )
        )
    if not _is_int32(spec.priority):
        found.append(
            Problem(
                ProblemKind.BAD_PRIORITY,
                f"spec.priority {spec.priority!r} is not an integer between "
                f"{INT32_MIN} and {INT32_MAX}",
            )
        )


def _is_int32(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and INT32_MIN <= value <= INT32_MAX
    )


def _parse_exclusions(
    spec: EipSpec, parsed: ParsedAddress | None, found: list[Problem]
) -> tuple[AddressRange, ...]:
    kept: list[AddressRange] = []
    for index, text in enumerate(spec.exclude):
        try:
            excluded = parse_pool_address(text).range
        except AddressError as exc:
            found.append(Problem(ProblemKind.BAD_EXCLUSION, f"spec.exclude[{index}]: {exc}"))
            continue
        if parsed is None:
            continue
        inside = parsed.range.intersection(excluded)
        if inside != excluded:
            found.append(
                Problem(
                    ProblemKind.EXCLUSION_OUTSIDE_POOL,
                    f"spec.exclude[{index}] '{text.strip()}' is "
                    f"{'partly ' if inside else ''}outside the pool {parsed.range}",
                    blocking=False,
                )
            )
        if inside is not None:
            kept.append(inside)
    return tuple(kept)


def _check_overlaps(
    ordered: Sequence[EipSpec],
    parsed: dict[str, ParsedAddress | None],
    problems: dict[str, list[Problem]],
) -> None:
    rank = {spec.name: index for index, spec in enumerate(ordered)}
    # A pool being deleted hands out nothing: its replacement may already cover its range.
    ranges = [
        (result.range, spec.name)
        for spec in ordered
        if (result := parsed[spec.name]) is not None and not spec.deleting
    ]
    # Sweep by start per family: only pools whose start lies before an active end can overlap.
    ranges.sort(key=lambda item: (item[0].family.value, item[0].first, item[0].last))
    active: list[tuple[AddressRange, str]] = []
    for current, name in ranges:
        active = [
            (r, n) for r, n in active if r.family is current.family and r.last >= current.first
        ]
        for other, other_name in active:
            shared = current.intersection(other)
            assert shared is not None
            older, newer = sorted((name, other_name), key=rank.__getitem__)
            _add_overlap(problems, newer, older, parsed, shared, blocking=True)
            _add_overlap(problems, older, newer, parsed, shared, blocking=False)
        active.append((current, name))


def _add_overlap(
    problems: dict[str, list[Problem]],
    name: str,
    other: str,
    parsed: dict[str, ParsedAddress | None],
    shared: AddressRange,
    *,
    blocking: bool,
) -> None:
    other_range = parsed[other]
    assert other_range is not None
    consequence = "this Eip is not used" if blocking else f"'{other}' is not used"
    problems[name].append(
        Problem(
            ProblemKind.OVERLAP,
            f"addresses {shared} are also in Eip '{other}' ({other_range.range}); "
            f"the older Eip keeps them and {consequence}",
            blocking=blocking,
            others=(other,),
            overlap=shared,
        )
    )


def _check_defaults(
    ordered: Sequence[EipSpec],
    parsed: dict[str, ParsedAddress | None],
    problems: dict[str, list[Problem]],
) -> None:
    first_default: dict[object, str] = {}
    for spec in ordered:
        result = parsed[spec.name]
        if not spec.is_default or result is None or spec.deleting:
            continue
        family = result.range.family
        if family not in first_default:
            first_default[family] = spec.name
            continue
        older = first_default[family]
        problems[spec.name].append(
            Problem(
                ProblemKind.DUPLICATE_DEFAULT,
                f"Eip '{older}' is already the default {family.value} pool; "
                "only one default Eip per family is allowed",
                others=(older,),
            )
        )
