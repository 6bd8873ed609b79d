"""When several Services may hold one IP: same sharing key, and no (port, protocol) in common.

OpenELB let any Service join a used IP by asking for it, without a check; two Services then
fought over one port. Here a Service joins an IP only when every holder carries the same
``openelb.io/sharing-key`` value and none of them already uses one of its (port, protocol) pairs;
otherwise the answer is a typed refusal naming the holders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from openelb.ipam.model import ANNOTATION_SHARING_KEY, ServiceKey, ServiceRequest
from openelb.ipam.outcomes import NoIPReason


@dataclass(frozen=True, slots=True)
class Claim:
    """What matters about a holder when someone else wants to share its IP."""

    sharing_key: str | None
    """The sharing-key annotation value (None: this Service shares with nobody)."""
    ports: frozenset[tuple[int, str]]
    """(port, protocol) pairs, protocol upper-case."""

    @classmethod
    def of(cls, request: ServiceRequest) -> Claim:
        """The claim a Service makes on an address."""
        return cls(
            request.sharing_key,
            frozenset((port.port, port.protocol.upper()) for port in request.ports),
        )


@dataclass(frozen=True)
class Refusal:
    """Why a Service may not share an address."""

    reason: NoIPReason
    """IP_IN_USE, SHARING_KEY_MISMATCH or PORT_CLASH."""
    message: str
    """Readable, naming the holders (and the ports for a clash)."""


def sharing_refusal(
    holders: Mapping[ServiceKey, Claim], service: ServiceKey, claim: Claim
) -> Refusal | None:
    """None when ``service`` may hold the address alongside ``holders`` (itself ignored)."""
    others = {key: other for key, other in holders.items() if key != service}
    if not others:
        return None
    names = ", ".join(sorted(str(key) for key in others))
    if claim.sharing_key is None or any(other.sharing_key is None for other in others.values()):
        return Refusal(
            NoIPReason.IP_IN_USE,
            f"used by {names}; sharing needs the same {ANNOTATION_SHARING_KEY} on all of them",
        )
    foreign = sorted(
        {
            o.sharing_key
            for o in others.values()
            if o.sharing_key and o.sharing_key != claim.sharing_key
        }
    )
    if foreign:
        return Refusal(
            NoIPReason.SHARING_KEY_MISMATCH,
            f"used by {names} with sharing key {', '.join(map(repr, foreign))}, "
            f"not {claim.sharing_key!r}",
        )
    taken: set[tuple[int, str]] = set()
    for other in others.values():
        taken |= other.ports
    clash = sorted(claim.ports & taken)
    if clash:
        shown = ", ".join(f"{port}/{protocol}" for port, protocol in clash)
        return Refusal(NoIPReason.PORT_CLASH, f"port(s) {shown} already used there by {names}")
    return None
