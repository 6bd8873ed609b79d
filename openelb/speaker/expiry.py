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
detector either holds its speaker dead or never heard from it.

The other way round, a speaker can heartbeat us before its Lease is in our view: its Lease is a
watch round trip behind, or never arrives because the apiserver became unreachable (for us, or
for everyone) right after it joined. Ranking without it would make us answer its VIPs as well,
for as long as the outage lasts. So a peer the detector hears alive counts as a member before
its Lease arrives (:class:`UnleasedPeers`), with a record that says nothing about its Eips (which
counts as "may serve", like a Lease lagging a new Eip). It heartbeats us because, in its view,
we back up one of its VIPs or follow it on the ring: exactly the nodes whose view matters.

Pure: clocks and evidence are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from openelb.speaker.detector import FailureDetector
from openelb.speaker.records import SpeakerRecord


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


class UnleasedPeers:
    """Speakers heard heartbeating whose Lease we have not seen (see the module docstring)."""

    def __init__(self) -> None:
        self._sources: dict[str, tuple[str, int]] = {}  # node -> heartbeat source address

    def heard(self, node: str, source: tuple[str, int]) -> bool:
        """A heartbeat from ``node``, which has no Lease in our view; True when that is news
        (the caller recomputes membership)."""
        new = self._sources.get(node) != source
        self._sources[node] = source
        return new

    def members(
        self, leased: Mapping[str, SpeakerRecord], detector: FailureDetector
    ) -> dict[str, SpeakerRecord]:
        """Records for the unleased peers the detector holds alive; forgets the others (their
        Lease arrived, or they died)."""
        out: dict[str, SpeakerRecord] = {}
        for node, source in list(self._sources.items()):
            incarnation = detector.incarnation(node)
            if node in leased or incarnation is None or detector.is_dead(node):
                del self._sources[node]
                continue
            out[node] = SpeakerRecord(node=node, heartbeat=source, incarnation=incarnation)
        return out

    def __len__(self) -> int:
        return len(self._sources)
