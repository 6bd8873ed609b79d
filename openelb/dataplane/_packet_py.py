"""Pure-Python twin of the compiled packet module (``ext/_packet.pyx``), same API.

Used when the extension is not built or ``OPENELB_NO_EXTENSIONS=1`` forces it; the test suite
runs every packet test against both implementations.
"""

from __future__ import annotations

IMPLEMENTATION = "python"

_BROADCAST = b"\xff" * 6
_ARP_HEADER = b"\x00\x01\x08\x00\x06\x04"  # htype Ethernet, ptype IPv4, hlen 6, plen 4


def build_garp(mac: bytes, ip: bytes, reply: bool = False) -> bytes:
    """Gratuitous ARP for ``ip`` (4 bytes) from ``mac`` (6 bytes); see the compiled twin."""
    if len(mac) != 6:
        raise ValueError(f"mac must be 6 bytes, got {len(mac)}")
    if len(ip) != 4:
        raise ValueError(f"ip must be 4 bytes (IPv4), got {len(ip)}")
    op = b"\x00\x02" if reply else b"\x00\x01"
    target_mac = mac if reply else b"\x00" * 6
    return _BROADCAST + mac + b"\x08\x06" + _ARP_HEADER + op + mac + ip + target_mac + ip
