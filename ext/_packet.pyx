# cython: language_level=3
"""Compiled packet module (``openelb.dataplane._packet``).

Builds and parses ARP and NDP frames for the Layer 2 announcer and runs the AF_PACKET fallback
responder's hot loop (recvmmsg, decide, sendmmsg on preallocated buffers, no per-packet buffer
acquisition). ``openelb/dataplane/_packet_py.py`` is its pure-Python twin with the same API and
the same bytes; the facade ``openelb.dataplane.packet`` picks one. The docstrings of the twin
describe each function; the comments here explain the C-level choices.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy, memset

from openelb.dataplane.frames import ArpFrame, NsFrame, Reason, claimed_address

IMPLEMENTATION = "compiled"

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>" nogil:
    struct msghdr:
        void *msg_name
        unsigned int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    struct timespec:
        pass
    int recvmmsg(int fd, mmsghdr *vmessages, unsigned int vlen, int flags, timespec *tmo)
    int sendmmsg(int fd, mmsghdr *vmessages, unsigned int vlen, int flags)
    int MSG_DONTWAIT

cdef enum:
    ETH_HLEN = 14
    ARP_LEN = 28
    GARP_FRAME_LEN = 42  # Ethernet + ARP, before the NIC pads it to 60
    NA_ICMP_LEN = 32     # NA header 24 + target link-layer option 8
    NS_ICMP_LEN = 24
    NS_ICMP_MAX = 72     # 24 + 6 options of 8, the longest NS the XDP program checks
    MAX_FRAME = 2048
    MAX_VLAN = 2
    MAX_OPTIONS = 32     # bounds the NDP option walk like the XDP program's loop

    R_ARP_REPLY = 0
    R_PROBE_REPLY = 1
    R_NS_REPLY = 2
    R_DAD_REPLY = 3
    R_MISS = 4
    R_CONFLICT = 5
    R_MALFORMED = 6
    R_INVALID = 7
    R_NOT_FOR_US = 8
    R_NOT_REQUEST = 9
    R_GATE_CLOSED = 10
    R_TOO_MANY_VLANS = 11
    R_PASS = 12
    REASON_COUNT = 13
    MAX_CONFLICTS = 1024

cdef const unsigned char *ARP_HDR = b"\x00\x01\x08\x00\x06\x04"
cdef const unsigned char *SNM_PREFIX = b"\xff\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\xff"
cdef const unsigned char *ALL_NODES = b"\xff\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
cdef const unsigned char *ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
cdef unsigned char ZERO16[16]
memset(ZERO16, 0, 16)


cdef inline void _check(bytes mac, bytes ip, int ip_len) except *:
    if len(mac) != 6:
        raise ValueError(f"mac must be 6 bytes, got {len(mac)}")
    if len(ip) != ip_len:
        family = "IPv4" if ip_len == 4 else "IPv6"
        raise ValueError(f"ip must be {ip_len} bytes ({family}), got {len(ip)}")


# --- checksums and writers (no Python objects: usable without the GIL) ---------------------------

cdef inline unsigned int _sum16(const unsigned char *p, Py_ssize_t n, unsigned int s) noexcept nogil:
    cdef Py_ssize_t i = 0
    while i + 1 < n:
        s += (p[i] << 8) | p[i + 1]
        i += 2
    if i < n:
        s += p[i] << 8
    return s


cdef inline unsigned short _fold(unsigned int s) noexcept nogil:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return <unsigned short>(~s & 0xFFFF)


cdef Py_ssize_t _write_ipv6_na(unsigned char *p, const unsigned char *mac,
                               const unsigned char *target, const unsigned char *dst,
                               unsigned char flags) noexcept nogil:
    """IPv6 header + NA with TLLA at ``p``; returns the bytes written (72)."""
    cdef unsigned char *icmp = p + 40
    cdef unsigned int s
    p[0] = 0x60; p[1] = 0; p[2] = 0; p[3] = 0
    p[4] = 0; p[5] = NA_ICMP_LEN
    p[6] = 58; p[7] = 255
    memcpy(p + 8, target, 16)
    memcpy(p + 24, dst, 16)
    icmp[0] = 136; icmp[1] = 0; icmp[2] = 0; icmp[3] = 0
    icmp[4] = flags; icmp[5] = 0; icmp[6] = 0; icmp[7] = 0
    memcpy(icmp + 8, target, 16)
    icmp[24] = 2; icmp[25] = 1
    memcpy(icmp + 26, mac, 6)
    s = _sum16(p + 8, 32, 0) + NA_ICMP_LEN + 58
    s = _sum16(icmp, NA_ICMP_LEN, s)
    s = _fold(s)
    icmp[2] = s >> 8; icmp[3] = s & 0xFF
    return 40 + NA_ICMP_LEN


cdef inline Py_ssize_t _write_garp(unsigned char *p, const unsigned char *mac,
                                   const unsigned char *ip, bint reply) noexcept nogil:
    memset(p, 0xFF, 6)             # Ethernet destination: broadcast
    memcpy(p + 6, mac, 6)          # Ethernet source: our MAC
    p[12] = 0x08; p[13] = 0x06     # EtherType ARP
    memcpy(p + 14, ARP_HDR, 6)
    p[20] = 0x00; p[21] = 0x02 if reply else 0x01
    memcpy(p + 22, mac, 6)         # sender hardware address
    memcpy(p + 28, ip, 4)          # sender protocol address = VIP
    if reply:
        memcpy(p + 32, mac, 6)     # target MAC = sender MAC, never ff:ff.. (locktime)
    else:
        memset(p + 32, 0, 6)
    memcpy(p + 38, ip, 4)          # target protocol address = VIP
    return GARP_FRAME_LEN


cdef inline Py_ssize_t _write_unsolicited_na(unsigned char *p, const unsigned char *mac,
                                             const unsigned char *ip) noexcept nogil:
    memcpy(p, ALL_NODES_MAC, 6)
    memcpy(p + 6, mac, 6)
    p[12] = 0x86; p[13] = 0xDD
    return ETH_HLEN + _write_ipv6_na(p + ETH_HLEN, mac, ip, ALL_NODES, 0x20)


# --- builders --------------------------------------------------------------------------------------

def build_garp(bytes mac not None, bytes ip not None, bint reply=False):
    _check(mac, ip, 4)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, GARP_FRAME_LEN)
    _write_garp(<unsigned char *>PyBytes_AS_STRING(out), mac, ip, reply)
    return out


def build_arp_probe(bytes mac not None, bytes ip not None):
    _check(mac, ip, 4)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, GARP_FRAME_LEN)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    _write_garp(p, mac, ip, False)
    memset(p + 28, 0, 4)           # sender IP 0.0.0.0: RFC 5227 probe
    return out


def build_arp_reply(*, bytes mac not None, bytes ip not None, bytes dst_mac not None,
                    bytes dst_ip not None):
    _check(mac, ip, 4)
    _check(dst_mac, dst_ip, 4)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, GARP_FRAME_LEN)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    _write_garp(p, mac, ip, True)
    memcpy(p, <const unsigned char *>dst_mac, 6)
    memcpy(p + 32, <const unsigned char *>dst_mac, 6)
    memcpy(p + 38, <const unsigned char *>dst_ip, 4)
    return out


def build_na(*, bytes mac not None, bytes ip not None, bytes dst_mac not None,
             bytes dst_ip not None, bint solicited=True):
    _check(mac, ip, 16)
    _check(dst_mac, dst_ip, 16)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ETH_HLEN + 40 + NA_ICMP_LEN)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    memcpy(p, <const unsigned char *>dst_mac, 6)
    memcpy(p + 6, <const unsigned char *>mac, 6)
    p[12] = 0x86; p[13] = 0xDD
    _write_ipv6_na(p + ETH_HLEN, mac, ip, dst_ip, 0x60 if solicited else 0x20)
    return out


def build_unsolicited_na(bytes mac not None, bytes ip not None):
    _check(mac, ip, 16)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ETH_HLEN + 40 + NA_ICMP_LEN)
    _write_unsolicited_na(<unsigned char *>PyBytes_AS_STRING(out), mac, ip)
    return out


def build_dad_ns(bytes mac not None, bytes ip not None):
    _check(mac, ip, 16)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ETH_HLEN + 40 + NS_ICMP_LEN)
    cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
    cdef const unsigned char *a = ip
    cdef unsigned char *v6 = p + ETH_HLEN
    cdef unsigned char *icmp = v6 + 40
    cdef unsigned int s
    p[0] = 0x33; p[1] = 0x33; p[2] = 0xFF
    memcpy(p + 3, a + 13, 3)
    memcpy(p + 6, <const unsigned char *>mac, 6)
    p[12] = 0x86; p[13] = 0xDD
    v6[0] = 0x60; v6[1] = 0; v6[2] = 0; v6[3] = 0
    v6[4] = 0; v6[5] = NS_ICMP_LEN; v6[6] = 58; v6[7] = 255
    memset(v6 + 8, 0, 16)
    memcpy(v6 + 24, SNM_PREFIX, 13)
    memcpy(v6 + 37, a + 13, 3)
    memset(icmp, 0, 8)
    icmp[0] = 135
    memcpy(icmp + 8, a, 16)
    s = _fold(_sum16(icmp, NS_ICMP_LEN, _sum16(v6 + 8, 32, 0) + NS_ICMP_LEN + 58))
    icmp[2] = s >> 8; icmp[3] = s & 0xFF
    return out


def build_garp_batch(bytes mac not None, ips, bint reply=False):
    cdef bytes ip
    return [build_garp(mac, ip, reply) for ip in ips]


def build_unsolicited_na_batch(bytes mac not None, ips):
    cdef bytes ip
    return [build_unsolicited_na(mac, ip) for ip in ips]


# --- parsing --------------------------------------------------------------------------------------

cdef inline int _l2(const unsigned char *f, Py_ssize_t n, int *ethertype, int *tags) noexcept nogil:
    """Offset of the L3 header (VLAN tags walked), or -1 when truncated."""
    cdef int off = ETH_HLEN
    cdef int et
    if n < ETH_HLEN:
        return -1
    et = (f[12] << 8) | f[13]
    tags[0] = 0
    while (et == 0x8100 or et == 0x88A8) and tags[0] < MAX_VLAN:
        if n < off + 4:
            return -1
        et = (f[off + 2] << 8) | f[off + 3]
        off += 4
        tags[0] += 1
    ethertype[0] = et
    return off


cdef inline int _walk_options(const unsigned char *f, Py_ssize_t start, Py_ssize_t end,
                              Py_ssize_t *lladdr) noexcept nogil:
    """1 when all NDP options are well formed (``lladdr`` = offset of the SLLA or -1)."""
    cdef int count = 0
    cdef Py_ssize_t length
    lladdr[0] = -1
    while start < end:
        count += 1
        if count > MAX_OPTIONS or start + 2 > end:
            return 0
        length = f[start + 1] * 8
        if length == 0 or start + length > end:
            return 0
        if f[start] == 1:
            lladdr[0] = start + 2
        start += length
    return 1


cdef tuple _tags(const unsigned char *f, int ntags):
    return tuple([((f[14 + 4 * i] << 8) | f[15 + 4 * i]) for i in range(ntags)])


cdef inline bytes _b(const unsigned char *p, Py_ssize_t n):
    return PyBytes_FromStringAndSize(<const char *>p, n)


def parse_arp(const unsigned char[:] frame not None):
    cdef Py_ssize_t n = frame.shape[0]
    if n == 0:
        return None
    cdef const unsigned char *f = &frame[0]
    cdef int et, ntags
    cdef int o = _l2(f, n, &et, &ntags)
    if o < 0 or et != 0x0806 or n < o + ARP_LEN or memcmp(f + o, ARP_HDR, 6) != 0:
        return None
    return ArpFrame(_b(f, 6), _b(f + 6, 6), _tags(f, ntags), (f[o + 6] << 8) | f[o + 7],
                    _b(f + o + 8, 6), _b(f + o + 14, 4), _b(f + o + 18, 6), _b(f + o + 24, 4))


def parse_ns(const unsigned char[:] frame not None):
    cdef Py_ssize_t n = frame.shape[0]
    if n == 0:
        return None
    cdef const unsigned char *f = &frame[0]
    cdef int et, ntags
    cdef int o = _l2(f, n, &et, &ntags)
    cdef Py_ssize_t plen, icmp, lladdr
    if o < 0 or et != 0x86DD or n < o + 41 or f[o + 6] != 58 or f[o + 40] != 135:
        return None
    icmp = o + 40
    plen = (f[o + 4] << 8) | f[o + 5]
    if plen < NS_ICMP_LEN or (plen & 7) or plen > NS_ICMP_MAX or n < icmp + plen:
        return None
    if not _walk_options(f, icmp + 24, icmp + plen, &lladdr):
        return None
    return NsFrame(_b(f, 6), _b(f + 6, 6), _tags(f, ntags), _b(f + o + 8, 16),
                   _b(f + o + 24, 16), f[o + 7], f[icmp + 1], _b(f + icmp + 8, 16),
                   None if lladdr < 0 else _b(f + lladdr, 6))


# --- the decision ---------------------------------------------------------------------------------

cdef inline const unsigned char *_lookup(dict owned, const unsigned char *ip, Py_ssize_t n):
    # One small bytes object per lookup: the table is a plain dict the speaker can replace
    # atomically; a C hash would save ~40 ns per frame, noise next to the syscalls.
    cdef bytes key = PyBytes_FromStringAndSize(<const char *>ip, n)
    cdef PyObject *value = PyDict_GetItem(owned, key)
    if value == NULL:
        return NULL
    if len(<object>value) != 6:
        return NULL
    return <const unsigned char *>PyBytes_AS_STRING(<object>value)


cdef int _decide_arp(const unsigned char *f, Py_ssize_t n, int o, dict owned, bint gate_open,
                     unsigned char *out, Py_ssize_t *outlen) except -1:
    cdef const unsigned char *mac
    cdef const unsigned char *sha = f + o + 8
    cdef const unsigned char *spa = f + o + 14
    cdef const unsigned char *tpa = f + o + 24
    if n < o + ARP_LEN or memcmp(f + o, ARP_HDR, 6) != 0:
        return R_MALFORMED
    # Replies and announcements (sender IP == target IP) ask nothing; one of them for an owned
    # VIP from another MAC is a conflict. Ordinary requests are not checked (as in XDP).
    if f[o + 6] != 0 or f[o + 7] != 1 or memcmp(spa, tpa, 4) == 0:
        mac = _lookup(owned, spa, 4)
        if mac != NULL and memcmp(mac, sha, 6) != 0:
            return R_CONFLICT
        return R_NOT_REQUEST
    mac = _lookup(owned, tpa, 4)
    if mac == NULL:
        return R_MISS
    if (f[0] & f[1] & f[2] & f[3] & f[4] & f[5]) != 0xFF and memcmp(f, mac, 6) != 0:
        return R_NOT_FOR_US
    if not gate_open:
        return R_GATE_CLOSED
    memcpy(out, f, n)                      # same length, padding and VLAN tags as the request
    memcpy(out, sha, 6)                    # RFC 826: to the sender hardware address
    memcpy(out + 6, mac, 6)
    out[o + 7] = 2
    memcpy(out + o + 8, mac, 6)            # sha = owner
    memcpy(out + o + 14, tpa, 4)           # spa = the VIP asked for
    memcpy(out + o + 18, sha, 6)           # tha = requester
    memcpy(out + o + 24, spa, 4)           # tpa = requester's IP (0.0.0.0 for a probe)
    outlen[0] = n
    if spa[0] == 0 and spa[1] == 0 and spa[2] == 0 and spa[3] == 0:
        return R_PROBE_REPLY
    return R_ARP_REPLY


cdef int _na_claim(const unsigned char *f, Py_ssize_t n, int o, dict owned) except -1:
    """An NA for an owned VIP carrying another MAC is a conflict; anything else passes."""
    cdef Py_ssize_t icmp = o + 40
    cdef const unsigned char *mac
    cdef const unsigned char *theirs = f + 6
    cdef Py_ssize_t plen = (f[o + 4] << 8) | f[o + 5]
    if n < icmp + 24:
        return R_PASS
    mac = _lookup(owned, f + icmp + 8, 16)
    if mac == NULL:
        return R_PASS
    if n >= icmp + 32 and plen >= 32 and f[icmp + 24] == 2 and f[icmp + 25] == 1:
        theirs = f + icmp + 26             # the first option, when it is the TLLA
    return R_CONFLICT if memcmp(theirs, mac, 6) != 0 else R_PASS


cdef int _decide_nd(const unsigned char *f, Py_ssize_t n, int o, dict owned, bint gate_open,
                    unsigned char *out, Py_ssize_t *outlen) except -1:
    cdef Py_ssize_t icmp = o + 40
    cdef Py_ssize_t plen, chunks, next_opt, i, at
    cdef const unsigned char *mac
    cdef const unsigned char *target = f + icmp + 8
    cdef const unsigned char *dst = f + o + 24
    cdef bint snm, dad, has_slla = False
    cdef unsigned int s
    if n < icmp + 4 or f[o + 6] != 58:
        return R_PASS
    if f[icmp] == 136:
        return _na_claim(f, n, o, owned)
    if f[icmp] != 135:
        return R_PASS
    plen = (f[o + 4] << 8) | f[o + 5]
    if n < icmp + NS_ICMP_LEN or plen < NS_ICMP_LEN or (plen & 7) or plen > NS_ICMP_MAX:
        return R_MALFORMED
    # The option walk chunk by chunk, as the XDP program does it.
    chunks = plen >> 3
    next_opt = 3
    for i in range(chunks):
        at = icmp + i * 8
        if at + 8 > n:
            return R_MALFORMED
        if i >= 3 and i == next_opt:
            if f[at + 1] == 0:             # RFC 4861 7.1.1: every option longer than zero
                return R_INVALID
            if f[at] == 1:
                has_slla = True
            next_opt += f[at + 1]
    if next_opt != chunks:                 # an option runs past the message
        return R_MALFORMED
    dad = memcmp(f + o + 8, ZERO16, 16) == 0
    snm = memcmp(dst, SNM_PREFIX, 13) == 0 and memcmp(dst + 13, target + 13, 3) == 0
    s = _sum16(f + o + 8, 32, 0) + <unsigned int>plen + 58
    s = _fold(_sum16(f + icmp, plen, s))   # ~sum: 0 when the checksum is right
    if (f[o + 7] != 255 or f[icmp + 1] != 0 or target[0] == 0xFF or s != 0
            or (dad and (has_slla or not snm))
            or (not snm and memcmp(dst, target, 16) != 0)):
        return R_INVALID
    mac = _lookup(owned, target, 16)
    if mac == NULL:
        return R_MISS
    if memcmp(f, mac, 6) != 0 and not (f[0] == 0x33 and f[1] == 0x33
                                         and memcmp(f + 2, dst + 12, 4) == 0):
        return R_NOT_FOR_US
    if not gate_open:
        return R_GATE_CLOSED
    if dad:
        memcpy(out, ALL_NODES_MAC, 6)
    else:
        memcpy(out, f + 6, 6)
    memcpy(out + 6, mac, 6)
    memcpy(out + 12, f + 12, o - 12)      # VLAN tags and EtherType kept
    if dad:
        outlen[0] = o + _write_ipv6_na(out + o, mac, target, ALL_NODES, 0x20)
        return R_DAD_REPLY
    outlen[0] = o + _write_ipv6_na(out + o, mac, target, f + o + 8, 0x60)
    return R_NS_REPLY


cdef int _decide(const unsigned char *f, Py_ssize_t n, dict owned, bint gate_open,
                 unsigned char *out, Py_ssize_t *outlen) except -1:
    """Reason code; when it is a reply kind, the reply is at ``out`` (``outlen`` bytes)."""
    cdef int et, ntags
    cdef int o = _l2(f, n, &et, &ntags)
    if o < 0:
        return R_PASS
    if et == 0x0806:
        return _decide_arp(f, n, o, owned, gate_open, out, outlen)
    if et == 0x86DD:
        return _decide_nd(f, n, o, owned, gate_open, out, outlen)
    if et == 0x8100 or et == 0x88A8:
        return R_TOO_MANY_VLANS
    return R_PASS


def decide(const unsigned char[:] frame not None, dict owned not None, bint gate_open=True):
    cdef Py_ssize_t n = frame.shape[0]
    cdef Py_ssize_t outlen = 0
    cdef unsigned char out[MAX_FRAME]
    cdef int reason
    if n == 0:
        return Reason.PASS, None
    if n > MAX_FRAME:
        n = MAX_FRAME  # a jumbo frame is not an ARP/NS we answer; its head decides
    reason = _decide(&frame[0], n, owned, gate_open, out, &outlen)
    if reason <= R_DAD_REPLY:
        return Reason(reason), PyBytes_FromStringAndSize(<const char *>out, outlen)
    return Reason(reason), None


# --- batched socket I/O ---------------------------------------------------------------------------

def send_frames(int fd, frames):
    """sendmmsg the frames (a sequence of bytes) on the bound AF_PACKET socket ``fd``."""
    cdef list items = list(frames)
    cdef Py_ssize_t total = len(items), done = 0, i, chunk
    cdef mmsghdr msgs[64]
    cdef iovec iov[64]
    cdef bytes frame
    cdef int r
    while done < total:
        chunk = min(64, total - done)
        memset(msgs, 0, sizeof(mmsghdr) * chunk)
        for i in range(chunk):
            frame = items[done + i]
            iov[i].iov_base = PyBytes_AS_STRING(frame)
            iov[i].iov_len = len(frame)
            msgs[i].msg_hdr.msg_iov = &iov[i]
            msgs[i].msg_hdr.msg_iovlen = 1
        with nogil:
            r = sendmmsg(fd, msgs, <unsigned int>chunk, 0)
        if r < 0:
            if errno == EINTR:
                continue
            raise OSError(errno, f"sendmmsg failed after {done} of {total} frames")
        done += r
    return done


cdef extern from "<sys/mman.h>" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    int PROT_READ, PROT_WRITE, MAP_SHARED, MAP_LOCKED
    void *MAP_FAILED

cdef extern from "<linux/if_packet.h>" nogil:
    struct tpacket_req:
        unsigned int tp_block_size
        unsigned int tp_block_nr
        unsigned int tp_frame_size
        unsigned int tp_frame_nr
    struct tpacket2_hdr:
        unsigned int tp_status
        unsigned int tp_len
        unsigned int tp_snaplen
        unsigned short tp_mac
        unsigned short tp_net
        unsigned int tp_sec
        unsigned int tp_nsec
        unsigned short tp_vlan_tci
        unsigned short tp_vlan_tpid
    int PACKET_RX_RING, PACKET_VERSION, TPACKET_V2, TP_STATUS_KERNEL, TP_STATUS_USER

cdef extern from "<sys/socket.h>" nogil:
    int setsockopt(int fd, int level, int name, const void *value, unsigned int length)
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr *CMSG_FIRSTHDR(msghdr *msg)
    cmsghdr *CMSG_NXTHDR(msghdr *msg, cmsghdr *cmsg)
    unsigned char *CMSG_DATA(cmsghdr *cmsg)

cdef extern from "<linux/if_packet.h>" nogil:
    struct tpacket_auxdata:
        unsigned int tp_status
        unsigned int tp_len
        unsigned int tp_snaplen
        unsigned short tp_mac
        unsigned short tp_net
        unsigned short tp_vlan_tci
        unsigned short tp_vlan_tpid
    int PACKET_AUXDATA

cdef extern from *:
    """
    static inline unsigned int oelb_load_acquire(volatile unsigned int *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void oelb_store_release(volatile unsigned int *p, unsigned int v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    """
    unsigned int oelb_load_acquire(unsigned int *p) nogil
    void oelb_store_release(unsigned int *p, unsigned int v) nogil

cdef enum:
    SOL_PACKET = 263
    RING_FRAME = 2048          # one request per slot (the filter caps what is copied)
    RING_BLOCK = 1 << 16       # 32 slots per block
    RING_BLOCKS = 32           # 1024 slots, 2 MiB per socket: a burst waits in the ring
    CTRL_SPACE = 64            # per message: one cmsg with struct tpacket_auxdata (40 bytes)
    VLAN_VALID = 0x10          # TP_STATUS_VLAN_VALID: the kernel took a tag off the frame
    VLAN_TPID_VALID = 0x40     # TP_STATUS_VLAN_TPID_VALID: and says which TPID it had


cdef class ResponderCore:
    """Receive a batch, decide each frame, sendmmsg the replies.

    Requests arrive in a PACKET_RX_RING shared with the kernel (TPACKET_V2): the kernel copies
    each one into the ring in the sender's softirq, this side reads it in place and hands the
    slot back, so receiving costs no system call and no copy here; recvmmsg is the fallback
    where the ring cannot be set up. Replies go out with one sendmmsg per batch. The buffers
    are allocated once; the decision reads and writes them through raw pointers.
    """

    cdef int fd
    cdef readonly int batch
    cdef dict _table
    cdef list _conflicts
    cdef unsigned long long _counters[REASON_COUNT]
    cdef unsigned char *_ring
    cdef size_t _ring_len
    cdef unsigned int _ring_slots
    cdef unsigned int _ring_at
    cdef unsigned char *_rx
    cdef unsigned char *_tx
    cdef unsigned char _tagged[MAX_FRAME + 4]
    cdef iovec *_rx_iov
    cdef iovec *_tx_iov
    cdef mmsghdr *_rx_msgs
    cdef mmsghdr *_tx_msgs
    cdef unsigned char *_ctrl

    def __cinit__(self, int fd, int batch=64, bint ring=True):
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.fd = fd
        self.batch = batch
        self._table = {}
        self._conflicts = []
        memset(self._counters, 0, sizeof(self._counters))
        self._rx = <unsigned char *>calloc(batch, MAX_FRAME)
        self._tx = <unsigned char *>calloc(batch, MAX_FRAME)
        self._rx_iov = <iovec *>calloc(batch, sizeof(iovec))
        self._tx_iov = <iovec *>calloc(batch, sizeof(iovec))
        self._rx_msgs = <mmsghdr *>calloc(batch, sizeof(mmsghdr))
        self._tx_msgs = <mmsghdr *>calloc(batch, sizeof(mmsghdr))
        if not (self._rx and self._tx and self._rx_iov and self._tx_iov and self._rx_msgs
                and self._tx_msgs):
            raise MemoryError()
        cdef int i
        for i in range(batch):
            self._rx_iov[i].iov_base = self._rx + i * MAX_FRAME
            self._rx_iov[i].iov_len = MAX_FRAME
            self._rx_msgs[i].msg_hdr.msg_iov = &self._rx_iov[i]
            self._rx_msgs[i].msg_hdr.msg_iovlen = 1
            self._tx_msgs[i].msg_hdr.msg_iov = &self._tx_iov[i]
            self._tx_msgs[i].msg_hdr.msg_iovlen = 1
        self._ring = NULL
        self._ctrl = NULL
        if ring:
            self._map_ring()
        if self._ring == NULL:
            self._want_auxdata()

    cdef void _want_auxdata(self):
        """recvmmsg path: ask for the tag the kernel strips, in a control message per frame."""
        cdef int on = 1
        if setsockopt(self.fd, SOL_PACKET, PACKET_AUXDATA, &on, sizeof(on)) != 0:
            return
        self._ctrl = <unsigned char *>calloc(self.batch, CTRL_SPACE)

    cdef void _map_ring(self):
        cdef int version = TPACKET_V2
        cdef tpacket_req req
        cdef void *area
        req.tp_block_size = RING_BLOCK
        req.tp_block_nr = RING_BLOCKS
        req.tp_frame_size = RING_FRAME
        req.tp_frame_nr = (RING_BLOCK // RING_FRAME) * RING_BLOCKS
        if setsockopt(self.fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0:
            return
        if setsockopt(self.fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0:
            return
        area = mmap(NULL, RING_BLOCK * RING_BLOCKS, PROT_READ | PROT_WRITE, MAP_SHARED,
                    self.fd, 0)
        if area == MAP_FAILED:
            return
        self._ring = <unsigned char *>area
        self._ring_len = RING_BLOCK * RING_BLOCKS
        self._ring_slots = req.tp_frame_nr
        self._ring_at = 0

    @property
    def uses_ring(self):
        """Whether requests arrive through the shared ring (else recvmmsg)."""
        return self._ring != NULL

    def __dealloc__(self):
        if self._ring != NULL:
            munmap(self._ring, self._ring_len)
        free(self._rx); free(self._tx); free(self._rx_iov); free(self._tx_iov)
        free(self._rx_msgs); free(self._tx_msgs); free(self._ctrl)

    def set_table(self, table):
        self._table = dict(table)

    @property
    def table(self):
        return self._table

    @property
    def counters(self):
        return [self._counters[i] for i in range(REASON_COUNT)]

    cdef inline int _handle(self, const unsigned char *frame, Py_ssize_t n, dict table,
                            bint gate_open, int k) except -1:
        """Decide one frame; 1 when a reply was queued in tx slot ``k``."""
        cdef Py_ssize_t outlen = 0
        cdef int reason = _decide(frame, n, table, gate_open, self._tx + k * MAX_FRAME, &outlen)
        self._counters[reason] += 1
        if reason == R_CONFLICT:
            self._note_conflict(frame, n)
        elif reason <= R_DAD_REPLY:
            self._tx_iov[k].iov_base = self._tx + k * MAX_FRAME
            self._tx_iov[k].iov_len = outlen
            return 1
        return 0

    cdef inline int _handle_tagged(self, const unsigned char *frame, Py_ssize_t n,
                                   unsigned int status, unsigned int tci, unsigned int tpid,
                                   dict table, bint gate_open, int k) except -1:
        """``_handle`` after putting back the VLAN tag the kernel took off (``status`` is the
        ring's or the auxdata's), so the decision and the reply see the frame as it was on the
        wire, as the XDP program does."""
        if status & VLAN_VALID and n >= 12:
            if n > MAX_FRAME - 4:
                n = MAX_FRAME - 4  # room for the tag in a reply slot; the rest is padding
            if not status & VLAN_TPID_VALID:
                tpid = 0x8100
            memcpy(self._tagged, frame, 12)
            self._tagged[12] = tpid >> 8; self._tagged[13] = tpid & 0xFF
            self._tagged[14] = tci >> 8; self._tagged[15] = tci & 0xFF
            memcpy(self._tagged + 16, frame + 12, n - 12)
            return self._handle(self._tagged, n + 4, table, gate_open, k)
        return self._handle(frame, n, table, gate_open, k)

    cdef inline void _send(self, int k) noexcept:
        if k:
            # A full tx queue loses replies like a busy NIC would; the requester retries.
            with nogil:
                sendmmsg(self.fd, self._tx_msgs, <unsigned int>k, MSG_DONTWAIT)

    def service(self, bint gate_open=True, int max_batches=4):
        if self._ring != NULL:
            return self._service_ring(gate_open, max_batches)
        cdef int received = 0, r, i, k, rounds
        cdef dict table = self._table
        cdef cmsghdr *cmsg
        cdef tpacket_auxdata *aux
        cdef unsigned int status, tci, tpid
        for rounds in range(max_batches):
            if self._ctrl != NULL:
                for i in range(self.batch):  # the kernel shrinks msg_controllen to what it wrote
                    self._rx_msgs[i].msg_hdr.msg_control = self._ctrl + i * CTRL_SPACE
                    self._rx_msgs[i].msg_hdr.msg_controllen = CTRL_SPACE
            with nogil:
                r = recvmmsg(self.fd, self._rx_msgs, <unsigned int>self.batch, MSG_DONTWAIT, NULL)
            if r <= 0:
                if r < 0 and errno != EAGAIN and errno != EINTR:
                    raise OSError(errno, "recvmmsg failed")
                break
            received += r
            k = 0
            for i in range(r):
                status = tci = tpid = 0
                if self._ctrl != NULL:
                    cmsg = CMSG_FIRSTHDR(&self._rx_msgs[i].msg_hdr)
                    while cmsg != NULL:
                        if cmsg.cmsg_level == SOL_PACKET and cmsg.cmsg_type == PACKET_AUXDATA:
                            aux = <tpacket_auxdata *>CMSG_DATA(cmsg)
                            status, tci, tpid = aux.tp_status, aux.tp_vlan_tci, aux.tp_vlan_tpid
                            break
                        cmsg = CMSG_NXTHDR(&self._rx_msgs[i].msg_hdr, cmsg)
                k += self._handle_tagged(self._rx + i * MAX_FRAME, self._rx_msgs[i].msg_len,
                                         status, tci, tpid, table, gate_open, k)
            self._send(k)
            if r < self.batch:
                break
        return received

    cdef int _service_ring(self, bint gate_open, int max_batches) except -1:
        cdef int received = 0, got, k, rounds
        cdef dict table = self._table
        cdef tpacket2_hdr *hdr
        cdef Py_ssize_t n
        cdef unsigned int status, tpid
        cdef unsigned char *frame
        for rounds in range(max_batches):
            got = 0
            k = 0
            while got < self.batch:
                hdr = <tpacket2_hdr *>(self._ring + <size_t>self._ring_at * RING_FRAME)
                status = oelb_load_acquire(&hdr.tp_status)
                if not (status & TP_STATUS_USER):
                    break
                frame = <unsigned char *>hdr + hdr.tp_mac
                n = hdr.tp_snaplen
                if n > MAX_FRAME:
                    n = MAX_FRAME
                k += self._handle_tagged(frame, n, status, hdr.tp_vlan_tci, hdr.tp_vlan_tpid,
                                         table, gate_open, k)
                oelb_store_release(&hdr.tp_status, TP_STATUS_KERNEL)  # the slot is free again
                self._ring_at = (self._ring_at + 1) % self._ring_slots
                got += 1
            self._send(k)
            received += got
            if got < self.batch:
                break
        return received

    cdef void _note_conflict(self, const unsigned char *frame, Py_ssize_t n) except *:
        # Rare: a Python parse of the frame is fine here.
        claim = claimed_address(_b(frame, n))
        if claim is not None and len(self._conflicts) < MAX_CONFLICTS:
            self._conflicts.append(claim)

    def take_conflicts(self):
        taken, self._conflicts = self._conflicts, []
        return taken

    def close(self):
        if self._ring != NULL:
            munmap(self._ring, self._ring_len)
            self._ring = NULL
        self.fd = -1
