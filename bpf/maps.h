/* Every map of the responder, one comment each.
 *
 * The VIP maps, counters and gate are pinned under OELB_PIN_DIR: a restarted speaker's program
 * re-uses them (entries, counters and the gate survive), so answers never stop during a restart.
 * The event ring buffer is per program: conflicts seen while no speaker runs are not needed.
 */
#ifndef OELB_MAPS_H
#define OELB_MAPS_H

#include "consts.h"
#include "structs.h"

/* Owned IPv4 VIPs: {ifindex, ip} -> {mac}. */
BPF_TABLE_PINNED("hash", struct oelb_key4, struct oelb_vip, oelb_vips4, OELB_MAX_VIPS,
		 OELB_PIN_DIR "/vips4");

/* Owned IPv6 VIPs: {ifindex, ip} -> {mac}. */
BPF_TABLE_PINNED("hash", struct oelb_key6, struct oelb_vip, oelb_vips6, OELB_MAX_VIPS,
		 OELB_PIN_DIR "/vips6");

/* Packets by reason (enum oelb_reason), per CPU so counting needs no atomics. */
BPF_TABLE_PINNED("percpu_array", __u32, __u64, oelb_counters, OELB_REASON_MAX,
		 OELB_PIN_DIR "/counters");

/* Liveness gate: [0] = deadline in CLOCK_MONOTONIC ns; answer only while now < deadline. */
BPF_TABLE_PINNED("array", __u32, __u64, oelb_gate, 1, OELB_PIN_DIR "/gate");

/* Conflict events (struct oelb_conflict) for the speaker. */
BPF_RINGBUF_OUTPUT(oelb_events, OELB_EVENT_PAGES);

#endif
