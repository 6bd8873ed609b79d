/* openelb XDP responder: answers ARP requests and Neighbor Solicitations for the VIPs in the
 * maps with XDP_TX while the liveness gate is open; everything else goes to the kernel.
 *
 * The entry only finds the L3 header behind up to two VLAN tags and dispatches; the rules live
 * in arp.h and ndp.h, the maps in maps.h. */
#include "arp.h"
#include "ndp.h"

static __always_inline int oelb_respond(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct oelb_eth *eth = data;
	__u32 l3off = sizeof(*eth);
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->proto;
#pragma unroll
	for (int i = 0; i < OELB_MAX_VLANS; i++) {
		struct oelb_vlan *tag = data + l3off;

		if (proto != bpf_htons(OELB_ETH_P_8021Q) && proto != bpf_htons(OELB_ETH_P_8021AD))
			break;
		if ((void *)(tag + 1) > end)
			return XDP_PASS;
		proto = tag->proto;
		l3off += sizeof(*tag);
	}
	if (proto == bpf_htons(OELB_ETH_P_8021Q) || proto == bpf_htons(OELB_ETH_P_8021AD))
		return oelb_count_pass(OELB_TOO_MANY_VLANS);
	if (proto == bpf_htons(OELB_ETH_P_ARP))
		return oelb_handle_arp(ctx, l3off);
	if (proto == bpf_htons(OELB_ETH_P_IPV6))
		return oelb_handle_ipv6(ctx, l3off);
	return XDP_PASS;
}

int oelb_xdp(struct xdp_md *ctx)
{
	return oelb_respond(ctx);
}

/* Attached to the peer of a veth carrying the responder: native XDP_TX on veth needs an XDP
 * program on the receiving end (ENV.md); this one changes nothing. */
int oelb_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
