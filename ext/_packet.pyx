# cython: language_level=3
"""Compiled packet module (``openelb.dataplane._packet``).

Builds and parses ARP and NDP frames for the Layer 2 announcer and the AF_PACKET fallback
responder. ``openelb/dataplane/_packet_py.py`` is its pure-Python twin with the same API; the
facade ``openelb.dataplane.packet`` picks one.
"""

from libc.string cimport memcpy, memset

IMPLEMENTATION = "compiled"

cdef enum:
    ETH_HLEN = 14
    ARP_LEN = 28
    GARP_FRAME_LEN = 42  # Ethernet + ARP, before the NIC pads it to 60


def build_garp(bytes mac not None, bytes ip not None, bint reply=False):
    """Gratuitous ARP for ``ip`` (4 bytes) from ``mac`` (6 bytes).

    Request form (default): broadcast, sender IP = target IP = ``ip``, target MAC zero. Linux
    applies it to an existing neighbour entry in any state, whatever its locktime.
    Reply form: target MAC = sender MAC (a reply whose target MAC is ff:ff.. is ignored within
    the 1 s locktime), still sent to broadcast.
    """
    if len(mac) != 6:
        raise ValueError(f"mac must be 6 bytes, got {len(mac)}")
    if len(ip) != 4:
        raise ValueError(f"ip must be 4 bytes (IPv4), got {len(ip)}")
    cdef bytearray out = bytearray(GARP_FRAME_LEN)
    cdef unsigned char *p = out
    cdef const unsigned char *m = mac
    cdef const unsigned char *a = ip
    memset(p, 0xFF, 6)             # Ethernet destination: broadcast
    memcpy(p + 6, m, 6)            # Ethernet source: our MAC
    p[12] = 0x08; p[13] = 0x06     # EtherType ARP
    p[14] = 0x00; p[15] = 0x01     # htype Ethernet
    p[16] = 0x08; p[17] = 0x00     # ptype IPv4
    p[18] = 6; p[19] = 4           # hlen, plen
    p[20] = 0x00; p[21] = 0x02 if reply else 0x01
    memcpy(p + 22, m, 6)           # sender hardware address
    memcpy(p + 28, a, 4)           # sender protocol address = VIP
    if reply:
        memcpy(p + 32, m, 6)       # target hardware address = sender's (see docstring)
    else:
        memset(p + 32, 0, 6)
    memcpy(p + 38, a, 4)           # target protocol address = VIP
    return bytes(out)
