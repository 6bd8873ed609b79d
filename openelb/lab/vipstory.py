"""The VIP-mode part of the ``openelb lab --mode vip`` story: keepalived elects a holder.

In VIP mode no speaker answers ARP itself: keepalived (VRRPv3, run by every node's speaker)
elects a master, which puts the VIP on its NIC, and the kernel answers for it. The story waits
for that and tells who was elected with which router ID (assigned by the manager, read from the
Eip status), before the shared steps (client traffic, failure, failover gap) run unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from openelb.kube.resources import EIPS
from openelb.lab.cluster import LabCluster

MODES = ("layer2", "vip")
"""``layer2``: speakers answer ARP/NDP (XDP or AF_PACKET); ``vip``: keepalived holds the VIP."""


def holders(lab: LabCluster, vip: str) -> list[str]:
    """Nodes that have ``vip`` on their LAN NIC right now."""
    found = []
    for node in lab.nodes:
        out = node.run(["ip", "-o", "addr", "show", "dev", node.ifname]).stdout
        if f" {vip}/" in out:
            found.append(node.name)
    return found


def tell_vrrp_masters(
    lab: LabCluster,
    *,
    eips: Sequence[str],
    vips: Sequence[str],
    say: Callable[[str], None],
    timeout: float = 20.0,
) -> bool:
    """Wait until every VIP is held by one node; say who holds it and with which router ID."""
    router_ids: dict[str, object] = {}
    for name in eips:
        status = lab.api.get(EIPS, name).get("status") or {}
        router_ids.update(status.get("virtualRouterIDs") or {})
    ok = True
    for vip in vips:
        deadline = time.monotonic() + timeout
        held = holders(lab, vip)
        while len(held) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            held = holders(lab, vip)
        rid = router_ids.get(vip, "?")
        if len(held) == 1:
            say(
                f"{vip}: keepalived on {held[0]} is VRRP master (router ID {rid}, VRRPv3, "
                "unicast adverts every 0.1 s) and put the VIP on its eth0"
            )
        else:
            say(f"{vip}: held by {held or 'no node'} after {timeout:.0f} s (expected one node)")
            ok = False
    return ok
