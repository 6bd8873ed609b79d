"""Every Prometheus metric openelb exports, in one place.

Names follow ``openelb_<subsystem>_<name>_<unit>``: counters end in ``_total``, base units
(``_seconds``, ``_bytes``), bounded labels only (pool, interface, reason, node — never a client
IP). Subsystems add their metrics in their own section below with intent-named helpers, so call
sites read ``metrics.garp_sent(interface)`` rather than poking collectors directly.

Kernel-owned counters (the XDP program's per-CPU maps) are exposed by a custom collector that
reads them at scrape time (see the data plane section).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Info

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


# --- dataplane -----------------------------------------------------------------------------------


# --- speaker: membership, failure detection, announcing ------------------------------------------


# --- vrrp (VIP mode, keepalived) -----------------------------------------------------------------

__all__ = [
    "BUILD_INFO",
    "IPAM_ALLOCATIONS",
    "IPAM_FAILURES",
    "IPAM_POOL_FREE",
    "IPAM_POOL_SIZE",
    "IPAM_POOL_USED",
    "IPAM_RELEASES",
    "ipam_allocated",
    "ipam_allocation_failed",
    "ipam_pool_observed",
    "ipam_pool_removed",
    "ipam_released",
    "registry",
    "set_build_info",
]
