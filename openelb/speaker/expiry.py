"""When a peer's speaker Lease counts as expired: the membership half of fail-static.

A speaker Lease that is no longer renewed usually means its speaker is gone without deleting it
(SIGKILL, node lost), and the Lease is how that speaker is eventually forgotten. But a Lease also
stops moving, in *our* view, for reasons that say nothing about the peer:

- the apiserver was unreachable (for us, or for everybody): nobody's renewals reached us, and
  when it returns every Lease looks old at once. Counting that time would make every speaker
  drop every other one in the same instant (each then takes every VIP: a double answer
  everywhere). So staleness is only counted over time we could observe renewals:
  from ``observing_since`` (when our own renewals last started succeeding) on;
- the *peer* lost the apiserver while the data network works (a partial outage): it keeps
  serving its VIPs (fail-static) and heartbeating, and dropping it would have its backup answer
  as well. So a peer that the failure detector knows alive is never dropped for its Lease:
  heartbeats are the authority on liveness, the Lease only on existence. The backup of every
  VIP a peer owns receives its heartbeats, so the one node that could take the VIP over always
  has that evidence.

A Lease is expired when it did not move for ``factor`` x its duration of observed time *and* the
detector either holds its speaker dead or never heard from it. Pure: clocks and evidence are
passed in.
"""

from __future__ import annotations

from collections.abc import Iterable


class LeaseExpiry:
    """Remembers when each peer Lease last moved; judges expiry (see the module docstring)."""

    def __init__(self, *, factor: float = 2.0) -> None:
        if factor <= 0:
            raise ValueError(f"expiry factor must be > 0, got {factor}")
        self.factor = factor
        self._moved: dict[str, tuple[str, float]] = {}  # lease -> (renewTime, first seen at)

    def expired(
        self,
        name: str,
        *,
        renew_time: str,
        duration: float,
        now: float,
        observing_since: float | None,
        heard_alive: bool,
    ) -> bool:
        """Whether Lease ``name`` (last renewed at ``renew_time``, valid ``duration`` s) expired.

        ``now`` and ``observing_since`` are monotonic seconds; ``observing_since`` is None while
        we cannot observe renewals at all (our own are failing): nothing expires then.
        ``heard_alive``: the failure detector heard this peer and does not hold it dead.
        """
        seen = self._moved.get(name)
        if seen is None or seen[0] != renew_time:
            self._moved[name] = (renew_time, now)
            return False
        if heard_alive or observing_since is None:
            return False
        still_since = max(seen[1], observing_since)
        return now - still_since > self.factor * duration

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget Leases that no longer exist (bounded memory under node churn)."""
        keep = set(names)
        for name in [n for n in self._moved if n not in keep]:
            del self._moved[name]
