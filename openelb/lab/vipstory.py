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
    timeout: float = 60.0,
    quiet: float = 2.0,
) -> bool:
    """Wait until every VIP is held by one node for ``quiet`` s; say who and with which ID.

    First every node's keepalived must run: a speaker that starts late (a loaded machine) would
    otherwise take over the VIPs it is preferred for in the middle of the story.
    """
    deadline = time.monotonic() + timeout
    pending = list(lab.nodes)
    while pending and time.monotonic() < deadline:
        pending = [
            n for n in pending if not (lab.keepalived_dir(n.name) / "keepalived.pid").exists()
        ]
        time.sleep(0.1)
    if pending:
        say(f"keepalived is not running on {', '.join(n.name for n in pending)}")
        return False
    router_ids: dict[str, object] = {}
    for name in eips:
        status = lab.api.get(EIPS, name).get("status") or {}
        router_ids.update(status.get("virtualRouterIDs") or {})
    ok = True
    for vip in vips:
        held = _settled(lab, vip, quiet=quiet, deadline=deadline)
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


def _settled(lab: LabCluster, vip: str, *, quiet: float, deadline: float) -> list[str]:
    """The holders of ``vip`` once one node held it for ``quiet`` s (or at ``deadline``)."""
    held = holders(lab, vip)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = holders(lab, vip)
        if now != held:
            held, since = now, time.monotonic()
        elif len(held) == 1 and time.monotonic() - since >= quiet:
            break
    return held
