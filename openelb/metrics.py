"""Every Prometheus metric openelb exports, in one place.

Names follow ``openelb_<subsystem>_<name>_<unit>``: counters end in ``_total``, base units
(``_seconds``, ``_bytes``), bounded labels only (pool, interface, reason, node — never a client
IP). Subsystems add their metrics in their own section below with intent-named helpers, so call
sites read ``metrics.garp_sent(interface)`` rather than poking collectors directly.

Kernel-owned counters (the XDP program's per-CPU maps) are exposed by a custom collector that
reads them at scrape time (see the data plane section).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Info

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


# --- dataplane -----------------------------------------------------------------------------------


# --- speaker: membership, failure detection, announcing ------------------------------------------


# --- vrrp (VIP mode, keepalived) -----------------------------------------------------------------

__all__ = ["BUILD_INFO", "registry", "set_build_info"]
