/* Small always-inline helpers: counting, the liveness gate, conflict events, MAC tests and the
 * one's-complement sum. No packet parsing here (arp.h, ndp.h). */
#ifndef OELB_HELPERS_H
#define OELB_HELPERS_H

#include "maps.h"

/* IPv4 and IPv6 handlers receive the offset of the L3 header behind up to two VLAN tags. */
struct oelb_vlan {
	__be16 tci;
	__be16 proto;
};

static __always_inline void oelb_count(__u32 reason)
{
	__u64 *counter = oelb_counters.lookup(&reason);

	if (counter)
		*counter += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline int oelb_count_pass(__u32 reason)
{
	oelb_count(reason);
	return XDP_PASS;
}

/* The gate is open while now < deadline. The coarse clock is CLOCK_MONOTONIC at jiffy
 * resolution: the gate may close up to one tick late, and reading it costs a few ns instead of
 * a clocksource read on every answered request. */
static __always_inline int oelb_gate_open(void)
{
	__u32 key = 0;
	__u64 *deadline = oelb_gate.lookup(&key);

	return deadline && bpf_ktime_get_coarse_ns() < *deadline;
}

static __always_inline int oelb_mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

static __always_inline int oelb_mac_is_broadcast(const __u8 *a)
{
	return *(const __u32 *)a == 0xffffffff && *(const __u16 *)(a + 4) == 0xffff;
}

static __always_inline void oelb_report_conflict(__u32 ifindex, __u16 family, const __u8 *ip,
						 __u32 ip_len, const __u8 *mac)
{
	struct oelb_conflict event = {};

	event.ts_ns = bpf_ktime_get_coarse_ns();
	event.ifindex = ifindex;
	event.family = family;
	__builtin_memcpy(event.mac, mac, 6);
	if (ip_len == 4)
		__builtin_memcpy(event.ip, ip, 4);
	else
		__builtin_memcpy(event.ip, ip, 16);
	/* A full ring drops the event; the conflict counter still counts it. */
	oelb_events.ringbuf_output(&event, sizeof(event), 0);
	oelb_count(OELB_CONFLICT);
}

/* Fold a 64-bit accumulation of 32-bit words into the 16-bit one's-complement sum (RFC 1071:
 * the sum is byte-order independent, so words are added as loaded). */
static __always_inline __u16 oelb_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline __u64 oelb_sum_words(const __u32 *words, __u32 count)
{
	__u64 sum = 0;

#pragma unroll
	for (__u32 i = 0; i < 8; i++) {
		if (i < count)
			sum += words[i];
	}
	return sum;
}

#endif
