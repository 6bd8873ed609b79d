"""Which NIC of this node announces an Eip: ``interface: eth0`` or ``interface: can_reach:<ip>``.

Resolved on every node separately (NIC names and routes differ between nodes) and published in
the speaker's Lease, so a node that cannot resolve an Eip's interface is simply not a candidate
for its VIPs. A NIC whose subnets do not contain the VIP gets a warning, not a refusal: users run
pools outside the node subnet on purpose (routed LANs, secondary ranges) and OpenELB's refusal
was a complaint.

Reads the calling thread's network namespace through netlink (pyroute2).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Any

from openelb.kube.views import Eip

CAN_REACH = "can_reach:"


class InterfaceError(ValueError):
    """The Eip's interface cannot be resolved on this node; the message says why."""


def resolve_interface(spec: str) -> str:
    """The NIC name for an Eip ``interface`` value on this node."""
    spec = spec.strip()
    if not spec:
        raise InterfaceError("the Eip has no interface (set spec.interface for layer2 mode)")
    if spec.startswith(CAN_REACH):
        return _route_interface(spec[len(CAN_REACH) :].strip())
    try:
        socket.if_nametoindex(spec)
    except OSError:
        raise InterfaceError(f"no interface named {spec!r} on this node") from None
    return spec


class EipInterfaces:
    """Resolves the NIC of each Eip on this node, warning once per Eip and distinct error.

    Both announcers (Layer 2 in the speaker core, VIP mode's keepalived) resolve their Eips on
    every recompute; a broken Eip would otherwise repeat its warning on each one. ``what`` names
    the Eips in the warning ("Eip", "VIP-mode Eip"); ``log`` is the caller's logger.
    """

    def __init__(self, *, node: str, what: str, log: logging.Logger) -> None:
        self.node = node
        self.what = what
        self._log = log
        self._errors: dict[str, str] = {}

    def resolve(self, eips: Iterable[Eip]) -> dict[str, str]:
        """Eip name -> NIC for the given Eips that resolve here; the rest are warned about."""
        interfaces: dict[str, str] = {}
        errors: dict[str, str] = {}
        for eip in eips:
            try:
                interfaces[eip.name] = resolve_interface(str(eip.spec.get("interface") or ""))
            except InterfaceError as exc:
                errors[eip.name] = str(exc)
        for name, error in errors.items():
            if self._errors.get(name) != error:
                self._log.warning(
                    "%s %s not served from node %s: %s", self.what, name, self.node, error
                )
        self._errors = errors
        return interfaces


def _route_interface(target: str) -> str:
    try:
        ip = ipaddress.ip_address(target)
    except ValueError:
        raise InterfaceError(f"can_reach:{target} is not an IP address") from None
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        try:
            routes: list[Any] = list(ipr.route("get", dst=str(ip)))
        except Exception as exc:
            raise InterfaceError(f"no route to {ip} on this node ({exc})") from exc
        if not routes or routes[0].get_attr("RTA_OIF") is None:
            raise InterfaceError(f"no route to {ip} on this node")
        index = int(routes[0].get_attr("RTA_OIF"))
    try:
        return socket.if_indextoname(index)
    except OSError:
        raise InterfaceError(f"the route to {ip} uses interface #{index}, now gone") from None


def subnet_warning(nic: str, vip: str) -> str | None:
    """A warning when no subnet on ``nic`` contains ``vip`` (None when one does)."""
    return warning_for(nic, vip, nic_networks(nic))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def nic_networks(nic: str) -> list[Network] | None:
    """The subnets of ``nic``'s addresses (None: no such NIC). One netlink dump: callers with
    many VIPs to check read it once (opening a netlink socket per VIP cost ~3 ms each)."""
    from pyroute2 import IPRoute

    try:
        index = socket.if_nametoindex(nic)
    except OSError:
        return None
    networks: list[Network] = []
    with IPRoute() as ipr:
        for msg in ipr.get_addr(index=index):
            address = msg.get_attr("IFA_ADDRESS")
            if address is not None:
                networks.append(ipaddress.ip_interface(f"{address}/{msg['prefixlen']}").network)
    return networks


def warning_for(nic: str, vip: str, networks: list[Network] | None) -> str | None:
    """:func:`subnet_warning` from already-read ``networks`` (see :func:`nic_networks`)."""
    if networks is None:
        return f"interface {nic!r} is gone"
    ip = ipaddress.ip_address(vip)
    if any(n.version == ip.version and ip in n for n in networks):
        return None
    return (
        f"VIP {vip} is outside every subnet of {nic}; clients on {nic}'s LAN reach it only if "
        "their routes send it there (announcing anyway)"
    )
