"""VIPs on a NIC: list them and take them off, for cleaning up after a keepalived that died.

A keepalived killed outright (SIGKILL, OOM, segfault) leaves its VIPs on the NIC. If another
node takes over meanwhile, both answer ARP for the VIP: split brain. So the supervisor removes
every VIP keepalived may have added before it starts or restarts keepalived and after it stops.
iproute2 is used (``ip -json``), optionally in a named network namespace, because the speaker
and the tests run it the same way and it needs no extra privileges beyond CAP_NET_ADMIN.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable, Sequence


class AddressError(RuntimeError):
    """An ``ip`` command failed; the message carries its output."""


def _ip(args: Sequence[str], *, netns: str | None, timeout: float = 10.0) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AddressError(f"{' '.join(cmd)}: {exc}") from exc
    if done.returncode != 0:
        raise AddressError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def addresses_on(interface: str, *, netns: str | None = None) -> dict[str, int]:
    """Addresses on ``interface`` (normalised text -> prefix length); empty if it is gone."""
    try:
        out = _ip(["-json", "addr", "show", "dev", interface], netns=netns)
    except AddressError as exc:
        if "does not exist" in str(exc):
            return {}
        raise
    found: dict[str, int] = {}
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            local = info.get("local")
            if local:
                found[str(ipaddress.ip_address(local))] = int(info.get("prefixlen", 0))
    return found


def remove_addresses(
    interface: str, addresses: Iterable[str], *, netns: str | None = None
) -> list[str]:
    """Remove those of ``addresses`` that are on ``interface``; returns the ones removed."""
    wanted = {str(ipaddress.ip_address(a)) for a in addresses}
    present = addresses_on(interface, netns=netns)
    removed: list[str] = []
    for address in sorted(wanted & present.keys()):
        try:
            _ip(["addr", "del", f"{address}/{present[address]}", "dev", interface], netns=netns)
        except AddressError as exc:
            if "Cannot assign" not in str(exc):  # already gone: someone else removed it
                raise
            continue
        removed.append(address)
    return removed
