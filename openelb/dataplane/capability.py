"""Can this host run the XDP data plane? A truthful answer, with the reason when it cannot.

The check goes all the way: bcc must import, kernel headers must be where bcc looks, and a tiny
XDP program must compile and pass the verifier. Anything short of that is reported as the reason
the speaker would fall back to the AF_PACKET responder.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

_PROBE_PROGRAM = r"""
int openelb_probe(struct xdp_md *ctx) { return XDP_PASS; }
"""


@dataclass(frozen=True)
class XdpSupport:
    """Result of probing the host for XDP via bcc."""

    usable: bool
    """True when an XDP program compiled with bcc and loaded into the kernel."""
    reason: str
    """Why XDP is not usable (empty when it is)."""
    bcc_version: str = ""
    """Version of the importable bcc package, if any."""


def kernel_headers_dir() -> Path:
    """Where bcc looks for kernel headers for the running kernel."""
    return Path("/lib/modules") / platform.release() / "build"


def probe_xdp() -> XdpSupport:
    """Compile and load a trivial XDP program; say why not when that fails."""
    if os.geteuid() != 0:
        return XdpSupport(False, "not root: loading BPF programs needs CAP_BPF/CAP_NET_ADMIN")
    try:
        import bcc
    except ImportError as exc:
        return XdpSupport(
            False, f"bcc is not importable ({exc}); `make setup` installs python3-bpfcc"
        )
    version = str(getattr(bcc, "__version__", "unknown"))
    headers = kernel_headers_dir()
    if not headers.exists():
        return XdpSupport(
            False,
            f"no kernel headers at {headers}; `make setup` links Debian's linux-headers",
            version,
        )
    try:
        prog = bcc.BPF(text=_PROBE_PROGRAM.encode())
        prog.load_func(b"openelb_probe", bcc.BPF.XDP)
        prog.cleanup()
    except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception for compile/load errors
        return XdpSupport(False, f"bcc could not compile/load an XDP program: {exc}", version)
    return XdpSupport(True, "", version)
