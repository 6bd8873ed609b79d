/* Constants of the openelb XDP responder.
 *
 * Every limit can be overridden at compile time (-DNAME=value); the loader passes the ones that
 * come from settings. The Python mirror (openelb/dataplane/xdp_layout.py) is checked against
 * this file by tests/dataplane/test_xdp_layout.py.
 */
#ifndef OELB_CONSTS_H
#define OELB_CONSTS_H

/* Entries per address family map; a node rarely owns more than a few hundred VIPs. */
#ifndef OELB_MAX_VIPS
#define OELB_MAX_VIPS 16384
#endif

/* Pages of the conflict event ring buffer (a power of two; 16 pages = 64 KiB, ~1600 events). */
#ifndef OELB_EVENT_PAGES
#define OELB_EVENT_PAGES 16
#endif

/* Where the loader pins the maps (one folder per instance); set by the loader. */
#ifndef OELB_PIN_DIR
#define OELB_PIN_DIR "/sys/fs/bpf/openelb/default"
#endif

/* 802.1Q and 802.1ad tags we look through (QinQ); a third tag is passed untouched. */
#define OELB_MAX_VLANS 2

/* Longest NS we check: 24 bytes of NS + 6 options of 8 bytes. Longer ones are passed (malformed). */
#define OELB_NS_MAX_CHUNKS 9 /* in 8-byte units */

/* Ethertypes (host order; compared against bpf_htons of the wire value). */
#define OELB_ETH_P_ARP 0x0806
#define OELB_ETH_P_IPV4 0x0800
#define OELB_ETH_P_IPV6 0x86DD
#define OELB_ETH_P_8021Q 0x8100
#define OELB_ETH_P_8021AD 0x88A8

/* ARP (RFC 826): Ethernet hardware, IPv4 protocol, request and reply opcodes. */
#define OELB_ARP_HRD_ETHER 1
#define OELB_ARP_OP_REQUEST 1
#define OELB_ARP_OP_REPLY 2

/* ICMPv6 Neighbor Discovery (RFC 4861). */
#define OELB_IPPROTO_ICMPV6 58
#define OELB_ND_HOP_LIMIT 255 /* NDP messages must not have crossed a router */
#define OELB_ICMPV6_NS 135
#define OELB_ICMPV6_NA 136
#define OELB_ND_OPT_SLLA 1 /* source link-layer address option */
#define OELB_ND_OPT_TLLA 2 /* target link-layer address option */
#define OELB_NA_FLAG_S 0x40 /* Solicited: answers a unicast-source NS */
#define OELB_NA_FLAG_O 0x20 /* Override: the receiver must replace its cached MAC */
#define OELB_NS_LEN 24      /* ICMPv6 header + reserved + target */
#define OELB_NA_LEN 32      /* NA + one target link-layer address option */

/* Counter reasons: index into the per-CPU counters array. Keep in the order of
 * openelb.dataplane.responder.COUNTER_REASONS. */
enum oelb_reason {
	OELB_ARP_REPLY = 0,
	OELB_PROBE_REPLY = 1,
	OELB_NS_REPLY = 2,
	OELB_DAD_REPLY = 3,
	OELB_MISS = 4,
	OELB_CONFLICT = 5,
	OELB_MALFORMED = 6,
	OELB_INVALID = 7,
	OELB_NOT_FOR_US = 8,
	OELB_NOT_REQUEST = 9,
	OELB_GATE_CLOSED = 10,
	OELB_TOO_MANY_VLANS = 11,
	OELB_REASON_MAX = 12,
};

/* Address family in conflict events (AF_INET / AF_INET6 on Linux). */
#define OELB_AF_INET 2
#define OELB_AF_INET6 10

#endif
