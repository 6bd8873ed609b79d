"""Small builders for VIP-mode desired states."""

from __future__ import annotations

from openelb.keepalived.model import DesiredState, DesiredVip, NodeAddresses


def nodes(*names: str, v6: bool = True) -> dict[str, NodeAddresses]:
    return {
        name: NodeAddresses(name, f"10.250.0.{11 + i}", f"fd0e:1b::{0x11 + i:x}" if v6 else None)
        for i, name in enumerate(names)
    }


def vip(
    address: str,
    *,
    eip: str = "pool1",
    router_id: int = 7,
    eligible: tuple[str, ...] = ("a", "b", "c"),
    interface: str = "eth0",
) -> DesiredVip:
    return DesiredVip(address, eip, router_id, frozenset(eligible), interface)


def state(node: str, *vips: DesiredVip, names: tuple[str, ...] = ("a", "b", "c")) -> DesiredState:
    return DesiredState(node, tuple(vips), nodes(*names))
