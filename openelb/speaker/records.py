"""What a speaker publishes about itself on its Lease ``openelb-speaker-<node>``.

The Lease says the speaker exists (membership, slow and authoritative); its annotations tell the
other speakers what they need to reach the same decisions and to talk to it:

- ``speaker.openelb.io/heartbeat``: ``ip:port`` (``[v6]:port``) of its heartbeat socket;
- ``speaker.openelb.io/incarnation``: its incarnation (grows across restarts and refutations);
- ``speaker.openelb.io/interfaces``: JSON ``{eip: nic}``, the NIC each Layer 2 Eip is announced
  on *on this node* (``can_reach:`` resolves per node; an Eip missing here means "not eligible");
  VIP-mode Eips are listed too, with the NIC keepalived puts their VIPs on;
- ``speaker.openelb.io/macs``: JSON ``{nic: mac}``, so a conflict seen in the data plane can be
  attributed to the speaker owning that MAC;
- ``speaker.openelb.io/unserved``: JSON list of the Layer 2 Eips this node *cannot* serve (no
  such interface here). An Eip in neither list is one the speaker has not seen yet: its Lease
  lags a new Eip by a watch round trip, and the others count it as a candidate meanwhile (every
  node computes the same owner at once, so no two nodes answer a new VIP; the rare node that
  turns out to lack the NIC hands the VIP on when its Lease says so).

Parsing never raises: a malformed Lease yields a reason and the speaker is left out (and logged),
rather than crashing every other speaker.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

LEASE_PREFIX = "openelb-speaker-"
ANNOTATION_HEARTBEAT = "speaker.openelb.io/heartbeat"
ANNOTATION_INCARNATION = "speaker.openelb.io/incarnation"
ANNOTATION_INTERFACES = "speaker.openelb.io/interfaces"
ANNOTATION_MACS = "speaker.openelb.io/macs"
ANNOTATION_UNSERVED = "speaker.openelb.io/unserved"


def lease_name(node: str) -> str:
    return f"{LEASE_PREFIX}{node}"


def node_of_lease(name: str) -> str | None:
    """The node a speaker Lease belongs to, None for any other Lease."""
    if name.startswith(LEASE_PREFIX) and len(name) > len(LEASE_PREFIX):
        return name[len(LEASE_PREFIX) :]
    return None


@dataclass(frozen=True)
class SpeakerRecord:
    """One speaker as the others see it."""

    node: str
    heartbeat: tuple[str, int]
    incarnation: int
    interfaces: Mapping[str, str] = field(default_factory=dict)
    macs: Mapping[str, str] = field(default_factory=dict)
    unserved: frozenset[str] = frozenset()
    """Layer 2 Eips whose interface this node does not have."""

    def may_serve(self, eip: str) -> bool:
        """Whether this speaker can hold VIPs of ``eip``, or has not said otherwise yet."""
        return eip in self.interfaces or eip not in self.unserved

    def annotations(self) -> dict[str, str]:
        host, port = self.heartbeat
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return {
            ANNOTATION_HEARTBEAT: address,
            ANNOTATION_INCARNATION: str(self.incarnation),
            ANNOTATION_INTERFACES: json.dumps(dict(sorted(self.interfaces.items()))),
            ANNOTATION_MACS: json.dumps(dict(sorted(self.macs.items()))),
            ANNOTATION_UNSERVED: json.dumps(sorted(self.unserved)),
        }


def parse_address(text: str) -> tuple[str, int]:
    """``ip:port`` or ``[v6]:port``; ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"heartbeat address {text!r} has no port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ip = ipaddress.ip_address(host)
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"heartbeat port {number} is out of range")
    return str(ip), number


def _str_map(text: str, what: str) -> dict[str, str]:
    value = json.loads(text or "{}")
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{what} must be a JSON object of strings")
    return value


def parse_record(node: str, annotations: Mapping[str, str]) -> SpeakerRecord | str:
    """The record from a Lease's annotations, or the reason it cannot be used."""
    try:
        heartbeat = parse_address(annotations.get(ANNOTATION_HEARTBEAT, ""))
        incarnation = int(annotations.get(ANNOTATION_INCARNATION, ""))
        if incarnation < 0:
            raise ValueError("incarnation is negative")
        interfaces = _str_map(annotations.get(ANNOTATION_INTERFACES, ""), "interfaces")
        macs = _str_map(annotations.get(ANNOTATION_MACS, ""), "macs")
        unserved = json.loads(annotations.get(ANNOTATION_UNSERVED, "") or "[]")
        if not isinstance(unserved, list) or not all(isinstance(e, str) for e in unserved):
            raise ValueError("unserved must be a JSON list of strings")
    except (ValueError, TypeError) as exc:
        return f"speaker Lease of {node} is malformed: {exc}"
    return SpeakerRecord(node, heartbeat, incarnation, interfaces, macs, frozenset(unserved))


def owner_of_mac(records: Mapping[str, SpeakerRecord], mac: bytes) -> str | None:
    """The speaker whose NIC has ``mac`` (for attributing a conflict), None for a foreign host."""
    text = mac.hex(":")
    for record in records.values():
        if text in (m.lower() for m in record.macs.values()):
            return record.node
    return None
