"""Settings, as dataclasses: one per component, a docstring under each field.

Values come from command-line flags (which may also be read from ``OPENELB_*`` environment
variables); the defaults are the ones the design's targets are measured with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# --- kube: client, watches, leader election ------------------------------------------------------


@dataclass(frozen=True)
class KubeSettings:
    """How openelb talks to the apiserver (``openelb.kube``)."""

    kubeconfig: str | None = None
    """Path of a kubeconfig (``--kubeconfig``); unset: ``$KUBECONFIG``, in-cluster, default."""
    context: str | None = None
    """Context in the kubeconfig (``--context``); unset: its current context."""
    request_timeout: float = 10.0
    """Seconds any single request may take (watches: per read, beyond their own timeout)."""
    watch_timeout_seconds: int = 300
    """Server-side lifetime of one watch request; the cache re-watches from its RV after it."""
    backoff_initial: float = 0.2
    """First delay after a failed list/watch, seconds (doubles per failure, jittered)."""
    backoff_max: float = 30.0
    """Cap of that delay, seconds."""

    def __post_init__(self) -> None:
        if self.request_timeout <= 0 or self.watch_timeout_seconds <= 0:
            raise ValueError("request_timeout and watch_timeout_seconds must be positive")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("backoff needs 0 < backoff_initial <= backoff_max")


@dataclass(frozen=True)
class LeaderElectionSettings:
    """The manager's Lease leader election (``openelb.kube.leases.LeaseElector``)."""

    enabled: bool = True
    """Elect a leader (``--leader-elect``); off only for a single manager replica."""
    lease_name: str = "openelb-manager"
    """Name of the Lease object."""
    lease_namespace: str = "openelb-system"
    """Namespace of the Lease object."""
    identity: str = ""
    """This candidate's identity; empty: hostname + a random suffix."""
    lease_duration: float = 15.0
    """Seconds a lease is valid after its last renewal; others wait that long after a crash."""
    renew_deadline: float = 10.0
    """The leader steps down when it could not renew for this long (< lease_duration, so it
    stops before anyone else may take over)."""
    retry_period: float = 2.0
    """Seconds between acquire/renew attempts (jittered)."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry_period < renew_deadline < lease_duration "
                f"(got {self.retry_period}, {self.renew_deadline}, {self.lease_duration})"
            )


# --- manager -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IpamSettings:
    """IPAM settings of the manager (pool logic itself lives in ``openelb.ipam``)."""

    router_id_first: int = 1
    """Lowest VRRP virtual router ID given to VIP-mode Eips (``--router-id-first``)."""
    router_id_last: int = 255
    """Highest one (``--router-id-last``); give two clusters on one segment disjoint ranges."""
    router_id_reserved: tuple[int, ...] = ()
    """IDs never given out, e.g. those of other VRRP routers on the segment
    (``--router-id-reserved 1,2,50``)."""

    def __post_init__(self) -> None:
        if not 1 <= self.router_id_first <= self.router_id_last <= 255:
            raise ValueError(
                f"router ID range {self.router_id_first}-{self.router_id_last} must lie within "
                "1-255 with first <= last"
            )
        bad = [v for v in self.router_id_reserved if not 1 <= v <= 255]
        if bad:
            raise ValueError(f"reserved router IDs {bad} are outside 1-255")

    @staticmethod
    def parse_ids(text: str) -> tuple[int, ...]:
        """``"1,2,10-12"`` to ``(1, 2, 10, 11, 12)``; ValueError naming the bad part."""
        ids: list[int] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            low, sep, high = part.partition("-")
            try:
                first, last = int(low), int(high if sep else low)
            except ValueError:
                raise ValueError(f"router ID '{part}' is not a number or a range a-b") from None
            if first > last:
                raise ValueError(f"router ID range '{part}' is reversed")
            ids.extend(range(first, last + 1))
        return tuple(ids)


@dataclass(frozen=True)
class ManagerSettings:
    """The manager process (``openelb manager``): API access, election, batching, metrics."""

    kube: KubeSettings = KubeSettings()
    """How to reach the apiserver."""
    leader: LeaderElectionSettings = LeaderElectionSettings()
    """The Lease the managers compete for; only the leader writes."""
    ipam: IpamSettings = IpamSettings()
    """Router ID range for VIP mode."""
    batch_size: int = 500
    """Most keys reconciled in one batch (one Eip status write per changed pool per batch)."""
    write_concurrency: int = 8
    """Service writes of a batch in flight at once (``--write-concurrency``)."""
    metrics_port: int = 9443
    """Port of the Prometheus endpoint (``--metrics-port``); 0 disables it."""
    metrics_host: str = "0.0.0.0"
    """Address the Prometheus endpoint binds (``--metrics-host``)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size {self.batch_size} must be at least 1")
        if self.write_concurrency < 1:
            raise ValueError(f"write concurrency {self.write_concurrency} must be at least 1")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics port {self.metrics_port} is not a TCP port")


# --- dataplane -----------------------------------------------------------------------------------


# dataplane, XDP side

DATAPLANE_MODES = ("auto", "xdp-native", "xdp-generic", "afpacket")


@dataclass(frozen=True)
class DataplaneSettings:
    """How the speaker answers ARP/NDP for its VIPs (``openelb.dataplane.responder``)."""

    mode: str = "auto"
    """``auto`` (native XDP, else generic XDP, else AF_PACKET), or one of those forced
    (``--dataplane``)."""
    pin_root: Path = Path("/sys/fs/bpf/openelb")
    """bpffs folder for the pinned program and maps (``--bpf-pin-root``); a bpf filesystem is
    mounted at /sys/fs/bpf when none is."""
    instance: str = "default"
    """Sub-folder of ``pin_root`` for this speaker: a restarted speaker with the same instance
    re-uses the pinned maps and never stops answering (``--bpf-instance``)."""
    max_vips: int = 16384
    """Capacity of each address family's VIP map (``--max-vips``)."""
    gate_max_age: float = 0.5
    """Seconds the data plane keeps answering after the speaker's last liveness stamp; a hung
    speaker goes silent after this (``--gate-max-age``). Keep it near the failure detection
    time, so a hung owner stops answering about when its backup takes over."""
    detach_on_exit: bool = False
    """Remove the XDP program and its pins when the speaker exits (``--detach-on-exit``). Off by
    default: a restart then keeps answering, and the gate silences a speaker that is gone."""

    def __post_init__(self) -> None:
        if self.mode not in DATAPLANE_MODES:
            raise ValueError(
                f"data plane mode {self.mode!r} is not one of {', '.join(DATAPLANE_MODES)}"
            )
        if not self.instance or "/" in self.instance or self.instance in (".", ".."):
            raise ValueError(f"bad data plane instance name {self.instance!r}")
        if not 1 <= self.max_vips <= 1 << 20:
            raise ValueError(f"max VIPs {self.max_vips} must be within 1..{1 << 20}")
        if not 0.01 <= self.gate_max_age <= 3600:
            raise ValueError(f"gate max age {self.gate_max_age}s must be within 0.01..3600 s")


# dataplane, packet side: AF_PACKET fallback responder and announce sender


@dataclass(frozen=True)
class AfPacketSettings:
    """The userspace fallback responder (used only where XDP cannot load)."""

    batch: int = 64
    """Frames received (recvmmsg) and answered (sendmmsg) per system call
    (``--afpacket-batch``)."""
    poll_interval: float = 0.05
    """How long the responder thread sleeps in poll() before checking for shutdown, seconds;
    requests wake it at once, so this only bounds how fast it stops."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= 1024:
            raise ValueError(f"afpacket batch must be 1-1024 frames, got {self.batch}")
        if not 0 < self.poll_interval <= 1:
            raise ValueError(f"afpacket poll interval must be in (0, 1] s: {self.poll_interval}")


@dataclass(frozen=True)
class ProbeSettings:
    """Address conflict detection before a newly assigned VIP is first announced (RFC 5227
    for IPv4, a DAD solicitation for IPv6); never on failover."""

    enabled: bool = True
    """Probe new VIPs at all (``--probe/--no-probe``)."""
    wait: float = 0.03
    """How long to listen for a claim, seconds (``--probe-wait``): LAN hosts answer in well
    under a millisecond, and this delays the first announcement of a new VIP."""
    count: int = 1
    """Probes sent, spread over ``wait`` (``--probe-count``)."""

    def __post_init__(self) -> None:
        if not 0 < self.wait <= 5:
            raise ValueError(f"probe wait must be in (0, 5] s, got {self.wait}")
        if not 1 <= self.count <= 10:
            raise ValueError(f"probe count must be 1-10, got {self.count}")


# --- speaker -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerSettings:
    """Settings of ``openelb speaker`` (Layer 2 mode): detection, announcing, conflicts."""

    node: str = ""
    """This node's name (``--node``, normally ``$NODE_NAME`` from the downward API)."""
    heartbeat_address: str = ""
    """IP the heartbeat socket binds to and advertises (``--heartbeat-address``; default: the
    node's InternalIP)."""
    heartbeat_port: int = 7947
    """UDP port of the heartbeat socket (``--heartbeat-port``; 0 = any, for tests)."""
    heartbeat_interval: float = 0.02
    """Seconds between heartbeats (``--heartbeat-interval``)."""
    heartbeat_misses: int = 5
    """Silent intervals before a peer is declared dead (``--heartbeat-misses``): detection time
    is interval x misses, 100 ms by default."""
    heartbeat_key: str = ""
    """Shared secret authenticating heartbeats (``--heartbeat-key``, HMAC-SHA256); empty = off."""
    hung_after: float = 2.0
    """A control loop stuck this long stops the heartbeats and loses its VIPs (``--hung-after``)."""
    ring_fanout: int = 3
    """Ring successors each speaker heartbeats besides its VIPs' backups (``--ring-fanout``)."""
    announce_burst: tuple[float, ...] = (0.0, 0.1, 0.5, 1.0, 2.0)
    """Offsets (s) of the announcements after gaining a VIP (``--announce-burst 0,0.1,0.5``)."""
    announce_refresh: float | None = None
    """Re-announce owned VIPs this often (s), below switch FDB ageing; None = off."""
    probe_wait: float = 0.03
    """RFC 5227 conflict probe wait (s) before announcing a newly assigned VIP; 0 = no probe."""
    probe_count: int = 1
    """Probes sent per newly assigned VIP."""
    probe_retry: float = 30.0
    """Seconds before a VIP found in use by another host is probed again."""
    lease_namespace: str = "openelb-system"
    """Namespace of the speakers' Leases (``--lease-namespace``)."""
    lease_duration: float = 15.0
    """Seconds a speaker Lease lasts without renewal; a speaker gone this long is forgotten."""
    dataplane: str = "auto"
    """``auto`` | ``xdp-native`` | ``xdp-generic`` | ``afpacket`` (``--dataplane``)."""

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0:
            raise ValueError(f"heartbeat interval must be > 0 s, got {self.heartbeat_interval}")
        if self.heartbeat_misses < 2:
            raise ValueError(
                f"heartbeat misses must be >= 2 (one late packet is not a death), "
                f"got {self.heartbeat_misses}"
            )
        if self.hung_after < 2 * self.heartbeat_interval:
            raise ValueError("hung_after must cover at least two heartbeat intervals")
        if not 0 <= self.heartbeat_port < 65536:
            raise ValueError(f"heartbeat port {self.heartbeat_port} is out of range")
        if self.probe_wait < 0 or self.probe_count < 1:
            raise ValueError("probe wait must be >= 0 s and probe count >= 1")

    @property
    def detection_time(self) -> float:
        """Seconds of silence before a peer is declared dead."""
        return self.heartbeat_interval * self.heartbeat_misses

    @staticmethod
    def parse_burst(text: str) -> tuple[float, ...]:
        """``"0,0.1,0.5"`` to ``(0.0, 0.1, 0.5)``; ValueError naming the bad part."""
        out = []
        for part in (p.strip() for p in text.split(",") if p.strip()):
            try:
                out.append(float(part))
            except ValueError:
                raise ValueError(f"announce offset '{part}' is not a number") from None
        return tuple(out)


# --- keepalived (VIP mode) -----------------------------------------------------------------------


@dataclass(frozen=True)
class KeepalivedSettings:
    """How the speaker renders, runs and supervises keepalived in VIP mode."""

    binary: str = "keepalived"
    """The keepalived executable (``--keepalived``)."""
    advert_int: float = 0.1
    """VRRP advertisement interval in seconds (``--vrrp-advert-int``). A backup takes over after
    about 3 intervals plus a skew, so 0.1 s gives ~0.3 s failover; VRRPv3 is what allows a
    sub-second value (VRRPv2 rounds it up to 1 s)."""
    priority_top: int = 254
    """Priority of an instance's preferred master (``--vrrp-priority``); others get less.
    High values matter: a backup waits ``3 * advert_int`` plus a skew of
    ``(256 - priority) / 256 * advert_int`` before taking over, so 244 instead of, say, 140
    takes over ~40 ms sooner at the default interval."""
    priority_step: int = 10
    """Priority difference between consecutive nodes in an instance's ranking."""
    unicast: bool = True
    """Send adverts to the eligible nodes' addresses (``--vrrp-unicast``); False = multicast
    (224.0.0.18 / ff02::12), for networks where that is allowed and nodes come and go often."""
    auth_pass: str = ""
    """VRRP password (``--vrrp-auth-pass``, at most 8 characters). VRRPv3 has no
    authentication, so instances with a password run VRRPv2, which needs a whole-second
    ``advert_int`` (failover then takes ~3 s): prefer a separate network segment."""
    preempt: bool = True
    """A node with a higher priority takes an instance back when it returns; this keeps VIPs
    spread over nodes at the cost of a second short gap."""
    garp_master_repeat: int = 3
    """Gratuitous ARPs / unsolicited NAs keepalived sends on becoming master."""
    garp_master_delay: int = 1
    """Seconds after becoming master until the second round of them (0 = none)."""
    max_vips_per_advert: int = 20
    """VIPs carried in the VRRP adverts of one instance; further ones are managed but not
    advertised (``virtual_ipaddress_excluded``), as keepalived advises beyond 20."""
    runtime_dir: str = "/run/openelb/keepalived"
    """Config, pid files, notify FIFO and the record of held VIPs (``--keepalived-dir``)."""
    validate_timeout: float = 10.0
    """Seconds ``keepalived -t`` may take before a config is declared invalid."""
    stop_timeout: float = 5.0
    """Seconds keepalived gets to release its VIPs on stop before it is killed."""
    restart_backoff_first: float = 0.2
    """Delay before restarting a keepalived that died; doubled on each further death."""
    restart_backoff_max: float = 10.0
    """Cap of that delay."""
    restart_backoff_reset: float = 30.0
    """A keepalived that ran this long without dying resets the delay to the first value."""

    def __post_init__(self) -> None:
        if not 0.01 <= self.advert_int <= 40.95:
            raise ValueError(f"advert_int {self.advert_int}s must lie within 0.01 .. 40.95 s")
        if self.auth_pass and (self.advert_int < 1 or self.advert_int != int(self.advert_int)):
            raise ValueError(
                "VRRP authentication needs VRRPv2, whose advert_int is whole seconds: set "
                f"advert_int to 1 or more (got {self.advert_int}) or drop the password"
            )
        if len(self.auth_pass) > 8:
            raise ValueError("the VRRP password is at most 8 characters")
        if not 2 <= self.priority_top <= 254:
            raise ValueError(f"priority_top {self.priority_top} must lie within 2 .. 254")
        if self.priority_step < 1:
            raise ValueError("priority_step must be at least 1")
        if self.max_vips_per_advert < 1:
            raise ValueError("max_vips_per_advert must be at least 1")
        if not 0 < self.restart_backoff_first <= self.restart_backoff_max:
            raise ValueError("restart backoff must satisfy 0 < first <= max")
