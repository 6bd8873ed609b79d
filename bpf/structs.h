/* Map keys and values and the conflict event: the layout userspace mirrors.
 *
 * Explicit padding keeps every byte defined (hash keys are compared bytewise) and the sizes
 * the same on every compiler; tests/dataplane/test_xdp_layout.py checks the Python mirror.
 */
#ifndef OELB_STRUCTS_H
#define OELB_STRUCTS_H

/* Key of the IPv4 VIP map: the interface the request came in on and the VIP. */
struct oelb_key4 {
	__u32 ifindex;
	__be32 ip;
};

/* Key of the IPv6 VIP map. */
struct oelb_key6 {
	__u32 ifindex;
	__u8 ip[16];
};

/* What to answer with. flags is reserved (0) for per-VIP options. */
struct oelb_vip {
	__u8 mac[6];
	__u16 flags;
};

/* Someone else claimed a VIP we answer for (their MAC), pushed to the ring buffer. */
struct oelb_conflict {
	__u64 ts_ns; /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u32 ifindex;
	__u16 family; /* OELB_AF_INET or OELB_AF_INET6 */
	__u8 mac[6];
	__u8 ip[16]; /* IPv4 in the first 4 bytes */
	__u32 pad;
};

/* Ethernet and IPv6 headers, defined here rather than taken from <linux/if_ether.h> and
 * <linux/ipv6.h>: those pull in enough kernel headers to make bcc's compile 5x slower. */
struct oelb_eth {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct oelb_ip6 {
	__be32 vtc_flow; /* version, traffic class, flow label */
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* ARP for Ethernet/IPv4 (RFC 826), as on the wire. */
struct oelb_arp {
	__be16 hrd;
	__be16 pro;
	__u8 hln;
	__u8 pln;
	__be16 op;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

/* ICMPv6 Neighbor Solicitation/Advertisement header (RFC 4861 4.3, 4.4). */
struct oelb_nd {
	__u8 type;
	__u8 code;
	__sum16 cksum;
	__u8 flags; /* NA: R S O; NS: 0 */
	__u8 reserved[3];
	__u8 target[16];
};

/* The NA we send: header plus one target link-layer address option. */
struct oelb_na {
	struct oelb_nd nd;
	__u8 opt_type;
	__u8 opt_len; /* in 8-byte units: 1 */
	__u8 opt_mac[6];
};

#endif
