"""What keepalived should do on this node: VRRP instances planned from the desired VIP state.

The speaker knows, per VIP, its Eip, its virtual router ID (assigned by the manager and read
from the Eip status, so every node agrees — OpenELB hashed them locally and nodes could
disagree), the nodes eligible to hold it and the NIC. From that this module plans keepalived's
VRRP instances, purely and deterministically, so every node plans the same instances with the
same priorities:

- one instance per (Eip, address family, router ID, eligible-node set, NIC): VIPs of one Eip
  that share those fail over together; IPv4 and IPv6 need separate instances (keepalived keeps
  one family per instance), and may share the router ID (VRRPv3 keeps families apart);
- priorities follow a rendezvous ranking of the nodes per router ID (``sha256(node#id)``, the
  rule Layer 2 ownership uses), so different Eips prefer different masters and VIPs spread over
  the nodes instead of all landing on one; and a node leaving changes the preferred master only
  of the instances it was preferred for (a rotation by position moved unrelated VIPs too);
- unicast peers are the other eligible nodes' addresses of the instance's family;
- two instances that would need the same (family, router ID) on one segment, or a node
  without an address of the family, are reported as :class:`PlanIssue` rather than rendered
  into a config keepalived would reject or, worse, accept and then fight over.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from openelb.config import KeepalivedSettings


@dataclass(frozen=True)
class NodeAddresses:
    """A node that may hold VIPs, and its addresses on the announce network."""

    name: str
    ipv4: str | None = None
    """The node's IPv4 address the VRRP adverts use (unicast source/peer)."""
    ipv6: str | None = None
    """Its IPv6 address (global or unique-local) for IPv6 instances."""

    def address(self, family: int) -> str | None:
        return self.ipv4 if family == 4 else self.ipv6


@dataclass(frozen=True)
class DesiredVip:
    """One VIP in VIP mode, as the speaker's control loop sees it."""

    address: str
    """The VIP itself (IPv4 or IPv6, no prefix length)."""
    eip: str
    """Name of the Eip it comes from."""
    router_id: int
    """Virtual router ID from the Eip status (``virtualRouterIDs``); never invented here."""
    eligible: frozenset[str]
    """Nodes allowed to hold it (Ready, not excluded, speaker running, NIC present; for
    ``externalTrafficPolicy: Local`` only nodes with a ready endpoint)."""
    interface: str
    """The NIC the VIP goes on, already resolved on this node (``can_reach:`` done)."""


@dataclass(frozen=True)
class DesiredState:
    """Everything VIP mode needs to know about the cluster, from this node's point of view."""

    node: str
    """This node's name."""
    vips: tuple[DesiredVip, ...]
    nodes: Mapping[str, NodeAddresses]
    """Addresses of (at least) every node named in an eligible set."""


class IssueKind(enum.Enum):
    """Why a VIP is left out of the keepalived config."""

    ROUTER_ID_CONFLICT = "RouterIDConflict"
    """Another instance already uses this (family, router ID) with a different node set or Eip."""
    NO_NODE_ADDRESS = "NoNodeAddress"
    """This node has no address of the VIP's family for the VRRP adverts."""
    BAD_ADDRESS = "InvalidAddress"
    """The VIP is not an IP address."""
    BAD_ROUTER_ID = "InvalidRouterID"
    """The router ID is outside 1-255."""
    BAD_INTERFACE = "InvalidInterface"
    """The interface name is not one a NIC can have."""


@dataclass(frozen=True)
class PlanIssue:
    """A VIP that is not configured, and why (material for an Event and a condition)."""

    kind: IssueKind
    vip: str
    eip: str
    message: str


@dataclass(frozen=True)
class Instance:
    """One keepalived ``vrrp_instance``."""

    name: str
    eip: str
    family: int
    """4 or 6."""
    router_id: int
    interface: str
    priority: int
    """This node's priority in the instance."""
    vips: tuple[str, ...]
    """Sorted VIPs held together."""
    source: str | None
    """This node's address for unicast adverts (None in multicast mode)."""
    peers: tuple[str, ...]
    """Other eligible nodes' addresses (empty in multicast mode or for a single node)."""
    preferred: str
    """The node the ranking prefers as master (highest priority)."""


@dataclass(frozen=True)
class Plan:
    """The instances this node runs, plus the VIPs left out and why."""

    node: str
    instances: tuple[Instance, ...]
    issues: tuple[PlanIssue, ...] = ()
    vip_instance: Mapping[str, str] = field(default_factory=dict)
    """VIP -> instance name, for turning instance state into per-VIP state."""

    def vips_by_interface(self) -> dict[str, set[str]]:
        """Interface -> VIPs keepalived may put there (what must be cleaned after a crash)."""
        out: dict[str, set[str]] = {}
        for inst in self.instances:
            out.setdefault(inst.interface, set()).update(inst.vips)
        return out


_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def instance_name(*, eip: str, family: int, router_id: int, index: int = 0) -> str:
    """Stable, keepalived-safe instance name: ``oelb_<eip>_v4_<id>`` (``_<n>`` if split)."""
    base = f"oelb_{_NAME_UNSAFE.sub('_', eip)}_v{family}_{router_id}"
    return base if index == 0 else f"{base}_{index}"


def rank_priority(
    *, node: str, eligible: Iterable[str], router_id: int, settings: KeepalivedSettings
) -> tuple[int, str]:
    """This node's priority and the preferred master for an instance with ``router_id``.

    The nodes are ranked by ``sha256(node + "#" + router_id)`` (rendezvous hashing): every node
    computes the same order, different router IDs prefer different nodes, and removing a node
    keeps the order of the others, so only the instances it led get a new master. Steps shrink
    for large sets so every node keeps a distinct priority while one is possible (254 levels).
    """
    ordered = sorted(eligible, key=lambda n: (_rank(n, router_id), n))
    count = len(ordered)
    position = ordered.index(node)
    step = settings.priority_step
    if count > 1:
        step = max(1, min(step, (settings.priority_top - 1) // (count - 1)))
    return max(1, settings.priority_top - position * step), ordered[0]


def _rank(node: str, router_id: int) -> bytes:
    return hashlib.sha256(f"{node}#{router_id}".encode()).digest()


def _family(address: str) -> int | None:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


@dataclass(frozen=True)
class _Key:
    eip: str
    family: int
    router_id: int
    eligible: frozenset[str]
    interface: str


def plan(state: DesiredState, settings: KeepalivedSettings) -> Plan:
    """Plan this node's VRRP instances from ``state`` (pure; same inputs, same plan)."""
    issues: list[PlanIssue] = []
    groups: dict[_Key, list[str]] = {}
    for desired in sorted(state.vips, key=lambda v: (v.eip, v.router_id, v.address)):
        family = _family(desired.address)
        problem = _check_vip(desired, family)
        if problem is not None:
            issues.append(problem)
            continue
        assert family is not None
        # Every VIP is grouped, also those this node cannot hold: a router ID conflict exists on
        # the segment whoever runs the instances, and every node must judge it the same way.
        normalized = str(ipaddress.ip_address(desired.address))
        key = _Key(desired.eip, family, desired.router_id, desired.eligible, desired.interface)
        groups.setdefault(key, []).append(normalized)

    instances: list[Instance] = []
    vip_instance: dict[str, str] = {}
    claimed: dict[tuple[int, int], _Key] = {}
    me = state.nodes.get(state.node)
    for key in sorted(groups, key=_sort_key):
        vips = tuple(sorted(set(groups[key]), key=ipaddress.ip_address))
        holder = claimed.get((key.family, key.router_id))
        if holder is not None:
            for vip in vips:
                issues.append(
                    PlanIssue(
                        IssueKind.ROUTER_ID_CONFLICT,
                        vip,
                        key.eip,
                        f"router ID {key.router_id} (IPv{key.family}) is already used by Eip "
                        f"'{holder.eip}' with nodes {sorted(holder.eligible)}; VIPs that fail "
                        "over separately need separate router IDs",
                    )
                )
            continue
        claimed[(key.family, key.router_id)] = key
        if state.node not in key.eligible:
            continue
        source = me.address(key.family) if me is not None else None
        if settings.unicast and source is None:
            for vip in vips:
                issues.append(
                    PlanIssue(
                        IssueKind.NO_NODE_ADDRESS,
                        vip,
                        key.eip,
                        f"node '{state.node}' has no IPv{key.family} address for VRRP "
                        "unicast adverts",
                    )
                )
            continue
        peers: list[str] = []
        if settings.unicast:
            for other in sorted(key.eligible - {state.node}):
                addresses = state.nodes.get(other)
                address = addresses.address(key.family) if addresses is not None else None
                if address is not None:
                    peers.append(address)
            if not peers and source is not None:
                # Alone, it advertises to itself: keepalived reads unicast keywords without peers
                # as multicast, and a reload between the two resets the instance (its VIP goes
                # for ~3 adverts) just when the last other node leaves or the first one returns.
                peers.append(source)
        priority, preferred = rank_priority(
            node=state.node, eligible=key.eligible, router_id=key.router_id, settings=settings
        )
        name = instance_name(eip=key.eip, family=key.family, router_id=key.router_id)
        instances.append(
            Instance(
                name=name,
                eip=key.eip,
                family=key.family,
                router_id=key.router_id,
                interface=key.interface,
                priority=priority,
                vips=vips,
                source=source if settings.unicast else None,
                peers=tuple(peers),
                preferred=preferred,
            )
        )
        for vip in vips:
            vip_instance[vip] = name
    return Plan(state.node, tuple(instances), tuple(issues), vip_instance)


def _sort_key(key: _Key) -> tuple[int, int, str, Sequence[str], str]:
    return (key.family, key.router_id, key.eip, sorted(key.eligible), key.interface)


def _check_vip(vip: DesiredVip, family: int | None) -> PlanIssue | None:
    if family is None:
        return PlanIssue(
            IssueKind.BAD_ADDRESS, vip.address, vip.eip, f"'{vip.address}' is not an IP address"
        )
    if not 1 <= vip.router_id <= 255:
        return PlanIssue(
            IssueKind.BAD_ROUTER_ID,
            vip.address,
            vip.eip,
            f"router ID {vip.router_id} is outside 1-255",
        )
    if not _IFNAME.match(vip.interface):
        return PlanIssue(
            IssueKind.BAD_INTERFACE,
            vip.address,
            vip.eip,
            f"'{vip.interface}' is not a valid interface name",
        )
    return None
