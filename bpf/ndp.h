/* Neighbor Solicitations for owned IPv6 VIPs (RFC 4861 7.1.1 and 7.2.4, DAD per RFC 4862),
 * and Neighbor Advertisements that claim one of them (conflicts). */
#ifndef OELB_NDP_H
#define OELB_NDP_H

#include "helpers.h"

/* An NA for one of our VIPs carrying another MAC: a conflict. Only the first option is looked
 * at (senders put the target link-layer option first); without one, the Ethernet source. */
static __always_inline int oelb_check_na(struct xdp_md *ctx, struct oelb_eth *eth,
					 struct oelb_ip6 *ip6, struct oelb_nd *nd, void *end)
{
	struct oelb_na *na = (struct oelb_na *)nd;
	struct oelb_key6 key = {};
	struct oelb_vip *vip;
	const __u8 *theirs = eth->src;

	if ((void *)(nd + 1) > end)
		return XDP_PASS;
	key.ifindex = ctx->ingress_ifindex;
	__builtin_memcpy(key.ip, nd->target, 16);
	vip = oelb_vips6.lookup(&key);
	if (!vip)
		return XDP_PASS;
	if ((void *)(na + 1) <= end && bpf_ntohs(ip6->payload_len) >= OELB_NA_LEN &&
	    na->opt_type == OELB_ND_OPT_TLLA && na->opt_len == 1)
		theirs = na->opt_mac;
	if (!oelb_mac_eq(vip->mac, theirs))
		oelb_report_conflict(key.ifindex, OELB_AF_INET6, key.ip, 16, theirs);
	return XDP_PASS;
}

static __always_inline int oelb_ip6_is_unspecified(const __u8 *a)
{
	return !(*(const __u64 *)a | *(const __u64 *)(a + 8));
}

/* ff02::1:ffXX:XXXX for the low 24 bits of the target (RFC 4291 2.7.1). */
static __always_inline int oelb_is_solicited_node(const __u8 *dst, const __u8 *target)
{
	return *(const __u32 *)dst == bpf_htonl(0xff020000) && *(const __u32 *)(dst + 4) == 0 &&
	       *(const __u32 *)(dst + 8) == bpf_htonl(1) && dst[12] == 0xff &&
	       dst[13] == target[13] && dst[14] == target[14] && dst[15] == target[15];
}

static __always_inline int oelb_ip6_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u64 *)a == *(const __u64 *)b &&
	       *(const __u64 *)(a + 8) == *(const __u64 *)(b + 8);
}

static __always_inline int oelb_handle_ipv6(struct xdp_md *ctx, __u32 l3off)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct oelb_eth *eth = data;
	struct oelb_ip6 *ip6 = data + l3off;
	struct oelb_nd *nd = (void *)(ip6 + 1);
	struct oelb_key6 key = {};
	struct oelb_vip *vip;
	struct oelb_na na = {};
	__u8 peer_mac[6], peer_ip[16], mac[6];
	__u32 len, chunks, next_opt = 3, has_sllao = 0, dad, i;
	__u64 sum;
	__u8 *bytes = (__u8 *)nd;

	if ((void *)nd + 4 > end || ip6->nexthdr != OELB_IPPROTO_ICMPV6)
		return XDP_PASS;
	if (nd->type == OELB_ICMPV6_NA)
		return oelb_check_na(ctx, eth, ip6, nd, end);
	if (nd->type != OELB_ICMPV6_NS)
		return XDP_PASS;

	/* Shape: a whole NS, options in 8-byte units, no longer than we check. */
	len = bpf_ntohs(ip6->payload_len);
	if ((void *)(nd + 1) > end || len < OELB_NS_LEN || (len & 7) ||
	    len > OELB_NS_MAX_CHUNKS * 8)
		return oelb_count_pass(OELB_MALFORMED);
	chunks = len >> 3;

	/* One pass over the message: checksum (pseudo-header + ICMPv6) and the option walk. */
	sum = oelb_sum_words((const __u32 *)ip6->saddr, 8) + bpf_htonl(len) +
	      bpf_htonl(OELB_IPPROTO_ICMPV6);
#pragma unroll
	for (i = 0; i < OELB_NS_MAX_CHUNKS; i++) {
		const __u32 *words = (const __u32 *)(bytes + i * 8);

		if (i >= chunks)
			break;
		if ((void *)(words + 2) > end)
			return oelb_count_pass(OELB_MALFORMED);
		sum += (__u64)words[0] + words[1];
		if (i >= 3 && i == next_opt) {
			__u8 opt_len = bytes[i * 8 + 1];

			if (!opt_len) /* RFC 4861 7.1.1: every option longer than zero */
				return oelb_count_pass(OELB_INVALID);
			if (bytes[i * 8] == OELB_ND_OPT_SLLA)
				has_sllao = 1;
			next_opt += opt_len;
		}
	}
	if (next_opt != chunks) /* an option runs past the message */
		return oelb_count_pass(OELB_MALFORMED);

	/* RFC 4861 7.1.1 validity. */
	dad = oelb_ip6_is_unspecified(ip6->saddr);
	if (ip6->hop_limit != OELB_ND_HOP_LIMIT || nd->code != 0 || nd->target[0] == 0xff ||
	    oelb_csum_fold(sum) != 0xffff)
		return oelb_count_pass(OELB_INVALID);
	if (dad && (has_sllao || !oelb_is_solicited_node(ip6->daddr, nd->target)))
		return oelb_count_pass(OELB_INVALID);
	if (!oelb_ip6_eq(ip6->daddr, nd->target) &&
	    !oelb_is_solicited_node(ip6->daddr, nd->target))
		return oelb_count_pass(OELB_INVALID);

	key.ifindex = ctx->ingress_ifindex;
	__builtin_memcpy(key.ip, nd->target, 16);
	vip = oelb_vips6.lookup(&key);
	if (!vip)
		return oelb_count_pass(OELB_MISS);
	/* Ethernet destination: our MAC, or the multicast MAC of the IPv6 destination. */
	if (!oelb_mac_eq(eth->dst, vip->mac) &&
	    !(eth->dst[0] == 0x33 && eth->dst[1] == 0x33 &&
	      *(const __u32 *)(eth->dst + 2) == *(const __u32 *)(ip6->daddr + 12)))
		return oelb_count_pass(OELB_NOT_FOR_US);
	if (!oelb_gate_open())
		return oelb_count_pass(OELB_GATE_CLOSED);

	/* Keep what the reply needs before the frame is resized. The NA goes to the asker's
	 * Ethernet source (an NS without a source link-layer option is answered the same way);
	 * DAD gets an NA to all nodes with S=0 (RFC 4861 7.2.4). */
	__builtin_memcpy(mac, vip->mac, 6);
	__builtin_memcpy(peer_mac, eth->src, 6);
	__builtin_memcpy(peer_ip, ip6->saddr, 16);
	na.nd.type = OELB_ICMPV6_NA;
	na.nd.flags = dad ? OELB_NA_FLAG_O : (OELB_NA_FLAG_S | OELB_NA_FLAG_O);
	__builtin_memcpy(na.nd.target, nd->target, 16);
	na.opt_type = OELB_ND_OPT_TLLA;
	na.opt_len = 1;
	__builtin_memcpy(na.opt_mac, mac, 6);
	if (dad) {
		__builtin_memset(peer_ip, 0, 16);
		peer_ip[0] = 0xff;
		peer_ip[1] = 0x02;
		peer_ip[15] = 0x01;
	}
	sum = oelb_sum_words((const __u32 *)na.nd.target, 4) +
	      oelb_sum_words((const __u32 *)peer_ip, 4) + bpf_htonl(OELB_NA_LEN) +
	      bpf_htonl(OELB_IPPROTO_ICMPV6) + oelb_sum_words((const __u32 *)&na, 8);
	na.nd.cksum = ~oelb_csum_fold(sum);

	/* Resizing fails only without tailroom for 8 more bytes, which XDP frames always have;
	 * should it fail, the request goes up uncounted (the counter set is shared with the
	 * userspace responders, which have no such case). */
	if (bpf_xdp_adjust_tail(ctx, (int)(l3off + sizeof(*ip6) + OELB_NA_LEN) -
					 (int)(end - data)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if (l3off > sizeof(*eth) + OELB_MAX_VLANS * sizeof(struct oelb_vlan))
		return XDP_PASS; /* never: bounds the offset for the verifier */
	ip6 = data + l3off;
	if ((void *)(ip6 + 1) + sizeof(na) > end)
		return XDP_PASS;

	if (dad) {
		/* 33:33:00:00:00:01, written field by field: a constant array would land in
		 * .rodata, which bcc cannot relocate. */
		*(__u16 *)eth->dst = bpf_htons(0x3333);
		*(__u32 *)(eth->dst + 2) = bpf_htonl(1);
	} else {
		__builtin_memcpy(eth->dst, peer_mac, 6);
	}
	__builtin_memcpy(eth->src, mac, 6);
	ip6->vtc_flow = bpf_htonl(0x60000000); /* version 6, no traffic class, no flow label */
	ip6->payload_len = bpf_htons(OELB_NA_LEN);
	ip6->nexthdr = OELB_IPPROTO_ICMPV6;
	ip6->hop_limit = OELB_ND_HOP_LIMIT;
	__builtin_memcpy(ip6->saddr, na.nd.target, 16);
	__builtin_memcpy(ip6->daddr, peer_ip, 16);
	__builtin_memcpy(ip6 + 1, &na, sizeof(na));
	oelb_count(dad ? OELB_DAD_REPLY : OELB_NS_REPLY);
	return XDP_TX;
}

#endif
