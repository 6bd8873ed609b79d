"""``openelb speaker``: the process on every node that makes it answer for the VIPs it owns.

A thin shell around :class:`openelb.speaker.core.SpeakerCore`: it feeds the core from watches
(Nodes, Services, EndpointSlices, Eips, speaker Leases), from the heartbeat socket and from the
clock, and carries the core's actions out, always in this order: program the data plane, then
announce, then send messages, then retarget heartbeats.

One control-loop thread does all of that; it blocks on the heartbeat inbox (watch changes post a
wake-up there too) until the core's next deadline. Before asking for verdicts it drains the
heartbeat socket, so a pause of this loop never turns into a peer's death. If the loop hangs, the
native heartbeat thread runs out of datagrams within ``hung_after`` and stops both heartbeats
and the data plane's liveness gate: a hung speaker loses its VIPs.

Fail-static: when the apiserver is unreachable the watches keep their last state and the loop
keeps serving and heartbeating from it; a peer's Lease only counts as expired over time our own
renewals succeeded, and never while its heartbeats say it is alive (:mod:`.expiry`), so a broken
apiserver never looks like other nodes leaving.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from openelb import metrics
from openelb.config import KeepalivedSettings, SpeakerSettings
from openelb.dataplane import packet
from openelb.dataplane.announcing import AnnounceSender
from openelb.dataplane.multicast import SolicitedNodeGroups
from openelb.dataplane.probing import ProbeBatch, ProbeResult
from openelb.dataplane.responder import (
    DEFAULT_PIN_ROOT,
    DataplaneError,
    Responder,
    VipEntry,
    interface_index,
    interface_mac,
    open_responder,
)
from openelb.dataplane.xdp_loader import LoadedProgram
from openelb.kube.client import KubeApi
from openelb.kube.events import NORMAL, WARNING, EventRecorder
from openelb.kube.resources import EIPS, ENDPOINTSLICES, LEASES, NODES, SERVICES
from openelb.kube.views import Eip, Lease, Node, Service
from openelb.kube.watching import Change, WatchCache
from openelb.speaker.announcing import AnnounceScheduler
from openelb.speaker.core import Actions, SpeakerCore
from openelb.speaker.desired import DesiredVips, VipPlan, layer2_pools, node_eligibility
from openelb.speaker.expiry import LeaseExpiry, UnleasedPeers
from openelb.speaker.heartbeating import Gate, HeartbeatTransport, Received, resolve_targets
from openelb.speaker.interfaces import EipInterfaces, Network, nic_networks, warning_for
from openelb.speaker.leanviews import lean_service, lean_slice
from openelb.speaker.lease import SpeakerLease
from openelb.speaker.membership import EVERYONE
from openelb.speaker.neighbours import NeighbourUnsticker
from openelb.speaker.records import SpeakerRecord, node_of_lease, owner_of_mac, parse_record
from openelb.speaker.vipmode import VipInputs, VipMode
from openelb.speaker.wire import Kind

log = logging.getLogger(__name__)

ResponderFactory = Callable[[list[str]], Responder]
_SUBNETS_TTL = 5.0
"""How long a NIC's subnets read for the SubnetMismatch warning are reused."""


@dataclass
class _Facts:
    """What the last recompute derived from the watches."""

    plans: dict[str, VipPlan] = field(default_factory=dict)
    records: dict[str, SpeakerRecord] = field(default_factory=dict)
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)


_LOGGED_VIPS = 20
"""VIPs named in one log line; a takeover of 1,000 VIPs is one line, not 1,000."""


def _log_vips(what: str, ips: list[str], suffix: str = "") -> None:
    if not ips:
        return
    if len(ips) <= _LOGGED_VIPS:
        log.info("%s %s%s", what, ", ".join(ips), suffix)
    else:
        shown = ", ".join(ips[:_LOGGED_VIPS])
        log.info("%s %d VIPs%s: %s, ...", what, len(ips), suffix, shown)


class SpeakerNode:
    """The speaker process for one node (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: SpeakerSettings,
        api: KubeApi,
        responder_factory: ResponderFactory | None = None,
        instance: str = "default",
        keepalived: KeepalivedSettings | None = None,
    ) -> None:
        if not settings.node:
            raise ValueError("the speaker needs its node name (--node or $NODE_NAME)")
        self.settings = settings
        self.api = api
        self.node = settings.node
        self.instance = instance
        self._responder_factory = responder_factory or self._open_responder
        self._preload = responder_factory is None
        self._preloaded: LoadedProgram | None = None
        self.incarnation = time.time_ns()
        self.core = SpeakerCore(
            node=self.node,
            incarnation=self.incarnation,
            interval=settings.heartbeat_interval,
            misses=settings.heartbeat_misses,
            ring_fanout=settings.ring_fanout,
            scheduler=AnnounceScheduler(
                burst=settings.announce_burst, refresh=settings.announce_refresh
            ),
        )
        self.core.progress = self._keep_up
        self.caches: dict[str, WatchCache[Any]] = {}
        self.transport: HeartbeatTransport | None = None
        self.lease: SpeakerLease | None = None
        self.responder: Responder | None = None
        self.sender = AnnounceSender()
        # Conflict probes of newly assigned VIPs, sent per step in one batch and collected by
        # later steps: a probe's wait never blocks the loop (nor the heartbeats it feeds).
        self.probes: ProbeBatch | None = (
            ProbeBatch(self.sender, wait=settings.probe_wait, count=settings.probe_count)
            if settings.probe_wait > 0
            else None
        )
        self._reprogram = False  # what the data plane may answer changed outside the core
        self.groups = SolicitedNodeGroups()
        self.neighbours = NeighbourUnsticker(period=5 * settings.heartbeat_interval)
        self._joined: set[tuple[str, str]] = set()  # (nic, IPv6 VIP) whose group we hold
        self.events = EventRecorder(api, component="openelb-speaker", host=self.node)
        self._dirty = threading.Event()
        self._dirty_since: float | None = None
        self._event_at: float | None = None  # when the change being processed was first seen
        self._facts = _Facts()
        # Per-object recompute: the watch threads note which Services and slices changed, the
        # loop re-plans only their VIPs (a full pass at 10,000 Services cost ~170 ms).
        self.desired = DesiredVips()
        self._changes_lock = threading.Lock()
        self._changed_keys: dict[str, set[str]] = {"services": set(), "slices": set()}
        self._interfaces: dict[str, str] = {}  # eip -> nic on this node
        self._resolver = EipInterfaces(node=self.node, what="Eip", log=log)
        self._subnets: dict[str, tuple[float, list[Network] | None]] = {}  # nic -> (read at, nets)
        self._unserved: frozenset[str] = frozenset()  # Layer 2 Eips this node cannot serve
        self._macs: dict[str, str] = {}
        self._nics: tuple[str, ...] = ()
        self._blocked: dict[str, float] = {}  # VIP in use by another host -> retry at
        self._blocked_by: dict[str, bytes] = {}  # ... and that host's MAC
        self._first_announce: dict[str, tuple[float | None, float | None]] = {}
        self._expiry = LeaseExpiry()
        self._unleased = UnleasedPeers()
        self._programmed: frozenset[str] = frozenset()
        self._synced: frozenset[VipEntry] | None = None  # what the data plane was last given
        self._entries: dict[str, tuple[str, VipEntry]] = {}  # VIP -> (nic, its entry)
        self._ifindex: dict[str, tuple[float, int]] = {}  # nic -> (read at, index)
        self._waited = 0.0
        self._last_status = 0.0
        self._received = 0
        self._overflowed = 0  # datagrams dropped for a full buffer, not yet logged
        self._overflow_logged = float("-inf")
        self._phases: list[tuple[str, float]] = []
        self.announced: dict[str, int] = {}
        """Announcements sent per VIP (tests and the lab read it)."""
        # VIP mode (protocol: vip): keepalived, driven from the same watches on its own thread.
        self.vip = VipMode(
            node=self.node,
            settings=keepalived or KeepalivedSettings(),
            events=self.events,
            service=self._service,
        )

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, *, sync_timeout: float = 30.0) -> None:
        """Watch, bind the heartbeat socket, publish the Lease; returns when synced."""
        s = self.settings
        views: dict[str, tuple[Any, Callable[[dict[str, Any]], Any], str | None]] = {
            "nodes": (NODES, Node.from_raw, None),
            "services": (SERVICES, lean_service, None),
            "slices": (ENDPOINTSLICES, lean_slice, None),
            "eips": (EIPS, Eip.from_raw, None),
            "leases": (LEASES, Lease.from_raw, s.lease_namespace),
        }
        for name, (res, view, namespace) in views.items():
            self.caches[name] = WatchCache(
                self.api,
                res,
                namespace=namespace,
                view=view,
                on_change=lambda change, name=name: self._changed(name, change),
            ).start()
        deadline = time.monotonic() + sync_timeout
        for name, cache in self.caches.items():
            if not cache.wait_synced(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"speaker: the {name} watch did not sync in {sync_timeout}s")
        address = s.heartbeat_address or self._node_address()
        # Everything slow happens before we join: a data plane compiled later, inside the control
        # loop, stalls it for about a second (see FailureDetector.observed for the other half).
        self._preload_dataplane()
        self.transport = HeartbeatTransport(
            node=self.node,
            incarnation=self.incarnation,
            bind=(address, s.heartbeat_port),
            interval=s.heartbeat_interval,
            hung_after=s.hung_after,
            key=s.heartbeat_key.encode() or None,
        )
        self._resolve_interfaces()
        self.vip.resolve(self.caches["eips"].items())
        self.lease = SpeakerLease(
            self.api, namespace=s.lease_namespace, record=self._record(), duration=s.lease_duration
        ).start()
        self.transport.start()
        self._dirty.set()
        log.info(
            "speaker %s: heartbeats on %s:%d (%s pacer), incarnation %d",
            self.node,
            *self.transport.address,
            self.transport.implementation,
            self.incarnation,
        )

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, then hand over gracefully."""
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.shutdown(graceful=True)

    def shutdown(self, *, graceful: bool) -> None:
        """Withdraw, say goodbye, delete the Lease (graceful) and release everything."""
        if graceful and self.transport is not None:
            self._apply(self.core.stop(), now=time.monotonic())
        self.vip.close()  # keepalived releases its VIPs before the Lease goes
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.lease is not None:
            self.lease.stop(delete=graceful)
            self.lease = None
        for cache in self.caches.values():
            cache.stop()
        if self.responder is not None:
            with contextlib.suppress(DataplaneError):
                self.responder.close(detach=False)
            self.responder = None
        if self._preloaded is not None:
            self._preloaded.close()
            self._preloaded = None
        self.groups.close()
        self._joined.clear()
        self.neighbours.close()
        if self.probes is not None:
            self.probes.close()
        self.sender.close()
        self.events.close(timeout=1.0)

    # --- one iteration ---------------------------------------------------------------------------

    def step(self, max_wait: float = 0.05) -> None:
        """Wait for a message, a change or a deadline; react to everything pending."""
        assert self.transport is not None
        started = time.monotonic()
        cpu = time.thread_time()
        self._step_inner(max_wait)
        took = time.monotonic() - started - self._waited
        if took > self.settings.hung_after / 4:
            # A loop this slow eats into the heartbeat ring: say so before it costs the VIPs.
            # Its own CPU time tells our work from waiting for a CPU or the GIL.
            log.warning(
                "slow control-loop iteration: %.0f ms (%.0f ms CPU; %s)",
                took * 1000,
                (time.thread_time() - cpu) * 1000,
                ", ".join(f"{name} {t * 1000:.0f} ms" for name, t in self._phases),
            )

    def _step_inner(self, max_wait: float) -> None:
        assert self.transport is not None
        self._phases = []
        t0 = time.monotonic()
        now = time.monotonic()
        deadline = self.core.next_deadline()
        probe_deadline = self.probes.next_deadline() if self.probes is not None else None
        if probe_deadline is not None:
            deadline = probe_deadline if deadline is None else min(deadline, probe_deadline)
        wait = max_wait if deadline is None else min(max_wait, max(0.0, deadline - now))
        actions = Actions()
        first, early = self._wait_for_news(t0 + wait)
        self._waited = time.monotonic() - t0
        if self._dirty.is_set():
            self._dirty.clear()
            now = time.monotonic()
            actions.merge(self._recompute(now))
            self._phase("recompute", now)
        # Drain right before judging, after anything slow above: verdicts only cover silence we
        # observed (see FailureDetector.observed), so a stall of this loop is never a death.
        observed = time.monotonic()
        self.transport.drain_now()
        overflowed = self.transport.take_overflowed()
        if overflowed:
            # The kernel dropped datagrams while we were starved, the freshest ones: silence
            # up to now is not known. (Seen at 10k Services: thousands dropped, false deaths.)
            self.core.detector.blinded(observed)
            self._overflowed += overflowed
            if observed - self._overflow_logged > 10.0:
                log.warning(
                    "%d speaker datagrams dropped by a full receive buffer (this speaker is "
                    "starved of CPU): no peer counts as silent over that time",
                    self._overflowed,
                )
                self._overflowed = 0
                self._overflow_logged = observed
        self._phase("drain", observed)
        t = time.monotonic()
        pending = [*early, first]
        with contextlib.suppress(queue.Empty):
            while True:
                pending.append(self.transport.inbox.get_nowait())
        for item in pending:
            if item is not None:
                self._received += 1
                self._note_unleased(item)
                if item.message.kind is not Kind.HEARTBEAT:
                    log.debug("received %s", item.message)
                actions.merge(self.core.receive(item.message, now=item.arrived))
        self._phase("receive", t)
        if self.probes is not None and len(self.probes):
            t = time.monotonic()
            self._probed(self.probes.poll(now=t), now=t)
            self._phase("probes", t)
        t = time.monotonic()
        actions.merge(self.core.poll(now=t, observed=observed))
        self._phase("poll", t)
        if self.responder is not None:
            t = time.monotonic()
            self._conflicts(actions)
            self._phase("conflicts", t)
        t1 = time.monotonic()
        self._apply(actions, now=t1)
        self._phase("apply", t1)
        if self.core.incarnation != self.transport.incarnation:
            self.transport.set_incarnation(self.core.incarnation)
            if self.lease is not None:
                self.lease.update(self._record())
        t = time.monotonic()
        self._retry_blocked()
        if log.isEnabledFor(logging.DEBUG) and time.monotonic() - self._last_status > 1.0:
            self._last_status = time.monotonic()
            log.debug(
                "status: members=%s alive=%s dead=%s armed=%s targets=%s answering=%s "
                "received=%d rejected=%s pacer=%s dests=%s",
                sorted(self.core.membership.members()),
                sorted(self.core.membership.alive()),
                sorted(self.core.detector.dead()),
                sorted(self.core.detector.armed()),
                sorted(self.core.targets()),
                sorted(self.core.answering()),
                self._received,
                self.transport.rejected,
                self.transport.stats(),
                self.transport.destinations,
            )
        self._unstick_dead_peers()
        self._phase("retry+unstick", t)
        t2 = time.monotonic()
        self.transport.tick()
        self._phases.append(("tick", time.monotonic() - t2))
        if self.responder is not None and self.responder.gate_handle() is None:
            self.responder.refresh_gate(self.settings.detection_time)

    def _phase(self, name: str, started: float) -> None:
        """End of a phase of the iteration: note its time, and keep the heartbeats flowing.

        Progress, not a whole iteration, is what keeps the heartbeat ring topped up: on a
        starved machine (10 speakers, an apiserver and a manager on 2 CPUs in the scale
        benchmark) an iteration that needed 40 ms of CPU took 2.2 s of wall time, longer than
        ``hung_after``, and the healthy node was declared dead. A loop stuck inside one phase
        for ``hung_after`` still stops its heartbeats.
        """
        self._phases.append((name, time.monotonic() - started))
        self._keep_up()

    def _keep_up(self) -> None:
        if self.transport is not None:
            self.transport.keep_up()

    def _conflicts(self, actions: Actions) -> None:
        """What the data plane saw other hosts claim, once per VIP and one log line per claimer.

        A takeover of 1,000 VIPs that we still hold shows up as 10,000 claims (two frames per
        VIP, five bursts): handled and logged one by one they kept the loop busy for seconds.
        """
        seen = self.responder.conflicts(0.0) if self.responder is not None else []
        if not seen:
            return
        latest = {str(c.ip): c for c in seen}
        for _ in seen:
            metrics.conflict_seen("announce")
        claimed: dict[str, list[str]] = {}
        obituaries: set[tuple[str, tuple[str, ...]]] = set()
        now = time.monotonic()
        for ip, conflict in latest.items():
            claimer = owner_of_mac(self._facts.records, conflict.mac)
            who = f"{conflict.mac.hex(':')} ({claimer or 'foreign'})"
            claimed.setdefault(who, []).append(ip)
            out = self.core.conflict(ip, claimer=claimer, now=now)
            kept = []
            for o in out.send:
                if o.message.kind is Kind.OBITUARY:
                    # One obituary per claimer is enough: it refutes once, for all its VIPs.
                    if (o.message.subject, o.to) in obituaries:
                        continue
                    obituaries.add((o.message.subject, o.to))
                kept.append(o)
            out.send = kept
            actions.merge(out)
        for who, ips in claimed.items():
            log.warning(
                "%d VIP(s) claimed by %s: %s%s",
                len(ips),
                who,
                ", ".join(ips[:5]),
                ", ..." if len(ips) > 5 else "",
            )

    def _wait_for_news(self, until: float) -> tuple[Received | None, list[Received]]:
        """Block until something needs a reaction or ``until``: (that item, routine heartbeats).

        A heartbeat from a live peer at the incarnation we know changes nothing before the next
        deadline (the detector judges at deadlines, after a drain), so it does not end the wait:
        with 10 nodes heartbeats arrive 150-450 times a second, and running a whole iteration
        for each cost an idle speaker 5-9% of a CPU.
        """
        assert self.transport is not None
        early: list[Received] = []
        detector = self.core.detector
        while True:
            try:
                item = self.transport.inbox.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                return None, early
            if (
                item is None
                or self._dirty.is_set()
                or item.message.kind is not Kind.HEARTBEAT
                or detector.is_dead(item.message.sender)
                or detector.incarnation(item.message.sender) != item.message.incarnation
            ):
                return item, early
            early.append(item)

    def _unstick_dead_peers(self) -> None:
        # Peers we hold dead but still heartbeat to (a cut link, most likely): keep their
        # neighbour entries from sitting in FAILED, so the heal carries heartbeats at once.
        dead = self.core.detector.dead() & self.core.targets()
        addresses = [self._facts.addresses[p][0] for p in dead if p in self._facts.addresses]
        if addresses:
            self.neighbours.unstick(addresses, now=time.monotonic())
        elif self.neighbours.watched:
            self.neighbours.forget(())

    # --- facts -----------------------------------------------------------------------------------

    def _changed(self, cache: str, change: Change[Any]) -> None:
        if change.key and cache in self._changed_keys:
            # Look the set up under the lock: the loop swaps it for a fresh one and iterates the
            # old one unlocked (a set looked up before the swap and added to after it crashed
            # the loop with "Set changed size during iteration").
            with self._changes_lock:
                self._changed_keys[cache].add(change.key)
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        self._dirty.set()
        if self.transport is not None:
            self.transport.wake()

    def _note_unleased(self, item: Received) -> None:
        msg = item.message
        if msg.kind not in (Kind.HEARTBEAT, Kind.ALIVE) or msg.sender in self._facts.records:
            return
        if self._unleased.heard(msg.sender, item.source):
            log.info(
                "speaker %s heartbeats from %s:%d but its Lease is not in our view: a member "
                "until it is (our watch lags, or the apiserver is unreachable)",
                msg.sender,
                *item.source,
            )
            self._dirty.set()  # recompute on the next iteration

    def _recompute(self, now: float) -> Actions:
        self._event_at = self._dirty_since
        self._dirty_since = None
        self._resolve_interfaces()
        if self.vip.resolve(self.caches["eips"].items()) and self.lease is not None:
            self.lease.update(self._record())
        records: dict[str, SpeakerRecord] = {}
        leases = self.caches["leases"].items()
        self._expiry.keep_only(lease.name for lease in leases)
        observing_since = self.lease.healthy_since if self.lease is not None else None
        detector = self.core.detector
        for lease in leases:
            node = node_of_lease(lease.name)
            if node is None:
                continue
            if node != self.node and self._expiry.expired(
                lease.name,
                renew_time=lease.renew_time,
                duration=lease.duration_seconds,
                now=now,
                observing_since=observing_since,
                heard_alive=detector.incarnation(node) is not None and not detector.is_dead(node),
            ):
                continue  # gone: not renewed while we could see it, and not heartbeating
            record = parse_record(node, lease.meta.annotations)
            if isinstance(record, str):
                log.warning(record)
                continue
            records[node] = record
        records.update(self._unleased.members(records, detector))
        records[self.node] = self._record()
        if set(records) != set(self._facts.records):
            # Rare and telling: who this speaker counts as a member (the lab waits on it too).
            log.info("speaker members: %s", " ".join(sorted(records)))
        changed, removed = self._replan(records)
        plans = self.desired.plans
        self._facts = _Facts(
            plans=plans, records=records, addresses={n: r.heartbeat for n, r in records.items()}
        )
        self.vip.update(
            VipInputs(
                services=self.caches["services"].items(),
                eips=self.caches["eips"].items(),
                slices=self.caches["slices"].items(),
                nodes=self.caches["nodes"].items(),
                records=records,
            )
        )
        actions = self.core.set_nodes(node_eligibility(self.caches["nodes"].items()), now=now)
        actions.merge(
            self.core.set_members({n: r.incarnation for n, r in records.items()}, now=now)
        )
        actions.merge(
            self.core.update_vips(
                {ip: p.candidates for ip, p in changed.items()}, removed=removed, now=now
            )
        )
        # Addresses may have changed even if the targets did not.
        if actions.targets is None:
            actions.targets = self.core.targets()
        return actions

    def _replan(self, records: dict[str, SpeakerRecord]) -> tuple[dict[str, VipPlan], set[str]]:
        """Feed the objects that changed since the last recompute to ``desired``; its news."""
        with self._changes_lock:
            services, self._changed_keys["services"] = self._changed_keys["services"], set()
            slices, self._changed_keys["slices"] = self._changed_keys["slices"], set()
        for i, key in enumerate(services):
            self.desired.set_service(key, self.caches["services"].get(key))
            if i % 512 == 511:
                self._keep_up()
        for i, key in enumerate(slices):
            self.desired.set_slice(key, self.caches["slices"].get(key))
            if i % 512 == 511:
                self._keep_up()
        self.desired.set_pools(self.caches["eips"].items())
        self.desired.set_records(records)
        return self.desired.update()

    def _resolve_interfaces(self) -> None:
        eips = self.caches["eips"].items()
        layer2 = {p.name for p in layer2_pools(eips)}
        interfaces = self._resolver.resolve(e for e in eips if e.name in layer2)
        for nic in set(interfaces.values()) - set(self._macs):
            try:
                self._macs[nic] = interface_mac(nic).hex(":")
                self.sender.open(nic)
            except (DataplaneError, OSError) as exc:
                log.warning("cannot use %s: %s", nic, exc)
                interfaces = {e: n for e, n in interfaces.items() if n != nic}
        unserved = frozenset(layer2 - set(interfaces))
        if interfaces != self._interfaces or unserved != self._unserved:
            self._interfaces = interfaces
            self._unserved = unserved
            if self.lease is not None:
                self.lease.update(self._record())
        nics = tuple(sorted(set(interfaces.values())))
        if nics and nics != self._nics:
            self._reopen_responder(nics)

    def _reopen_responder(self, nics: tuple[str, ...]) -> None:
        if self.responder is not None:
            with contextlib.suppress(DataplaneError):
                self.responder.close(detach=False)
            self.responder = None
        self.responder = self._responder_factory(list(nics))
        self._nics = nics
        self._programmed = frozenset()
        self._synced = None
        metrics.set_build_info(
            dataplane=self.responder.mode,
            packet_module=packet.IMPLEMENTATION,
        )
        log.info(
            "data plane %s on %s%s",
            self.responder.mode,
            ",".join(nics),
            f" ({self.responder.reason})" if self.responder.reason else "",
        )
        handle = self.responder.gate_handle()
        if self.transport is not None:
            self.transport.set_gate(
                Gate(handle.map_fd, handle.key, self.settings.detection_time)
                if handle is not None
                else None
            )

    def _preload_dataplane(self) -> None:
        if not self._preload or not self.settings.dataplane.startswith(("auto", "xdp")):
            return
        from openelb.dataplane.xdp import preload_xdp

        started = time.monotonic()
        try:
            self._preloaded = preload_xdp(pin_root=DEFAULT_PIN_ROOT, instance=self.instance)
        except DataplaneError as exc:
            log.info("XDP program not loaded ahead (the data plane will say why): %s", exc)
            return
        log.info("XDP program loaded ahead in %.0f ms", (time.monotonic() - started) * 1000)

    def _open_responder(self, nics: list[str]) -> Responder:
        responder = open_responder(
            nics,
            mode=self.settings.dataplane,  # type: ignore[arg-type]
            instance=self.instance,
            program=self._preloaded,
        )
        if responder.mode.startswith("xdp"):
            self._preloaded = None  # the responder owns it now
        return responder

    def _record(self) -> SpeakerRecord:
        address = self.transport.address if self.transport is not None else ("0.0.0.0", 0)
        return SpeakerRecord(
            node=self.node,
            heartbeat=address,
            incarnation=self.core.incarnation,
            interfaces={**self.vip.interfaces(), **self._interfaces},
            macs={nic: mac for nic, mac in self._macs.items() if nic in self._interfaces.values()},
            unserved=self._unserved,
        )

    def _service(self, key: str) -> Service | None:
        cache = self.caches.get("services")
        return cache.get(key) if cache is not None else None

    def _node_address(self) -> str:
        node = self.caches["nodes"].get(self.node)
        if node is not None:
            for kind in ("InternalIP", "ExternalIP"):
                found = node.addresses_of(kind)
                if found:
                    return str(found[0])
        raise ValueError(
            f"node {self.node} has no InternalIP: set --heartbeat-address for the heartbeats"
        )

    # --- actions ---------------------------------------------------------------------------------

    def _apply(self, actions: Actions, *, now: float) -> None:
        # A conflict block belongs to one tenure: a VIP given up and taken over later (failover)
        # is never held back by what a probe found back then.
        for ip in actions.lost:
            self._unblock(ip)
        for gain in actions.gained:
            if gain.failover_from is not None:
                self._unblock(gain.ip)
        fresh: list[str] = []
        _log_vips("now answering for", [g.ip for g in actions.gained if g.failover_from is None])
        _log_vips(
            "now answering for",
            [g.ip for g in actions.gained if g.failover_from is not None],
            " (takeover)",
        )
        for gain in actions.gained:
            event_at = self._event_at if self._event_at is not None else now
            self._first_announce[gain.ip] = (gain.failover_from, event_at)
            if gain.fresh:
                fresh.append(gain.ip)
        self._start_probes(fresh, now=now)
        if actions.program is not None or self._reprogram:
            self._program()
        announce: dict[str, list[str]] = {}
        for ip in actions.announce:
            nic = self._nic_of(ip)
            if nic is not None and ip not in self._blocked and ip in self._programmed:
                announce.setdefault(nic, []).append(ip)
        for nic, ips in announce.items():
            try:
                self.sender.announce(nic, ips)
            except DataplaneError as exc:
                log.warning("announce on %s failed: %s", nic, exc)
                continue
            sent_at = time.monotonic()
            for ip in ips:
                self.announced[ip] = self.announced.get(ip, 0) + 1
                family = "IPv6" if ":" in ip else "IPv4"
                metrics.announcement_sent(family=family, interface=nic)
                first = self._first_announce.pop(ip, None)
                if first is not None:
                    self._first_announced(ip, nic, first, sent_at)
        for out in actions.send:
            names: Iterable[str] = (
                [n for n in self._facts.addresses if n != self.node]
                if out.to == EVERYONE
                else out.to
            )
            addrs = [self._facts.addresses[n] for n in names if n in self._facts.addresses]
            if self.transport is not None and addrs:
                self.transport.send(out.message, addrs)
        if actions.targets is not None and self.transport is not None:
            self.transport.set_targets(resolve_targets(actions.targets, self._facts.addresses))
        _log_vips("no longer answering for", actions.lost)
        for death in actions.deaths:
            metrics.peer_declared_dead(death.cause.value)
            log.info(
                "peer %s declared dead (%s, last heard %.0f ms before)",
                death.peer,
                death.cause.value,
                (death.at - death.last_heard) * 1000,
            )
        metrics.vips_owned(len(self._programmed))

    def _first_announced(
        self, ip: str, nic: str, first: tuple[float | None, float | None], sent_at: float
    ) -> None:
        failover_from, event_at = first
        if failover_from is not None:
            metrics.failover_observed(sent_at - failover_from)
        elif event_at is not None:
            metrics.announce_latency(sent_at - event_at)
        plan = self._facts.plans.get(ip)
        if plan is None:
            return
        warning = None
        with contextlib.suppress(ValueError, OSError):
            warning = warning_for(nic, ip, self._networks(nic))
        for key in plan.services:
            svc = self.caches["services"].get(key)
            if svc is None:
                continue
            self.events.event(
                svc, NORMAL, "Announced", f"{ip} announced by node {self.node} on {nic}"
            )
            if warning:
                self.events.event(svc, WARNING, "SubnetMismatch", warning)

    def _networks(self, nic: str) -> list[Network] | None:
        # Read once per NIC per few seconds: hundreds of first announcements share one dump.
        now = time.monotonic()
        cached = self._subnets.get(nic)
        if cached is None or now - cached[0] > _SUBNETS_TTL:
            cached = (now, nic_networks(nic))
            self._subnets[nic] = cached
        return cached[1]

    def _nic_of(self, ip: str) -> str | None:
        plan = self._facts.plans.get(ip)
        return self._interfaces.get(plan.eip) if plan is not None else None

    def _program(self) -> None:
        if self.responder is None:
            return
        self._reprogram = False
        probing = self.probes.pending() if self.probes is not None else frozenset()
        wanted = self.core.answering() - self._blocked.keys() - probing
        entries: dict[str, tuple[str, VipEntry]] = {}
        for ip in sorted(wanted):
            nic = self._nic_of(ip)
            if nic is None or nic not in self._macs:
                continue
            entries[ip] = self._entry(ip, nic)
        # Programming runs on every change of what we answer: with 1,000 VIPs, re-syncing an
        # unchanged set (and re-reading it from the data plane) was most of a small change's cost.
        programmed = frozenset(e for _, e in entries.values())
        if programmed != self._synced:
            self.responder.sync(programmed)
            self._synced = programmed
        self._programmed = frozenset(entries)
        self._sync_groups({(nic, ip) for ip, (nic, _) in entries.items()})

    def _entry(self, ip: str, nic: str) -> tuple[str, VipEntry]:
        """The data plane entry of ``ip`` on ``nic`` (cached; the NIC's index is re-read every
        few seconds, so a recreated interface is picked up)."""
        now = time.monotonic()
        index = self._ifindex.get(nic)
        if index is None or now - index[0] > _SUBNETS_TTL:
            index = self._ifindex[nic] = (now, interface_index(nic))
        mac = self._macs[nic]
        cached = self._entries.get(ip)
        if cached is not None and cached[0] == nic:
            entry = cached[1]
            if entry.ifindex == index[1] and entry.mac.hex(":") == mac:
                return cached
        if len(self._entries) > 2 * len(self._programmed) + 64:
            self._entries = {k: v for k, v in self._entries.items() if k in self._programmed}
        entry = VipEntry(index[1], ipaddress.ip_address(ip), bytes.fromhex(mac.replace(":", "")))
        self._entries[ip] = (nic, entry)
        return self._entries[ip]

    def _sync_groups(self, wanted: set[tuple[str, str]]) -> None:
        """Hold the solicited-node group of every IPv6 VIP we answer, on its NIC: a NIC with a
        multicast filter (and a snooping switch) would not pass its Neighbor Solicitations."""
        wanted = {(nic, ip) for nic, ip in wanted if ":" in ip}
        for nic, ip in sorted(wanted - self._joined):
            try:
                self.groups.join(nic, ip)
            except DataplaneError as exc:
                log.warning("cannot join the solicited-node group of %s on %s: %s", ip, nic, exc)
                continue
            self._joined.add((nic, ip))
        for nic, ip in sorted(self._joined - wanted):
            self._joined.discard((nic, ip))
            try:
                self.groups.leave(nic, ip)
            except DataplaneError as exc:
                log.warning("cannot leave the solicited-node group of %s on %s: %s", ip, nic, exc)

    def _start_probes(self, ips: list[str], *, now: float) -> set[str]:
        """Send the conflict probes of ``ips`` in one batch; until decided they are not answered
        (the data plane leaves them out) nor announced. The VIPs now being probed."""
        started: set[str] = set()
        if self.probes is None or not ips:
            return started
        by_nic: dict[str, list[str]] = {}
        for ip in ips:
            nic = self._nic_of(ip)
            if nic is not None:
                by_nic.setdefault(nic, []).append(ip)
        for nic, batch in by_nic.items():
            try:
                self.probes.start(nic, batch, now=now)
            except DataplaneError as exc:
                log.warning(
                    "conflict probes for %d VIPs on %s failed (announcing anyway): %s",
                    len(batch),
                    nic,
                    exc,
                )
                continue
            self._reprogram = True
            started.update(batch)
            log.info("probing %d VIPs on %s for address conflicts", len(batch), nic)
        return started

    def _probed(self, results: list[ProbeResult], *, now: float) -> None:
        """Decided probes: free (or claimed by a peer speaker) ones are answered and announced
        from this step on, in one batch; ones a foreign host claims are blocked and reported."""
        for result in results:
            self._reprogram = True
            ip, nic, claimer = result.ip, result.iface, result.claimer
            if claimer is not None:
                speaker = owner_of_mac(self._facts.records, claimer)
                if speaker is None:
                    self._block(ip, nic, claimer)
                    continue
                # Another speaker's data plane answered: it held the VIP for a moment (a
                # start-up race, a healed partition) and withdraws when it sees our claim, or
                # has already. Speakers agree on ownership by rank, so this is no foreign
                # conflict: announce now; its RELEASED message or its next GARP (our conflict
                # signal) makes us announce again.
                log.info(
                    "%s answered on %s by speaker %s (%s), which held it for a moment: announcing",
                    ip,
                    nic,
                    speaker,
                    claimer.hex(":"),
                )
            if ip in self.core.answering():
                # A fresh burst: the one started when we gained it went out while we probed.
                self.core.scheduler.gain(ip, now=now)

    def _block(self, ip: str, nic: str, claimer: bytes) -> None:
        metrics.conflict_seen("probe")
        self._blocked[ip] = time.monotonic() + self.settings.probe_retry
        self._blocked_by[ip] = claimer
        message = (
            f"{ip} is already in use on {nic} by {claimer.hex(':')}: not announced, "
            f"retrying in {self.settings.probe_retry:.0f}s"
        )
        log.warning(message)
        plan = self._facts.plans.get(ip)
        for key in plan.services if plan is not None else ():
            svc = self.caches["services"].get(key)
            if svc is not None:
                self.events.event(svc, WARNING, "AddressInUse", message)

    def _unblock(self, ip: str) -> None:
        """``ip`` starts a new tenure (lost, or taken over): no block, no probe pending."""
        if self._blocked.pop(ip, None) is not None:
            self._reprogram = True
        self._blocked_by.pop(ip, None)
        if self.probes is not None and ip in self.probes:
            self.probes.cancel(ip)
            self._reprogram = True

    def _retry_blocked(self) -> None:
        if not self._blocked:
            return
        now = time.monotonic()
        retry: list[str] = []
        for ip, at in list(self._blocked.items()):
            claimer = self._blocked_by.get(ip)
            # The "foreign" MAC may turn out to be a speaker whose Lease we had not seen yet
            # (two speakers starting together): then it was no conflict, go on at once.
            peer = claimer is not None and owner_of_mac(self._facts.records, claimer) is not None
            if at > now and not peer:
                continue
            self._unblock(ip)
            if peer and ip in self.core.answering():
                log.info("%s: the MAC that answered the probe is a speaker's: announcing", ip)
                self.core.scheduler.gain(ip, now=now)
            elif ip in self.core.answering():
                retry.append(ip)
        # Probed again, off the loop like any new VIP; announced once nobody claims them.
        probing = self._start_probes(retry, now=now)
        for ip in retry:
            if ip not in probing:
                self.core.scheduler.gain(ip, now=now)
        if self._reprogram:
            self._program()

    # --- introspection ---------------------------------------------------------------------------

    def answering(self) -> frozenset[str]:
        """VIPs programmed into the data plane right now."""
        return self._programmed

    def blocked(self) -> Mapping[str, float]:
        return dict(self._blocked)
