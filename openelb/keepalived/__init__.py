"""VIP mode: openelb plans, renders, runs and watches keepalived (VRRPv3) on each node.

The speaker uses :class:`KeepalivedAnnouncer`: ``apply(DesiredState)`` whenever the VIP-mode
state of its node changes, per-VIP state changes back through ``on_change``. Underneath:
``model`` (plan instances), ``rendering`` (keepalived.conf), ``supervisor`` (the child process),
``notify``/``states`` (VRRP transitions), ``adverts`` (failover duration), ``nicaddresses``.
"""

from openelb.keepalived.announcer import AnnounceOutcome, KeepalivedAnnouncer
from openelb.keepalived.model import (
    DesiredState,
    DesiredVip,
    Instance,
    IssueKind,
    NodeAddresses,
    Plan,
    PlanIssue,
    plan,
)
from openelb.keepalived.notify import Transition, VrrpState
from openelb.keepalived.rendering import render
from openelb.keepalived.states import VipStateChange
from openelb.keepalived.supervisor import ApplyResult, KeepalivedError, KeepalivedSupervisor

__all__ = [
    "AnnounceOutcome",
    "ApplyResult",
    "DesiredState",
    "DesiredVip",
    "Instance",
    "IssueKind",
    "KeepalivedAnnouncer",
    "KeepalivedError",
    "KeepalivedSupervisor",
    "NodeAddresses",
    "Plan",
    "PlanIssue",
    "Transition",
    "VipStateChange",
    "VrrpState",
    "plan",
    "render",
]
