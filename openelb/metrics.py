"""Every Prometheus metric openelb exports, in one place.

Names follow ``openelb_<subsystem>_<name>_<unit>``: counters end in ``_total``, base units
(``_seconds``, ``_bytes``), bounded labels only (pool, interface, reason, node — never a client
IP). Subsystems add their metrics in their own section below with intent-named helpers, so call
sites read ``metrics.garp_sent(interface)`` rather than poking collectors directly.

Kernel-owned counters (the XDP program's per-CPU maps) are exposed by a custom collector that
reads them at scrape time (see the data plane section).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, Metric

from openelb import __version__

registry: CollectorRegistry = REGISTRY
"""The registry the metrics endpoints serve. Tests build their own where they need isolation."""

# --- build ---------------------------------------------------------------------------------------

BUILD_INFO = Info(
    "openelb_build",
    "Version and the data plane/packet module in use (xdp-native | xdp-generic | afpacket).",
    registry=registry,
)
BUILD_INFO.info({"version": __version__})


def set_build_info(*, dataplane: str, packet_module: str) -> None:
    """Record which data plane and packet module this process ended up using."""
    BUILD_INFO.info(
        {"version": __version__, "dataplane": dataplane, "packet_module": packet_module}
    )


# --- kube: leader election, watches --------------------------------------------------------------

KUBE_LEADER = Gauge(
    "openelb_kube_leader",
    "1 while this process holds the leader Lease, else 0.",
    ["lease"],
    registry=registry,
)
KUBE_LEADER_TRANSITIONS = Counter(
    "openelb_kube_leader_transitions_total",
    "Times this process started or stopped leading, by what happened.",
    ["lease", "transition"],
    registry=registry,
)
KUBE_WATCH_RELISTS = Counter(
    "openelb_kube_watch_relists_total",
    "Full lists a watch cache made (start, 410 Gone, errors), by resource.",
    ["resource"],
    registry=registry,
)
KUBE_WATCH_ERRORS = Counter(
    "openelb_kube_watch_errors_total",
    "List/watch failures a cache backed off from, by resource and reason.",
    ["resource", "reason"],
    registry=registry,
)
KUBE_CACHE_OBJECTS = Gauge(
    "openelb_kube_cache_objects",
    "Objects held in a watch cache, by resource.",
    ["resource"],
    registry=registry,
)
KUBE_EVENTS = Counter(
    "openelb_kube_events_total",
    "Kubernetes Events recorded, by outcome (created, aggregated, dropped, failed).",
    ["outcome"],
    registry=registry,
)
KUBE_STATUS_CONFLICTS = Counter(
    "openelb_kube_status_conflicts_total",
    "Status writes that hit a 409 and were re-read and re-applied, by resource.",
    ["resource"],
    registry=registry,
)


def kube_leader_changed(lease: str, *, leading: bool, transition: str) -> None:
    """Record a start (``acquired``) or stop (``released``, ``lost``, ``renew-failed``)."""
    KUBE_LEADER.labels(lease).set(1 if leading else 0)
    KUBE_LEADER_TRANSITIONS.labels(lease, transition).inc()


def kube_watch_relisted(resource: str, *, objects: int) -> None:
    KUBE_WATCH_RELISTS.labels(resource).inc()
    KUBE_CACHE_OBJECTS.labels(resource).set(objects)


def kube_watch_failed(resource: str, reason: str) -> None:
    KUBE_WATCH_ERRORS.labels(resource, reason).inc()


def kube_cache_size(resource: str, objects: int) -> None:
    KUBE_CACHE_OBJECTS.labels(resource).set(objects)


def kube_event(outcome: str) -> None:
    KUBE_EVENTS.labels(outcome).inc()


def kube_status_conflict(resource: str) -> None:
    KUBE_STATUS_CONFLICTS.labels(resource).inc()


# --- ipam / manager ------------------------------------------------------------------------------

IPAM_POOL_SIZE = Gauge(
    "openelb_ipam_pool_size_addresses",
    "Addresses in an Eip pool, exclusions included (a float: exact up to 2**53).",
    ["pool"],
    registry=registry,
)
IPAM_POOL_USED = Gauge(
    "openelb_ipam_pool_used_addresses",
    "Addresses of an Eip pool held by Services (shared addresses count once).",
    ["pool"],
    registry=registry,
)
IPAM_POOL_FREE = Gauge(
    "openelb_ipam_pool_free_addresses",
    "Addresses an Eip pool can still hand out (neither held nor excluded).",
    ["pool"],
    registry=registry,
)
IPAM_ALLOCATIONS = Counter(
    "openelb_ipam_allocations_total",
    "Addresses handed out to Services, by pool and family.",
    ["pool", "family"],
    registry=registry,
)
IPAM_RELEASES = Counter(
    "openelb_ipam_releases_total",
    "Addresses Services gave back, by family.",
    ["family"],
    registry=registry,
)
IPAM_FAILURES = Counter(
    "openelb_ipam_allocation_failures_total",
    "Allocation requests answered with no IP, by reason (openelb.ipam.NoIPReason values).",
    ["reason"],
    registry=registry,
)

_NO_POOL = "none"
"""Pool label for an address outside every pool (kept across a pool deletion)."""


def ipam_pool_observed(pool: str, *, size: int, used: int, free: int) -> None:
    """Record a pool's size and usage after its status was computed."""
    IPAM_POOL_SIZE.labels(pool).set(float(size))
    IPAM_POOL_USED.labels(pool).set(used)
    IPAM_POOL_FREE.labels(pool).set(float(free))


def ipam_pool_removed(pool: str) -> None:
    """Forget a deleted pool's series."""
    for gauge in (IPAM_POOL_SIZE, IPAM_POOL_USED, IPAM_POOL_FREE):
        gauge.remove(pool)  # a no-op for a pool never observed


def ipam_allocated(*, pool: str | None, family: str) -> None:
    """Count one address handed out (family ``IPv4``/``IPv6``)."""
    IPAM_ALLOCATIONS.labels(pool or _NO_POOL, family).inc()


def ipam_released(*, family: str, count: int = 1) -> None:
    """Count addresses given back."""
    IPAM_RELEASES.labels(family).inc(count)


def ipam_allocation_failed(reason: str) -> None:
    """Count one request answered with no IP (``NoIPReason.value``)."""
    IPAM_FAILURES.labels(reason).inc()


# --- manager: reconcile loop ----------------------------------------------------------------------

MANAGER_BATCH_DURATION = Histogram(
    "openelb_manager_reconcile_duration_seconds",
    "Time to reconcile one batch of keys: decide and write (Eip and Service statuses).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=registry,
)
MANAGER_RECONCILED = Counter(
    "openelb_manager_services_reconciled_total",
    "Service reconciles run by the leading manager.",
    registry=registry,
)
MANAGER_WRITE_ERRORS = Counter(
    "openelb_manager_reconcile_errors_total",
    "Writes that failed and were retried, by kind (conflict | error).",
    ["kind"],
    registry=registry,
)
MANAGER_MANAGED = Gauge(
    "openelb_manager_services_managed",
    "Services holding at least one address from the manager.",
    registry=registry,
)


MANAGER_UNASSIGNED = Gauge(
    "openelb_manager_services_unassigned",
    "Services of openelb without (all) their addresses, by reason (openelb.ipam.NoIPReason).",
    ["reason"],
    registry=registry,
)


def manager_batch_done(*, seconds: float, services: int) -> None:
    """Record one reconcile batch."""
    MANAGER_BATCH_DURATION.observe(seconds)
    MANAGER_RECONCILED.inc(services)


def manager_write_failed(kind: str) -> None:
    """Count a failed write (``conflict`` or ``error``)."""
    MANAGER_WRITE_ERRORS.labels(kind).inc()


def manager_managed(count: int) -> None:
    """Record how many Services the manager allocates for."""
    MANAGER_MANAGED.set(count)


def manager_unassigned(counts: Mapping[str, int]) -> None:
    """Record how many Services wait for an address, per reason (every reason, zeros too)."""
    for reason, count in counts.items():
        MANAGER_UNASSIGNED.labels(reason).set(count)


# --- dataplane -----------------------------------------------------------------------------------


# dataplane, XDP side: the program's per-CPU counters, read at scrape time


class XdpCounters:
    """Custom collector: the responder's per-reason packet counters, read at scrape time.

    The counts live in the kernel (the XDP program's per-CPU map); copying them into a Counter
    on a timer would lag and double the bookkeeping, so a scrape calls ``read``
    (``XdpResponder.counters``) and yields what it returns (``_total`` is added on exposition).
    """

    NAME = "openelb_dataplane_xdp_packets"

    def __init__(self, read: Callable[[], Mapping[str, int]], *, mode: str) -> None:
        self._read = read
        self._mode = mode

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            self.NAME,
            "ARP/NDP frames the XDP program handled, by attach mode and reason "
            "(arp_reply, probe_reply, ns_reply, dad_reply, miss, conflict, gate_closed, ...).",
            labels=["mode", "reason"],
        )

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            counts = self._read()
        except OSError:  # the responder was closed under us: report nothing rather than fail
            counts = {}
        for reason, value in counts.items():
            family.add_metric([self._mode, reason], float(value))
        yield family


def register_xdp_counters(
    read: Callable[[], Mapping[str, int]],
    *,
    mode: str,
    to: CollectorRegistry | None = None,
) -> XdpCounters:
    """Expose a responder's counters (``read`` = ``responder.counters``); returns the collector
    so the caller can ``unregister`` it when the responder closes."""
    collector = XdpCounters(read, mode=mode)
    (to or registry).register(collector)
    return collector


# dataplane, packet side: AF_PACKET fallback responder, announce sender, packet module

DATAPLANE_PACKET_MODULE = Gauge(
    "openelb_dataplane_packet_module",
    "1 for the packet module implementation in use (compiled | python).",
    ["implementation"],
    registry=registry,
)
DATAPLANE_AFPACKET_PACKETS = Counter(
    "openelb_dataplane_afpacket_packets_total",
    "ARP/NDP frames the AF_PACKET fallback responder handled, by interface and reason "
    "(arp_reply, probe_reply, ns_reply, dad_reply, miss, conflict, malformed, ...).",
    ["interface", "reason"],
    registry=registry,
)
DATAPLANE_FRAMES_SENT = Counter(
    "openelb_dataplane_frames_sent_total",
    "Frames the announce sender put on the wire, by interface and kind "
    "(garp_request, garp_reply, unsolicited_na, arp_probe, dad_ns).",
    ["interface", "kind"],
    registry=registry,
)
DATAPLANE_SEND_ERRORS = Counter(
    "openelb_dataplane_send_errors_total",
    "Announce/probe sends that failed, by interface.",
    ["interface"],
    registry=registry,
)


def dataplane_packet_module(implementation: str) -> None:
    """Record which packet module (compiled | python) this process uses."""
    for other in ("compiled", "python"):
        DATAPLANE_PACKET_MODULE.labels(other).set(1 if other == implementation else 0)


def afpacket_counted(interface: str, reason: str, count: int) -> None:
    """Add the AF_PACKET responder's frames of one reason (a delta since the last report)."""
    DATAPLANE_AFPACKET_PACKETS.labels(interface, reason).inc(count)


def frames_sent(interface: str, kind: str, count: int = 1) -> None:
    """Count announce/probe frames that left (``kind``: garp_request, unsolicited_na, ...)."""
    if count:
        DATAPLANE_FRAMES_SENT.labels(interface, kind).inc(count)


def send_failed(interface: str) -> None:
    DATAPLANE_SEND_ERRORS.labels(interface).inc()


# --- speaker: membership, failure detection, announcing ------------------------------------------

# Heartbeat timing is in milliseconds territory: buckets from 0.1 ms to 1 s.
_HEARTBEAT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)

SPEAKER_HEARTBEATS_SENT = Counter(
    "openelb_speaker_heartbeats_sent_total",
    "Heartbeat datagrams sent (one per destination).",
    registry=registry,
)
SPEAKER_HEARTBEAT_SEND_ERRORS = Counter(
    "openelb_speaker_heartbeat_send_errors_total",
    "Heartbeat datagrams the kernel refused to send.",
    registry=registry,
)
SPEAKER_HEARTBEATS_STARVED = Counter(
    "openelb_speaker_heartbeats_starved_total",
    "Heartbeat periods skipped because the control loop did not refill the ring (hung speaker).",
    registry=registry,
)
SPEAKER_HEARTBEATS_RECEIVED = Counter(
    "openelb_speaker_heartbeats_received_total",
    "Heartbeats received from peers.",
    registry=registry,
)
SPEAKER_HEARTBEATS_MISSED = Counter(
    "openelb_speaker_heartbeats_missed_total",
    "Heartbeats from peers that never arrived (gaps in their sequence numbers).",
    registry=registry,
)
SPEAKER_DATAGRAMS_REJECTED = Counter(
    "openelb_speaker_datagrams_rejected_total",
    "Datagrams on the heartbeat port that were not accepted, by reason.",
    ["reason"],
    registry=registry,
)
SPEAKER_HEARTBEAT_SEND_LATENESS = Histogram(
    "openelb_speaker_heartbeat_send_lateness_seconds",
    "How late the heartbeat thread woke against its schedule (sender jitter).",
    buckets=_HEARTBEAT_BUCKETS,
    registry=registry,
)
SPEAKER_HEARTBEAT_ARRIVAL_JITTER = Histogram(
    "openelb_speaker_heartbeat_arrival_jitter_seconds",
    "Deviation of a peer's heartbeat inter-arrival time from the interval (kernel timestamps).",
    buckets=_HEARTBEAT_BUCKETS,
    registry=registry,
)
SPEAKER_PEER_DEATHS = Counter(
    "openelb_speaker_peer_deaths_total",
    "Peers declared dead, by cause (silence | goodbye | obituary).",
    ["cause"],
    registry=registry,
)
SPEAKER_VIPS_OWNED = Gauge(
    "openelb_speaker_vips_owned",
    "VIPs this speaker owns and answers for.",
    registry=registry,
)
SPEAKER_ANNOUNCEMENTS = Counter(
    "openelb_speaker_announcements_sent_total",
    "Gratuitous ARPs (IPv4) and unsolicited NAs (IPv6) sent, by family and interface.",
    ["family", "interface"],
    registry=registry,
)
SPEAKER_ANNOUNCE_LATENCY = Histogram(
    "openelb_speaker_announce_latency_seconds",
    "From the Service/IP event reaching the speaker to its first announcement on the wire.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=registry,
)
SPEAKER_FAILOVER = Histogram(
    "openelb_speaker_failover_seconds",
    "From the previous owner's last heartbeat to our takeover announcement.",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 3.0),
    registry=registry,
)
SPEAKER_CONFLICTS = Counter(
    "openelb_speaker_conflicts_total",
    "Another host claimed a VIP we own or probe, by kind (probe | announce).",
    ["kind"],
    registry=registry,
)


def heartbeat_pacer_observed(
    *, sent: int, send_errors: int, starved: int, lateness_ns: list[int]
) -> None:
    """Fold the heartbeat thread's counters (deltas) and lateness samples in."""
    if sent:
        SPEAKER_HEARTBEATS_SENT.inc(sent)
    if send_errors:
        SPEAKER_HEARTBEAT_SEND_ERRORS.inc(send_errors)
    if starved:
        SPEAKER_HEARTBEATS_STARVED.inc(starved)
    for late in lateness_ns:
        SPEAKER_HEARTBEAT_SEND_LATENESS.observe(max(late, 0) / 1e9)


def heartbeat_received(*, jitter: float | None, missed: int) -> None:
    SPEAKER_HEARTBEATS_RECEIVED.inc()
    if jitter is not None:
        SPEAKER_HEARTBEAT_ARRIVAL_JITTER.observe(abs(jitter))
    if missed > 0:
        SPEAKER_HEARTBEATS_MISSED.inc(missed)


def datagram_rejected(reason: str) -> None:
    SPEAKER_DATAGRAMS_REJECTED.labels(reason).inc()


SPEAKER_DATAGRAMS_OVERFLOWED = Counter(
    "openelb_speaker_datagrams_overflowed_total",
    "Speaker datagrams the kernel dropped because the heartbeat socket's receive buffer was "
    "full (the receiver was starved); silence verdicts skip the time they cover.",
    registry=registry,
)


def datagrams_overflowed(count: int) -> None:
    SPEAKER_DATAGRAMS_OVERFLOWED.inc(count)


def peer_declared_dead(cause: str) -> None:
    SPEAKER_PEER_DEATHS.labels(cause).inc()


def vips_owned(count: int) -> None:
    SPEAKER_VIPS_OWNED.set(count)


def announcement_sent(*, family: str, interface: str, count: int = 1) -> None:
    SPEAKER_ANNOUNCEMENTS.labels(family, interface).inc(count)


def announce_latency(seconds: float) -> None:
    SPEAKER_ANNOUNCE_LATENCY.observe(seconds)


def failover_observed(seconds: float) -> None:
    SPEAKER_FAILOVER.observe(seconds)


def conflict_seen(kind: str) -> None:
    SPEAKER_CONFLICTS.labels(kind).inc()


# --- vrrp (VIP mode, keepalived) -----------------------------------------------------------------

VRRP_STATES = ("INIT", "BACKUP", "MASTER", "FAULT", "STOP")
"""Values of the ``state`` label (keepalived's instance states)."""

VRRP_STATE = Gauge(
    "openelb_vrrp_state",
    "1 for the state a keepalived VRRP instance on this node is in, 0 for the others.",
    ["pool", "vrrp_instance", "state"],
    registry=registry,
)
VRRP_TRANSITIONS = Counter(
    "openelb_vrrp_transitions_total",
    "VRRP state transitions reported by keepalived, by the state entered.",
    ["pool", "vrrp_instance", "state"],
    registry=registry,
)
VRRP_FAILOVER = Histogram(
    "openelb_vrrp_failover_duration_seconds",
    "On the node taking over: from the last advert of the previous master to becoming master.",
    ["pool"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0),
    registry=registry,
)
VRRP_VIPS_WAITING = Gauge(
    "openelb_vrrp_vips_waiting",
    "VIPs of VIP-mode Eips this node leaves out of keepalived's config, by reason.",
    ["reason"],
    registry=registry,
)
KEEPALIVED_UP = Gauge(
    "openelb_keepalived_up",
    "1 while the supervised keepalived runs.",
    registry=registry,
)
KEEPALIVED_RESTARTS = Counter(
    "openelb_keepalived_restarts_total",
    "keepalived processes restarted after dying, by how they died (exit code or signal).",
    ["reason"],
    registry=registry,
)
KEEPALIVED_RELOADS = Counter(
    "openelb_keepalived_reloads_total",
    "Configuration changes applied to a running keepalived with SIGHUP.",
    registry=registry,
)
KEEPALIVED_CONFIG_REJECTED = Counter(
    "openelb_keepalived_config_rejected_total",
    "Rendered configurations refused by `keepalived -t` (the previous one stayed in use).",
    registry=registry,
)
KEEPALIVED_VIPS_CLEANED = Counter(
    "openelb_keepalived_vips_cleaned_total",
    "VIPs removed from NICs after keepalived died or before it started (left-overs).",
    registry=registry,
)


def vrrp_state_entered(*, pool: str, instance: str, state: str) -> None:
    """An instance entered ``state``: count it and make it the current one."""
    VRRP_TRANSITIONS.labels(pool, instance, state).inc()
    for value in VRRP_STATES:
        VRRP_STATE.labels(pool, instance, value).set(1 if value == state else 0)


def vrrp_instance_removed(*, pool: str, instance: str) -> None:
    """Forget an instance that is no longer configured."""
    for value in VRRP_STATES:
        for metric in (VRRP_STATE, VRRP_TRANSITIONS):
            with contextlib.suppress(KeyError):
                metric.remove(pool, instance, value)


def vrrp_failover_observed(*, pool: str, seconds: float) -> None:
    VRRP_FAILOVER.labels(pool).observe(seconds)


_vrrp_waiting_reasons: set[str] = set()


def vrrp_vips_waiting(counts: Mapping[str, int]) -> None:
    """The VIPs left out now, per reason (reasons not in ``counts`` drop to 0)."""
    for reason in _vrrp_waiting_reasons - set(counts):
        VRRP_VIPS_WAITING.labels(reason).set(0)
    _vrrp_waiting_reasons.update(counts)
    for reason, count in counts.items():
        VRRP_VIPS_WAITING.labels(reason).set(count)


def keepalived_running(up: bool) -> None:
    KEEPALIVED_UP.set(1 if up else 0)


def keepalived_restarted(reason: str) -> None:
    KEEPALIVED_RESTARTS.labels(reason).inc()


def keepalived_reloaded() -> None:
    KEEPALIVED_RELOADS.inc()


def keepalived_config_rejected() -> None:
    KEEPALIVED_CONFIG_REJECTED.inc()


def keepalived_vips_cleaned(count: int) -> None:
    KEEPALIVED_VIPS_CLEANED.inc(count)


# --- speaker: ownership recompute (bench: read by benchmarks/control_plane_scale.py) -------------

SPEAKER_OWNERSHIP_RECOMPUTE = Histogram(
    "openelb_speaker_ownership_recompute_seconds",
    "Time the speaker spent re-ranking its VIPs after the set of live speakers changed.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=registry,
)


SPEAKER_OWNERSHIP_RECOMPUTE_CPU = Histogram(
    "openelb_speaker_ownership_recompute_cpu_seconds",
    "CPU time of the same re-ranking (the thread's own): the work, without the wait for a CPU "
    "that the wall time includes on a busy node.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=registry,
)


def ownership_recomputed(seconds: float, *, cpu_seconds: float | None = None) -> None:
    """A membership change (a node lost, back, or excluded) was turned into VIP placements."""
    SPEAKER_OWNERSHIP_RECOMPUTE.observe(seconds)
    if cpu_seconds is not None:
        SPEAKER_OWNERSHIP_RECOMPUTE_CPU.observe(cpu_seconds)


__all__ = [
    "BUILD_INFO",
    "DATAPLANE_AFPACKET_PACKETS",
    "DATAPLANE_FRAMES_SENT",
    "DATAPLANE_PACKET_MODULE",
    "DATAPLANE_SEND_ERRORS",
    "IPAM_ALLOCATIONS",
    "IPAM_FAILURES",
    "IPAM_POOL_FREE",
    "IPAM_POOL_SIZE",
    "IPAM_POOL_USED",
    "IPAM_RELEASES",
    # vrrp / keepalived
    "KEEPALIVED_CONFIG_REJECTED",
    "KEEPALIVED_RELOADS",
    "KEEPALIVED_RESTARTS",
    "KEEPALIVED_UP",
    "KEEPALIVED_VIPS_CLEANED",
    "KUBE_CACHE_OBJECTS",
    "KUBE_EVENTS",
    "KUBE_LEADER",
    "KUBE_LEADER_TRANSITIONS",
    "KUBE_STATUS_CONFLICTS",
    "KUBE_WATCH_ERRORS",
    "KUBE_WATCH_RELISTS",
    "MANAGER_BATCH_DURATION",
    "MANAGER_MANAGED",
    "MANAGER_RECONCILED",
    "MANAGER_UNASSIGNED",
    "MANAGER_WRITE_ERRORS",
    "VRRP_FAILOVER",
    "VRRP_STATE",
    "VRRP_TRANSITIONS",
    "VRRP_VIPS_WAITING",
    "XdpCounters",
    "afpacket_counted",
    "dataplane_packet_module",
    "frames_sent",
    "ipam_allocated",
    "ipam_allocation_failed",
    "ipam_pool_observed",
    "ipam_pool_removed",
    "ipam_released",
    "keepalived_config_rejected",
    "keepalived_reloaded",
    "keepalived_restarted",
    "keepalived_running",
    "keepalived_vips_cleaned",
    "kube_cache_size",
    "kube_event",
    "kube_leader_changed",
    "kube_status_conflict",
    "kube_watch_failed",
    "kube_watch_relisted",
    "manager_batch_done",
    "manager_managed",
    "manager_unassigned",
    "manager_write_failed",
    "ownership_recomputed",
    "register_xdp_counters",
    "registry",
    "send_failed",
    "set_build_info",
    "vrrp_failover_observed",
    "vrrp_instance_removed",
    "vrrp_state_entered",
    "vrrp_vips_waiting",
]
