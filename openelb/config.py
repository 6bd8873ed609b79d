"""Settings, as dataclasses: one per component, a docstring under each field.

Values come from command-line flags (which may also be read from ``OPENELB_*`` environment
variables); the defaults are the ones the design's targets are measured with.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# --- keepalived (VIP mode) -----------------------------------------------------------------------
