/* ARP requests for owned IPv4 VIPs (RFC 826, RFC 5227 probes and conflicts). */
#ifndef OELB_ARP_H
#define OELB_ARP_H

#include "helpers.h"

static __always_inline int oelb_handle_arp(struct xdp_md *ctx, __u32 l3off)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct oelb_eth *eth = data;
	struct oelb_arp *arp = data + l3off;
	struct oelb_key4 key = {};
	struct oelb_vip *vip;
	__be32 asker;

	if ((void *)(arp + 1) > end)
		return oelb_count_pass(OELB_MALFORMED);
	if (arp->hrd != bpf_htons(OELB_ARP_HRD_ETHER) || arp->pro != bpf_htons(OELB_ETH_P_IPV4) ||
	    arp->hln != 6 || arp->pln != 4)
		return oelb_count_pass(OELB_MALFORMED);

	key.ifindex = ctx->ingress_ifindex;
	asker = arp->spa;
	/* An announcement (a reply, or a gratuitous request: sender IP == target IP) of one of
	 * our VIPs from another MAC is a conflict: report it and let the kernel see it. Ordinary
	 * requests are not checked: that second lookup would cost every request ~17 ns (a
	 * quarter of the budget) and another owner announces the VIP anyway. */
	if (asker && (arp->op != bpf_htons(OELB_ARP_OP_REQUEST) || asker == arp->tpa)) {
		key.ip = asker;
		vip = oelb_vips4.lookup(&key);
		if (vip && !oelb_mac_eq(vip->mac, arp->sha)) {
			oelb_report_conflict(key.ifindex, OELB_AF_INET, (const __u8 *)&asker, 4,
					     arp->sha);
			return XDP_PASS;
		}
	}
	/* Replies and announcements (sender IP == target IP) ask nothing. */
	if (arp->op != bpf_htons(OELB_ARP_OP_REQUEST) || asker == arp->tpa)
		return oelb_count_pass(OELB_NOT_REQUEST);

	key.ip = arp->tpa;
	vip = oelb_vips4.lookup(&key);
	if (!vip)
		return oelb_count_pass(OELB_MISS);
	if (!oelb_mac_is_broadcast(eth->dst) && !oelb_mac_eq(eth->dst, vip->mac))
		return oelb_count_pass(OELB_NOT_FOR_US);
	if (!oelb_gate_open())
		return oelb_count_pass(OELB_GATE_CLOSED);

	/* Unicast reply to the asker (RFC 826: to the sender hardware address), in place: VLAN
	 * tags and any Ethernet padding stay as they came. A probe (sender 0.0.0.0) gets the
	 * same reply with target IP 0.0.0.0, which is what RFC 5227 probers listen for. */
	__builtin_memcpy(eth->dst, arp->sha, 6);
	__builtin_memcpy(eth->src, vip->mac, 6);
	arp->op = bpf_htons(OELB_ARP_OP_REPLY);
	__builtin_memcpy(arp->tha, arp->sha, 6);
	__builtin_memcpy(arp->sha, vip->mac, 6);
	arp->tpa = asker;
	arp->spa = key.ip;
	oelb_count(asker ? OELB_ARP_REPLY : OELB_PROBE_REPLY);
	return XDP_TX;
}

#endif
