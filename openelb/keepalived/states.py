"""Per-instance and per-VIP VRRP state on this node, fed by keepalived's transitions.

keepalived speaks in instances; users and the speaker's Events speak in VIPs ("10.0.0.5 is now
held by node-b"). The table keeps the current state of every configured instance, maps it to
the VIPs of the current plan, updates the metrics, and returns what changed per VIP, so the
caller can emit Events naming the node that now holds the VIP.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from openelb import metrics
from openelb.keepalived.model import Instance, Plan
from openelb.keepalived.notify import Transition, VrrpState


@dataclass(frozen=True)
class VipStateChange:
    """A VIP whose instance on this node entered a new state."""

    vip: str
    eip: str
    instance: str
    node: str
    """This node (the one reporting; it holds the VIP when ``state`` is MASTER)."""
    state: VrrpState
    previous: VrrpState | None
    at: float
    """Wall-clock time keepalived's report was read."""
    failover: float | None = None
    """On becoming MASTER: seconds since the previous master's last advert, when known."""


LastAdvert = Callable[[int, int], float | None]
"""(family, router ID) -> wall-clock time another node's advert was last seen, or None."""


class StateTable:
    """Current VRRP state per instance; thread-safe (the FIFO reader thread records)."""

    def __init__(self, *, node: str, last_foreign_advert: LastAdvert | None = None) -> None:
        self.node = node
        self._last_foreign_advert = last_foreign_advert
        self._lock = threading.Lock()
        self._instances: dict[str, Instance] = {}
        self._states: dict[str, tuple[VrrpState, float]] = {}

    def set_plan(self, plan: Plan) -> None:
        """Track the instances of ``plan``; forget (and unexport) the ones no longer there."""
        with self._lock:
            current = {inst.name: inst for inst in plan.instances}
            for name, old in self._instances.items():
                if name not in current:
                    self._states.pop(name, None)
                    metrics.vrrp_instance_removed(pool=old.eip, instance=name)
            self._instances = current

    def record(self, transition: Transition) -> list[VipStateChange]:
        """Apply one transition; returns the per-VIP changes (empty if unknown or a repeat)."""
        with self._lock:
            instance = self._instances.get(transition.instance)
            if instance is None:
                return []  # from a config being replaced, or not ours
            previous = self._states.get(instance.name)
            previous_state = previous[0] if previous is not None else None
            if previous_state is transition.state:
                return []
            self._states[instance.name] = (transition.state, transition.at)
        metrics.vrrp_state_entered(
            pool=instance.eip, instance=instance.name, state=transition.state.value
        )
        failover = None
        if transition.state is VrrpState.MASTER and self._last_foreign_advert is not None:
            seen = self._last_foreign_advert(instance.family, instance.router_id)
            if seen is not None and 0 <= transition.at - seen < 60:
                failover = transition.at - seen
                metrics.vrrp_failover_observed(pool=instance.eip, seconds=failover)
        return [
            VipStateChange(
                vip=vip,
                eip=instance.eip,
                instance=instance.name,
                node=self.node,
                state=transition.state,
                previous=previous_state,
                at=transition.at,
                failover=failover,
            )
            for vip in instance.vips
        ]

    def instance_state(self, name: str) -> VrrpState | None:
        with self._lock:
            entry = self._states.get(name)
        return entry[0] if entry is not None else None

    def vip_states(self) -> dict[str, VrrpState]:
        """VIP -> state of its instance on this node (VIPs not yet reported are left out)."""
        with self._lock:
            out: dict[str, VrrpState] = {}
            for name, (state, _at) in self._states.items():
                for vip in self._instances[name].vips:
                    out[vip] = state
        return out

    def held(self) -> set[str]:
        """VIPs this node is MASTER for."""
        return {vip for vip, state in self.vip_states().items() if state is VrrpState.MASTER}
