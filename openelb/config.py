"""Settings, as dataclasses: one per component, a docstring under each field.

Values come from command-line flags (which may also be read from ``OPENELB_*`` environment
variables); the defaults are the ones the design's targets are measured with.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- kube: client, watches, leader election ------------------------------------------------------


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
    """The manager process: where it runs, how it elects a leader, how it batches work."""

    lease_name: str = "openelb-manager"
    """Lease the managers compete for (``--lease-name``)."""
    lease_namespace: str = "openelb-system"
    """Namespace of that Lease (``--lease-namespace``; in-cluster: the pod's namespace)."""
    identity: str = ""
    """This manager's identity in the Lease; empty means ``<hostname>-<pid>``."""
    lease_duration: float = 15.0
    """Seconds a Lease is valid without renewal (a standby takes over after this)."""
    renew_deadline: float = 10.0
    """Seconds the leader keeps trying to renew before it stops leading (and writing)."""
    retry_period: float = 2.0
    """Seconds between renewals / acquisition attempts."""
    batch_size: int = 500
    """Most keys reconciled in one batch (one Eip status write per batch and pool)."""
    metrics_port: int = 9443
    """Port of the Prometheus endpoint; 0 disables it."""
    ipam: IpamSettings = IpamSettings()
    """Router ID range for VIP mode."""

    def __post_init__(self) -> None:
        if not 0 < self.renew_deadline < self.lease_duration:
            raise ValueError(
                f"renew deadline {self.renew_deadline}s must be positive and shorter than the "
                f"lease duration {self.lease_duration}s (or two managers could lead at once)"
            )
        if self.retry_period <= 0 or self.retry_period >= self.renew_deadline:
            raise ValueError(
                f"retry period {self.retry_period}s must be positive and shorter than the "
                f"renew deadline {self.renew_deadline}s"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch size {self.batch_size} must be at least 1")


# --- dataplane -----------------------------------------------------------------------------------


# --- speaker -------------------------------------------------------------------------------------


# --- keepalived (VIP mode) -----------------------------------------------------------------------
