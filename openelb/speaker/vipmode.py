"""VIP mode inside ``openelb speaker``: the component that drives keepalived for ``protocol: vip``.

The node's control loop calls :meth:`VipMode.resolve` with the Eips (to learn which NIC each
VIP-mode Eip uses on this node, published in the speaker's Lease so the other nodes count this
one as eligible) and :meth:`VipMode.update` with a snapshot of the watched objects after every
recompute. Applying a state means planning, rendering and ``keepalived -t``, tens of
milliseconds of subprocess work: that runs on this component's own worker thread so it never
delays the Layer 2 loop, which serves heartbeats. Only the latest snapshot matters, so a burst
of changes collapses into one apply.

keepalived is only touched once a VIP-mode Eip exists (Layer 2-only clusters need no
keepalived binary), or when a previous speaker left one running or VIPs on a NIC.

What users see comes back from here: an Event on every Service of a VIP when this node takes
it ("... is held by node n2"), releases it or is in FAULT; a Warning Event when a VIP cannot be
configured (no router ID yet, router ID conflict, no node address), keepalived refuses the
config (the old config keeps running) or cannot run at all; ``openelb_vrrp_vips_waiting`` counts
the VIPs left out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from openelb import metrics
from openelb.config import KeepalivedSettings
from openelb.keepalived.announcer import KeepalivedAnnouncer
from openelb.keepalived.desired import (
    VIP_PROTOCOL,
    VipModeState,
    WaitingVip,
    state_change_event,
    vip_mode_state,
)
from openelb.keepalived.model import PlanIssue
from openelb.keepalived.states import VipStateChange
from openelb.keepalived.supervisor import KeepalivedError
from openelb.kube.events import NORMAL, WARNING
from openelb.kube.views import Eip, EndpointSlice, Node, Service
from openelb.speaker.interfaces import EipInterfaces
from openelb.speaker.records import SpeakerRecord

log = logging.getLogger(__name__)

WAITING_NO_ROUTER_ID = "NoRouterID"
"""``openelb_vrrp_vips_waiting`` reason: the manager has not written the VIP's router ID yet."""
CONFIG_REJECTED = "KeepalivedConfigRejected"
KEEPALIVED_FAILED = "KeepalivedFailed"


class EventSink(Protocol):
    """What VipMode needs of :class:`~openelb.kube.events.EventRecorder`."""

    def event(self, obj: Any, type: str, reason: str, message: str) -> bool: ...


AnnouncerFactory = Callable[..., KeepalivedAnnouncer]


@dataclass(frozen=True)
class VipInputs:
    """A snapshot of the watched objects, taken on the control loop."""

    services: list[Service]
    eips: list[Eip]
    slices: list[EndpointSlice]
    nodes: list[Node]
    records: Mapping[str, SpeakerRecord]


def vip_eips(eips: Iterable[Eip]) -> list[Eip]:
    """The enabled Eips in VIP mode."""
    return [
        e
        for e in eips
        if str(e.spec.get("protocol") or "") == VIP_PROTOCOL and not e.spec.get("disable")
    ]


class VipMode:
    """keepalived for this node's VIP-mode Eips; see the module docstring."""

    def __init__(
        self,
        *,
        node: str,
        settings: KeepalivedSettings,
        events: EventSink,
        service: Callable[[str], Service | None],
        announcer_factory: AnnouncerFactory = KeepalivedAnnouncer,
    ) -> None:
        self.node = node
        self.settings = settings
        self._events = events
        self._service = service
        self._factory = announcer_factory
        self._interfaces: dict[str, str] = {}
        self._resolver = EipInterfaces(node=node, what="VIP-mode Eip", log=log)
        self._lock = threading.Lock()
        self._pending: VipInputs | None = None
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._busy = False
        self.announcer: KeepalivedAnnouncer | None = None
        self._services: dict[str, tuple[str, ...]] = {}
        self._waiting: set[tuple[str, str]] = set()
        self._failure = ""
        self.applied = 0
        """Snapshots applied (tests wait on it)."""

    # --- called on the control loop --------------------------------------------------------------

    def resolve(self, eips: Iterable[Eip]) -> bool:
        """Resolve each VIP-mode Eip's NIC on this node; True when the result changed."""
        interfaces = self._resolver.resolve(vip_eips(eips))
        changed = interfaces != self._interfaces
        self._interfaces = interfaces
        return changed

    def interfaces(self) -> dict[str, str]:
        """Eip -> NIC for the VIP-mode Eips this node can serve (for the Lease record)."""
        return dict(self._interfaces)

    def update(self, inputs: VipInputs) -> None:
        """Apply ``inputs`` soon (on the worker thread); never blocks."""
        if self.announcer is None and self._thread is None and not self._needed(inputs):
            return
        with self._lock:
            if self._closing:
                return
            self._pending = inputs
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="vip-mode", daemon=True)
                self._thread.start()
        self._wake.set()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every posted snapshot was applied (tests)."""
        with self._idle:
            return self._idle.wait_for(
                lambda: not self._busy and self._pending is None, timeout=timeout
            )

    def close(self) -> None:
        """Stop applying, then stop keepalived: it releases its VIPs, a backup takes over."""
        with self._lock:
            self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.settings.validate_timeout + self.settings.stop_timeout + 5)
        self._close_announcer()  # the worker normally did, unless it is stuck
        metrics.vrrp_vips_waiting({})

    def _close_announcer(self) -> None:
        with self._lock:
            announcer, self.announcer = self.announcer, None
        if announcer is not None:
            announcer.close()

    # --- the worker ------------------------------------------------------------------------------

    def _needed(self, inputs: VipInputs) -> bool:
        if vip_eips(inputs.eips):
            return True
        root = Path(self.settings.runtime_dir)
        # A speaker that died left keepalived running or VIPs on a NIC: clean up after it.
        return any((root / name).exists() for name in ("keepalived.pid", "held-vips.json"))

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            with self._idle, self._lock:  # taking the snapshot and "busy" in one step: wait_idle
                self._wake.clear()
                closing = self._closing
                inputs, self._pending = self._pending, None
                self._busy = inputs is not None and not closing
            if closing:
                # keepalived's death signal follows the thread that started it: this one stops
                # it before exiting, so it is never signalled by the thread's end instead.
                self._close_announcer()
                return
            if inputs is None:
                continue
            try:
                self._apply(inputs)
            except Exception:  # the worker must survive anything one snapshot does to it
                log.exception("VIP mode: applying the desired state failed")
            finally:
                with self._idle:
                    self._busy = False
                    self.applied += 1
                    self._idle.notify_all()

    def _apply(self, inputs: VipInputs) -> None:
        state = vip_mode_state(
            node=self.node,
            services=inputs.services,
            eips=inputs.eips,
            slices=inputs.slices,
            nodes=inputs.nodes,
            records=inputs.records,
        )
        self._services = dict(state.services)
        try:
            if self.announcer is None:
                announcer = self._factory(
                    node=self.node,
                    settings=self.settings,
                    on_change=self._state_changed,
                    on_issue=self._issue,
                )
                announcer.start()
                self.announcer = announcer
            outcome = self.announcer.apply(state.desired)
        except (KeepalivedError, OSError) as exc:
            # No keepalived binary, an unwritable --keepalived-dir...: say so once, retry on
            # the next change.
            self._report_failure(KEEPALIVED_FAILED, f"VIP mode cannot run keepalived: {exc}", state)
            return
        if outcome.result.applied:
            self._failure = ""
        else:
            self._report_failure(
                CONFIG_REJECTED,
                "keepalived refused the new config; the previous one stays in use: "
                + outcome.result.error,
                state,
            )
        self._report_waiting(state.waiting, outcome.issues)

    def _report_failure(self, reason: str, message: str, state: VipModeState) -> None:
        """Log and tell the Services once per distinct failure (every watch event retries)."""
        if message == self._failure:
            return
        self._failure = message
        log.error("%s", message)
        for vip in sorted(state.services):
            self._to_services(vip, WARNING, reason, message)

    def _report_waiting(self, waiting: Iterable[WaitingVip], issues: Iterable[PlanIssue]) -> None:
        counts: dict[str, int] = {}
        current: set[tuple[str, str]] = set()
        for item in waiting:
            ip, eip, reason = item.ip, item.eip, item.reason
            counts[WAITING_NO_ROUTER_ID] = counts.get(WAITING_NO_ROUTER_ID, 0) + 1
            current.add((ip, WAITING_NO_ROUTER_ID))
            if (ip, WAITING_NO_ROUTER_ID) not in self._waiting:
                log.info("VIP %s of Eip %s waits: %s", ip, eip, reason)
                self._to_services(
                    ip, NORMAL, "VIPWaiting", f"VIP {ip} (Eip {eip}) is not configured: {reason}"
                )
        for issue in issues:
            counts[issue.kind.value] = counts.get(issue.kind.value, 0) + 1
        self._waiting = current
        metrics.vrrp_vips_waiting(counts)

    # --- callbacks from the announcer ------------------------------------------------------------

    def _issue(self, issue: PlanIssue) -> None:
        self._to_services(
            issue.vip,
            WARNING,
            issue.kind.value,
            f"VIP {issue.vip} (Eip {issue.eip}) is not configured on node {self.node}: "
            f"{issue.message}",
        )

    def _state_changed(self, change: VipStateChange) -> None:
        event = state_change_event(change)
        if event is not None:
            self._to_services(change.vip, *event)

    def _to_services(self, vip: str, type: str, reason: str, message: str) -> None:
        for key in self._services.get(vip, ()):
            svc = self._service(key)
            if svc is not None:
                self._events.event(svc, type, reason, message)
