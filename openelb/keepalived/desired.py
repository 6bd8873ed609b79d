"""From the cluster's objects to this node's VIP-mode :class:`DesiredState`, and back to Events.

The speaker's control loop calls :func:`vip_mode_state` with the same watched objects it uses
for Layer 2 mode and hands the result to :class:`~openelb.keepalived.KeepalivedAnnouncer`.
The rules are Layer 2's (``openelb.speaker.desired``): a node may hold a VIP when it is Ready,
not labelled ``node.kubernetes.io/exclude-from-external-load-balancers``, its speaker runs and
resolved the Eip's interface (its Lease says so), and, when every Service on the IP has
``externalTrafficPolicy: Local``, it has a ready endpoint. Router IDs come only from the Eip
status (``virtualRouterIDs``, written by the manager): a VIP without one waits, it never gets an
ID invented here (OpenELB hashed IDs per node, and nodes disagreed).

:func:`state_change_event` words a VRRP state change as the Event the speaker records on the
Services of the VIP ("10.0.0.5 is held by node-b").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from openelb.keepalived.model import DesiredState, DesiredVip, NodeAddresses
from openelb.keepalived.notify import VrrpState
from openelb.keepalived.states import VipStateChange
from openelb.kube.views import Eip, EndpointSlice, Node, Service
from openelb.speaker.desired import address_pools, node_eligibility, pool_of
from openelb.speaker.records import SpeakerRecord

VIP_PROTOCOL = "vip"
NODE_ADDRESS_TYPE = "InternalIP"
UNRESOLVED_INTERFACE = "unresolved"
"""Interface of a VIP this node cannot hold (a valid name, never rendered)."""


@dataclass(frozen=True)
class WaitingVip:
    """A VIP of a VIP-mode Eip that is not configured yet, and why (for a condition/Event)."""

    ip: str
    eip: str
    reason: str


@dataclass(frozen=True)
class VipModeState:
    """This node's desired VIP-mode state plus what the speaker should know about it."""

    desired: DesiredState
    services: Mapping[str, tuple[str, ...]]
    """VIP -> ``namespace/name`` of the Services on it (where Events go)."""
    waiting: tuple[WaitingVip, ...]


def _is_vip_eip(eip: Eip) -> bool:
    return str(eip.spec.get("protocol") or "") == VIP_PROTOCOL and not eip.spec.get("disable")


def _router_ids(eip: Eip) -> dict[str, int]:
    raw = eip.status.get("virtualRouterIDs") or {}
    out: dict[str, int] = {}
    if isinstance(raw, Mapping):
        for ip, value in raw.items():
            if isinstance(value, int) and not isinstance(value, bool):
                out[_canonical(str(ip))] = value
    return out


def _canonical(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def node_addresses(nodes: Iterable[Node]) -> dict[str, NodeAddresses]:
    """Each node's first InternalIP per family: the VRRP unicast source/peer addresses."""
    out: dict[str, NodeAddresses] = {}
    for node in nodes:
        v4 = v6 = None
        for text in node.addresses_of(NODE_ADDRESS_TYPE):
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                continue
            if ip.version == 4 and v4 is None:
                v4 = str(ip)
            elif ip.version == 6 and v6 is None:
                v6 = str(ip)
        out[node.name] = NodeAddresses(node.name, v4, v6)
    return out


def vip_mode_state(
    *,
    node: str,
    services: Iterable[Service],
    eips: Iterable[Eip],
    slices: Iterable[EndpointSlice],
    nodes: Iterable[Node],
    records: Mapping[str, SpeakerRecord],
) -> VipModeState:
    """This node's VIP-mode desired state from the watched objects (pure)."""
    node_list = list(nodes)
    usable = {n for n, ok in node_eligibility(node_list).items() if ok}
    eip_list = list(eips)
    by_name = {eip.name: eip for eip in eip_list}
    pools = address_pools(eip_list, keep=_is_vip_eip)  # invalid Eips are the manager's to report
    ready_by_service: dict[str, set[str]] = {}
    for sl in slices:
        ready_by_service.setdefault(sl.service_key, set()).update(sl.ready_nodes())
    on_ip: dict[str, list[Service]] = {}
    for svc in services:
        if not svc.opted_in or svc.deleting:
            continue
        for ip in svc.ingress_ips:
            on_ip.setdefault(_canonical(ip), []).append(svc)
    own = records.get(node)
    vips: list[DesiredVip] = []
    waiting: list[WaitingVip] = []
    service_keys: dict[str, tuple[str, ...]] = {}
    for ip, svcs in sorted(on_ip.items()):
        pool_name = pool_of(ip, pools)
        if pool_name is None:
            continue
        pool = by_name[pool_name]
        service_keys[ip] = tuple(sorted(s.key for s in svcs))
        router_id = _router_ids(pool).get(ip)
        if router_id is None:
            waiting.append(WaitingVip(ip, pool.name, "no router ID in the Eip status yet"))
            continue
        eligible = {n for n, r in records.items() if pool.name in r.interfaces} & usable
        if all(s.external_traffic_policy == "Local" for s in svcs):
            endpoints: set[str] = set()
            for s in svcs:
                endpoints |= ready_by_service.get(s.key, set())
            eligible &= endpoints
        # Eligible implies our Lease names the NIC. VIPs this node cannot hold still go into
        # the state (the plan checks router ID conflicts over all of them, the same way on
        # every node); their interface is never used here.
        interface = own.interfaces.get(pool.name) if own is not None else None
        vips.append(
            DesiredVip(
                address=ip,
                eip=pool.name,
                router_id=router_id,
                eligible=frozenset(eligible),
                interface=interface or UNRESOLVED_INTERFACE,
            )
        )
    desired = DesiredState(node, tuple(vips), node_addresses(node_list))
    return VipModeState(desired, service_keys, tuple(waiting))


def state_change_event(change: VipStateChange) -> tuple[str, str, str] | None:
    """(type, reason, message) of the Event for ``change``, or None when not worth one."""
    where = f"VIP {change.vip} (Eip {change.eip}, VRRP instance {change.instance})"
    if change.state is VrrpState.MASTER:
        took = ""
        if change.failover is not None:
            took = (
                f" (took over {change.failover * 1000:.0f} ms after the previous master's"
                " last advert)"
            )
        return "Normal", "VIPHeld", f"{where} is held by node {change.node}{took}"
    if change.state is VrrpState.FAULT:
        return (
            "Warning",
            "VRRPFault",
            f"{where}: node {change.node} is in FAULT (interface down?) and cannot hold it",
        )
    if change.previous is VrrpState.MASTER:
        return "Normal", "VIPReleased", f"{where} released by node {change.node}"
    return None
