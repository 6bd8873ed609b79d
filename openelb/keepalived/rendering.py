"""``keepalived.conf`` text from a :class:`~openelb.keepalived.model.Plan`; pure, byte-stable.

Byte-stable matters: the supervisor reloads keepalived only when the rendered text changed, so
the same plan must always give the same bytes (sorted everything, no timestamps).

Choices made for the user, each a place where OpenELB's users got hurt or waited:

- ``vrrp_version 3`` globally: under VRRPv2 (keepalived's default) a sub-second ``advert_int``
  is silently rounded up to 1 s and failover takes ~3.2 s instead of ~0.3 s (measured here).
  Only instances with a password fall back to ``version 2`` (VRRPv3 has no authentication);
  the settings refuse a sub-second interval together with a password.
- every instance starts as BACKUP and priorities decide: no node claims mastership at start,
  which would briefly put a VIP on two nodes after a restart;
- VIPs are host routes (``/32``, ``/128``) on the named NIC: no subnet route appears, and the
  pool need not share the NIC's subnet;
- state transitions go to a FIFO the speaker reads (``vrrp_notify_fifo``): no scripts to run,
  no ``script_user`` to configure.
"""

from __future__ import annotations

import ipaddress

from openelb.config import KeepalivedSettings
from openelb.keepalived.model import Instance, Plan

INDENT = "    "


def _format_interval(seconds: float) -> str:
    """keepalived reads centiseconds in v3; print the shortest exact decimal."""
    text = f"{round(seconds, 2):.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _host_route(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


def _quote(text: str) -> str:
    """keepalived strings: double quotes keep spaces and ``#`` from being parsed."""
    if any(ch in text for ch in '"\n\r\\'):
        raise ValueError(f"cannot put {text!r} into keepalived.conf")
    return f'"{text}"'


def render_global(*, node: str, fifo: str, settings: KeepalivedSettings) -> list[str]:
    """The ``global_defs`` block."""
    lines = [
        "global_defs {",
        f"{INDENT}router_id {_quote(node)}",
        f"{INDENT}vrrp_version 3",
        f"{INDENT}vrrp_notify_fifo {_quote(fifo)}",
        f"{INDENT}vrrp_garp_master_repeat {settings.garp_master_repeat}",
        f"{INDENT}vrrp_garp_master_delay {settings.garp_master_delay}",
        # Adverts carry the VIP list; a peer with a stale list during a rolling reload must not
        # make keepalived drop the advert (it would fight for mastership meanwhile).
        f"{INDENT}vrrp_skip_check_adv_addr",
        "}",
    ]
    return lines


def render_instance(instance: Instance, *, settings: KeepalivedSettings) -> list[str]:
    """One ``vrrp_instance`` block."""
    lines = [f"vrrp_instance {instance.name} {{"]
    body = [
        "state BACKUP",
        f"interface {instance.interface}",
        f"virtual_router_id {instance.router_id}",
        f"priority {instance.priority}",
        f"advert_int {_format_interval(settings.advert_int)}",
    ]
    if settings.auth_pass:
        body.insert(0, "version 2")
    if not settings.preempt:
        body.append("nopreempt")
    # The plan gives a lone node itself as its peer (see openelb.keepalived.model).
    if instance.source is not None and instance.peers:
        body.append(f"unicast_src_ip {instance.source}")
        body.append("unicast_peer {")
        body.extend(f"{INDENT}{peer}" for peer in instance.peers)
        body.append("}")
    if settings.auth_pass:
        body.extend(
            [
                "authentication {",
                f"{INDENT}auth_type PASS",
                f"{INDENT}auth_pass {_quote(settings.auth_pass)}",
                "}",
            ]
        )
    advertised = instance.vips[: settings.max_vips_per_advert]
    excluded = instance.vips[settings.max_vips_per_advert :]
    body.append("virtual_ipaddress {")
    body.extend(f"{INDENT}{_host_route(vip)} dev {instance.interface}" for vip in advertised)
    body.append("}")
    if excluded:
        body.append("virtual_ipaddress_excluded {")
        body.extend(f"{INDENT}{_host_route(vip)} dev {instance.interface}" for vip in excluded)
        body.append("}")
    lines.extend(f"{INDENT}{line}" for line in body)
    lines.append("}")
    return lines


def render(plan: Plan, *, fifo: str, settings: KeepalivedSettings) -> str:
    """The whole ``keepalived.conf`` for ``plan``."""
    lines = [
        f"# Rendered by openelb for node {plan.node}; do not edit (it is rewritten).",
        *render_global(node=plan.node, fifo=fifo, settings=settings),
    ]
    for instance in plan.instances:
        lines.append("")
        lines.extend(render_instance(instance, settings=settings))
    return "\n".join(lines) + "\n"
