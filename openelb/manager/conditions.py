"""The condition openelb keeps on each Service it serves: whether it got its address, and why not.

Events say why a Service has no IP, but they expire (an hour by default) and scroll away; a
condition stays on the object for as long as it is true, so ``kubectl get svc -o yaml`` and
anything watching Services can read it. Cilium's LB IPAM does the same
(``cilium.io/IPAMRequestSatisfied``); MetalLB and OpenELB only record Events.

The condition is a ``metav1.Condition`` in ``status.conditions`` (a Service field since
Kubernetes 1.20): ``lastTransitionTime`` moves only when ``status`` changes, ``reason`` is one
CamelCase word (an ``openelb.ipam.NoIPReason`` value when there is no address). Conditions of
other controllers in the list are left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openelb.manager.optin import Raw

CONDITION_TYPE = "openelb.io/AddressAssigned"
"""Type of openelb's Service condition (True: every address the Service asks for is assigned)."""


@dataclass(frozen=True)
class ServiceCondition:
    """The desired state of :data:`CONDITION_TYPE` on one Service."""

    status: bool
    """True when the Service has its address(es)."""
    reason: str
    """``Assigned``, ``PartiallyAssigned`` (PreferDualStack without one family) or a
    ``NoIPReason`` value."""
    message: str
    """What a person reads: the addresses, or why there are none."""


def stored_condition(raw: Raw) -> Mapping[str, Any] | None:
    """Our condition as stored on the Service, if any."""
    for condition in (raw.get("status") or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == CONDITION_TYPE:
            return condition
    return None


def condition_differs(raw: Raw, desired: ServiceCondition | None) -> bool:
    """Whether writing ``desired`` (None: no condition of ours) would change the Service."""
    stored = stored_condition(raw)
    if desired is None:
        return stored is not None
    return stored is None or (
        stored.get("status"),
        stored.get("reason"),
        stored.get("message"),
    ) != (_text(desired.status), desired.reason, desired.message)


def with_condition(
    raw: Raw, status: dict[str, Any], desired: ServiceCondition | None, *, now: str
) -> dict[str, Any]:
    """``status`` with our condition set to ``desired`` (None removes it), others kept."""
    previous = stored_condition(raw)
    others = [
        c
        for c in status.get("conditions") or ()
        if not (isinstance(c, Mapping) and c.get("type") == CONDITION_TYPE)
    ]
    if desired is not None:
        same = previous is not None and previous.get("status") == _text(desired.status)
        entry: dict[str, Any] = {
            "type": CONDITION_TYPE,
            "status": _text(desired.status),
            "reason": desired.reason,
            "message": desired.message,
            "lastTransitionTime": ((previous or {}).get("lastTransitionTime") or now)
            if same
            else now,
        }
        generation = (raw.get("metadata") or {}).get("generation")
        if isinstance(generation, int):
            entry["observedGeneration"] = generation
        others.append(entry)
    result = dict(status)
    if others:
        result["conditions"] = others
    else:
        result.pop("conditions", None)
    return result


def _text(value: bool) -> str:
    return "True" if value else "False"
