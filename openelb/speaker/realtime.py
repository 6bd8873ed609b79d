"""Real-time scheduling for the heartbeat pacer thread, so CPU load cannot fake a death.

Peers declare a node dead after 5 x 20 ms without its heartbeats. At 10,000 Services and 10
speakers on two CPUs (load average ~35) a normal thread waited long enough for a CPU that healthy
speakers were declared dead, their VIPs moved, and the conflicts that followed fed the load. The
pacer thread does almost nothing (a few datagrams every 20 ms, never the GIL), so running it under
``SCHED_RR`` at the lowest real-time priority costs the node nothing and makes it run on time
whatever else is runnable; the kernel's real-time throttling (95% by default) still bounds it.
Without the privilege (CAP_SYS_NICE, or an RT-less cgroup) the pacer keeps the normal policy.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

PACER_PRIORITY = 1
"""The lowest SCHED_RR priority: above every normal thread, below any real RT work on the node."""


def prioritise_current_thread(priority: int = PACER_PRIORITY) -> str | None:
    """Move the calling thread (only it: Linux schedules threads) to ``SCHED_RR``.

    Returns None on success, else why not (also logged: heartbeats may then suffer from load).
    """
    if not hasattr(os, "sched_setscheduler"):
        why = "no sched_setscheduler on this platform"
    else:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
        except OSError as exc:
            why = f"SCHED_RR refused ({exc.strerror})"
        else:
            return None
    log.warning("heartbeat pacer keeps the normal scheduling policy: %s", why)
    return why
