"""The VIP-mode announcer: the one object the speaker talks to for ``protocol: vip`` Eips.

The speaker's control loop computes "desired VIP-mode state for this node" (which VIPs, their
Eips and router IDs from the Eip status, eligible nodes and their addresses, the NIC) and calls
:meth:`KeepalivedAnnouncer.apply` whenever that changes; the announcer plans, renders, validates
and (re)loads keepalived, and reports every per-VIP state change through ``on_change`` so the
speaker can emit the Event naming the node that holds the VIP and set conditions for the VIPs
left out (``on_issue``). It owns the supervised keepalived; :meth:`close` releases everything.

Threads: ``on_change`` runs on the FIFO reader thread; keep it short (queue the Event).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from openelb.config import KeepalivedSettings
from openelb.keepalived.adverts import AdvertWatcher
from openelb.keepalived.model import DesiredState, Plan, PlanIssue, plan
from openelb.keepalived.notify import Transition, VrrpState
from openelb.keepalived.rendering import render
from openelb.keepalived.states import StateTable, VipStateChange
from openelb.keepalived.supervisor import ApplyResult, KeepalivedSupervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnounceOutcome:
    """What one :meth:`KeepalivedAnnouncer.apply` did."""

    plan: Plan
    result: ApplyResult

    @property
    def issues(self) -> tuple[PlanIssue, ...]:
        return self.plan.issues


class KeepalivedAnnouncer:
    """Drives keepalived on this node from desired VIP-mode state; reports state changes."""

    def __init__(
        self,
        *,
        node: str,
        settings: KeepalivedSettings | None = None,
        on_change: Callable[[VipStateChange], None] | None = None,
        on_issue: Callable[[PlanIssue], None] | None = None,
        runtime_dir: Path | None = None,
        netns: str | None = None,
        watch_adverts: bool = True,
    ) -> None:
        self.node = node
        self.settings = settings or KeepalivedSettings()
        self._on_change = on_change
        self._on_issue = on_issue
        self._lock = threading.Lock()
        self._watcher = AdvertWatcher(netns=netns) if watch_adverts else None
        self.states = StateTable(
            node=node,
            last_foreign_advert=self._watcher.last_foreign if self._watcher else None,
        )
        self.supervisor = KeepalivedSupervisor(
            settings=self.settings,
            runtime_dir=runtime_dir,
            netns=netns,
            on_transition=self._transition,
        )
        self._plan: Plan | None = None
        self._reported: set[tuple[str, str]] = set()

    def start(self) -> KeepalivedAnnouncer:
        self.supervisor.start()
        if self._watcher is not None:
            self._watcher.start()
        return self

    def apply(self, desired: DesiredState) -> AnnounceOutcome:
        """Make keepalived implement ``desired``; a refused config keeps the previous one."""
        if desired.node != self.node:
            raise ValueError(f"desired state is for node {desired.node!r}, not {self.node!r}")
        with self._lock:
            new_plan = plan(desired, self.settings)
            text = render(new_plan, fifo=str(self.supervisor.paths.fifo), settings=self.settings)
            # Track the new instances before keepalived can report on them (it starts in ms).
            self.states.set_plan(new_plan)
            result = self.supervisor.apply(text, new_plan.vips_by_interface())
            if not result.applied and self._plan is not None:
                self.states.set_plan(self._plan)
            if result.applied:
                self._plan = new_plan
                if self._watcher is not None:
                    self._watcher.set_own_addresses(
                        {i.source for i in new_plan.instances if i.source is not None}
                    )
            self._report_issues(new_plan)
        return AnnounceOutcome(new_plan, result)

    def held(self) -> set[str]:
        """VIPs this node holds (keepalived reported MASTER)."""
        return self.states.held()

    def vip_states(self) -> dict[str, VrrpState]:
        return self.states.vip_states()

    @property
    def plan(self) -> Plan | None:
        """The plan keepalived currently runs."""
        return self._plan

    def close(self) -> None:
        """Stop keepalived (VIPs released, a backup takes over at once) and stop watching."""
        self.supervisor.stop()
        if self._watcher is not None:
            self._watcher.close()

    def __enter__(self) -> KeepalivedAnnouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transition(self, transition: Transition) -> None:
        for change in self.states.record(transition):
            if change.state is VrrpState.MASTER:
                log.info("VIP %s (Eip %s) now held by %s", change.vip, change.eip, self.node)
            if self._on_change is not None:
                self._on_change(change)

    def _report_issues(self, new_plan: Plan) -> None:
        """Each (VIP, issue) once until it goes away, so Events are not repeated every loop."""
        current = {(issue.vip, issue.kind.value) for issue in new_plan.issues}
        for issue in new_plan.issues:
            key = (issue.vip, issue.kind.value)
            if key in self._reported:
                continue
            log.warning("VIP %s of Eip %s not configured: %s", issue.vip, issue.eip, issue.message)
            if self._on_issue is not None:
                self._on_issue(issue)
        self._reported = current
