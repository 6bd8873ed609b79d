"""Who owns each VIP, computed rather than negotiated, and recomputed incrementally.

Every speaker runs the same table over the same inputs (which nodes are live, which nodes each
VIP may live on) and so reaches the same answer with no messages: the eligible node whose
``sha256(node + "#" + ip)`` is smallest owns the VIP, the next one is its backup. That is the rule
OpenELB and MetalLB use, so placement is familiar to users migrating.

Recomputing everything on every change would cost ``VIPs x nodes`` hashes; a node failure must be
handled in milliseconds with 10,000 VIPs, so the table keeps, per VIP, the ranking of every node it
has ever seen (hashed once) and an index from node to the VIPs it owns or backs up. Losing a node
then touches only the VIPs that node owned or backed up; a node becoming live touches only the
VIPs where it ranks ahead of the current backup.

Pure logic: no I/O, no clock, no imports from the Kubernetes or data plane layers.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


def rank_key(node: str, ip: str) -> bytes:
    """The digest ranking ``node`` for ``ip``: smaller ranks first."""
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


@dataclass(frozen=True, slots=True)
class Placement:
    """Owner and backup of one VIP (either may be None when too few nodes are eligible)."""

    owner: str | None
    backup: str | None


@dataclass(frozen=True, slots=True)
class OwnershipChange:
    """The placement of ``ip`` moved from ``before`` to ``after``."""

    ip: str
    before: Placement
    after: Placement


_NOWHERE = Placement(None, None)


class _Vip:
    """Per-VIP state: ranking over all known nodes, who may hold it, current placement."""

    __slots__ = ("candidates", "placement", "ranking")

    def __init__(self, candidates: frozenset[str] | None) -> None:
        self.ranking: list[tuple[bytes, str]] = []
        self.candidates = candidates
        self.placement = _NOWHERE


class OwnershipTable:
    """Owner and backup of every VIP, from node liveness and per-VIP eligibility.

    - ``set_node_live(node, live)``: the node is Ready, not excluded from load balancers and its
      speaker is alive (the caller folds those together).
    - ``set_vip(ip, candidates=...)``: the VIP exists; ``candidates`` restricts it to the nodes
      that have the Eip's interface and, for ``externalTrafficPolicy: Local``, a ready endpoint
      (``None`` = every live node).

    Every mutator returns the placements that changed, so the caller reacts only to those.
    """

    def __init__(self) -> None:
        self._vips: dict[str, _Vip] = {}
        self._known: set[str] = set()
        self._live: set[str] = set()
        # node -> VIPs where it is owner or backup: the only VIPs its death can move
        self._holding: dict[str, set[str]] = {}

    # --- queries ---------------------------------------------------------------------------------

    def placement(self, ip: str) -> Placement:
        """Owner and backup of ``ip`` (both None for an unknown VIP)."""
        vip = self._vips.get(ip)
        return vip.placement if vip is not None else _NOWHERE

    def owner(self, ip: str) -> str | None:
        return self.placement(ip).owner

    def backup(self, ip: str) -> str | None:
        return self.placement(ip).backup

    def owned_by(self, node: str) -> set[str]:
        """VIPs ``node`` owns."""
        return {ip for ip in self._holding.get(node, ()) if self._vips[ip].placement.owner == node}

    def backed_up_by(self, node: str) -> set[str]:
        """VIPs ``node`` is the backup of."""
        return {ip for ip in self._holding.get(node, ()) if self._vips[ip].placement.backup == node}

    def live_nodes(self) -> frozenset[str]:
        return frozenset(self._live)

    def vips(self) -> list[str]:
        return list(self._vips)

    def __len__(self) -> int:
        return len(self._vips)

    def __contains__(self, ip: object) -> bool:
        return ip in self._vips

    # --- mutators --------------------------------------------------------------------------------

    def set_node_live(self, node: str, live: bool) -> list[OwnershipChange]:
        """Mark ``node`` live (eligible to hold VIPs) or not; return the placements that moved."""
        if not node:
            raise ValueError("node name must not be empty")
        if live == (node in self._live):
            return []
        if not live:
            self._live.discard(node)
            affected = list(self._holding.get(node, ()))
            return self._recompute(affected)
        self._live.add(node)
        if node not in self._known:
            self._learn_node(node)
        # The newcomer moves a VIP only if it ranks ahead of the current backup (or the VIP
        # lacks an owner or a backup): compare digests, hash nothing.
        affected = []
        for ip, vip in self._vips.items():
            if vip.candidates is not None and node not in vip.candidates:
                continue
            if vip.placement.backup is None or self._ranks_before(vip, node, vip.placement.backup):
                affected.append(ip)
        return self._recompute(affected)

    def forget_node(self, node: str) -> list[OwnershipChange]:
        """The node is gone for good (deleted): drop it from every ranking."""
        changes = self.set_node_live(node, False)
        if node in self._known:
            self._known.discard(node)
            for ip, vip in self._vips.items():
                key = (rank_key(node, ip), node)
                i = bisect.bisect_left(vip.ranking, key)
                if i < len(vip.ranking) and vip.ranking[i] == key:
                    del vip.ranking[i]
            self._holding.pop(node, None)
        return changes

    def set_vip(self, ip: str, *, candidates: Iterable[str] | None = None) -> list[OwnershipChange]:
        """Add ``ip`` or change which nodes may hold it; return its change, if any."""
        if not ip:
            raise ValueError("VIP must not be empty")
        cands = frozenset(candidates) if candidates is not None else None
        vip = self._vips.get(ip)
        if vip is None:
            vip = _Vip(cands)
            vip.ranking = sorted((rank_key(n, ip), n) for n in self._known)
            self._vips[ip] = vip
        elif vip.candidates == cands:
            return []
        else:
            vip.candidates = cands
        return self._recompute([ip])

    def remove_vip(self, ip: str) -> list[OwnershipChange]:
        """``ip`` is no longer served; its removal is reported as a change to nowhere."""
        vip = self._vips.pop(ip, None)
        if vip is None:
            return []
        self._unindex(ip, vip.placement)
        if vip.placement == _NOWHERE:
            return []
        return [OwnershipChange(ip, vip.placement, _NOWHERE)]

    # --- internals -------------------------------------------------------------------------------

    def _learn_node(self, node: str) -> None:
        self._known.add(node)
        for ip, vip in self._vips.items():
            bisect.insort(vip.ranking, (rank_key(node, ip), node))

    def _ranks_before(self, vip: _Vip, node: str, other: str) -> bool:
        # Rankings are short (one entry per node), so a scan beats keeping a per-VIP dict.
        for _, name in vip.ranking:
            if name == node:
                return True
            if name == other:
                return False
        return False

    def _place(self, vip: _Vip) -> tuple[str | None, str | None]:
        # Hot: a node loss re-places ~2/n of all VIPs. No list, no Placement until it moved.
        owner = None
        live, cands = self._live, vip.candidates
        for _, node in vip.ranking:
            if node in live and (cands is None or node in cands):
                if owner is not None:
                    return owner, node
                owner = node
        return owner, None

    def _recompute(self, ips: Iterable[str]) -> list[OwnershipChange]:
        changes: list[OwnershipChange] = []
        holding = self._holding
        for ip in ips:
            vip = self._vips[ip]
            owner, backup = self._place(vip)
            before = vip.placement
            if owner == before.owner and backup == before.backup:
                continue
            after = Placement(owner, backup) if owner is not None else _NOWHERE
            for node in (before.owner, before.backup):
                if node is not None and node not in (owner, backup):
                    held = holding.get(node)
                    if held is not None:
                        held.discard(ip)
            vip.placement = after
            for node in (owner, backup):
                if node is not None and node not in (before.owner, before.backup):
                    holding.setdefault(node, set()).add(ip)
            changes.append(OwnershipChange(ip, before, after))
        return changes

    def _unindex(self, ip: str, placement: Placement) -> None:
        for node in (placement.owner, placement.backup):
            if node is not None:
                held = self._holding.get(node)
                if held is not None:
                    held.discard(ip)


def compute_placement(
    ip: str, *, live: Iterable[str], candidates: Iterable[str] | None = None
) -> Placement:
    """Owner and backup of one VIP from scratch: the reference the table must agree with."""
    allowed = set(live) if candidates is None else set(live) & set(candidates)
    ranked = sorted(allowed, key=lambda n: rank_key(n, ip))
    return Placement(ranked[0] if ranked else None, ranked[1] if len(ranked) > 1 else None)
