"""What a client stream saw, and the outage in it: the data half of :mod:`openelb.lab.traffic`.

Kept apart from the sockets so results written by one process (``traffic stream --out``) can be
read and analysed by another (a benchmark), and so the analysis is tested on synthetic streams.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field


class TrafficError(RuntimeError):
    """A traffic tool could not start or was given bad arguments."""


@dataclass(slots=True)
class Probe:
    """One datagram of a stream and its reply, times in seconds since the stream started."""

    seq: int
    sent: float
    received: float | None = None
    responder: str = ""


@dataclass
class StreamResult:
    """Everything a stream saw; JSON-serialisable (``to_json``/``from_json``)."""

    target: str
    interval: float
    started_at: float
    """Wall-clock start (seconds since the epoch); probe times are relative to it."""
    probes: list[Probe] = field(default_factory=list)
    events: dict[str, float] = field(default_factory=dict)
    """Label -> seconds since start (``UdpStream.mark``)."""
    duplicates: int = 0
    """Replies for a sequence number already answered."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StreamResult:
        raw = json.loads(text)
        probes = [Probe(**p) for p in raw.pop("probes")]
        return cls(probes=probes, **raw)


@dataclass(frozen=True)
class GapReport:
    """What the client saw around an event (or over the whole stream if there was none)."""

    sent: int
    received: int
    lost: int
    """Datagrams never answered."""
    duplicates: int
    gap: float
    """Largest time between two consecutive replies (s) after ``event_at`` (or anywhere)."""
    gap_start: float
    """Receive time of the last reply before that gap (s since the stream started)."""
    gap_end: float
    """Receive time of the first reply after it."""
    event_at: float | None
    """When the event happened (s since start), if one was given."""
    recovery: float | None
    """From the event to the first reply after the gap (s); None without an event."""
    lost_in_gap: int
    responders_before: dict[str, int]
    """Replies per responder received before the event (without one: before the gap)."""
    responders_after: dict[str, int]
    """Replies per responder received after the gap."""
    responder_before: str
    """Who answered last before the event ("" if nobody)."""
    responder_after: str
    """Who answered first after the gap ("" if nobody)."""

    @property
    def moved(self) -> bool:
        """Did another node answer after the gap than before the event?"""
        return bool(self.responder_before and self.responder_after) and (
            self.responder_before != self.responder_after
        )

    def summary(self) -> str:
        parts = [
            f"gap {self.gap * 1e3:.1f} ms",
            f"lost {self.lost}/{self.sent}",
            f"{self.responder_before or '-'} -> {self.responder_after or '-'}",
        ]
        if self.recovery is not None:
            parts.insert(1, f"recovery {self.recovery * 1e3:.1f} ms after event")
        return ", ".join(parts)


def analyse(result: StreamResult, *, event: str | None = None) -> GapReport:
    """Find the outage in ``result``: the largest gap between replies after ``event``.

    ``event`` names a mark of the stream; without one the first mark is used if any, else the
    whole stream is searched. A stream whose traffic never came back reports the gap up to the
    last datagram sent.
    """
    if event is not None and event not in result.events:
        raise TrafficError(f"no event {event!r} in the stream (have: {sorted(result.events)})")
    event_at: float | None = None
    if event is not None:
        event_at = result.events[event]
    elif result.events:
        event_at = min(result.events.values())
    answered = sorted(
        (p for p in result.probes if p.received is not None), key=lambda p: p.received or 0.0
    )
    before: list[Probe] = []
    # Receive time of the reply before the candidate gap; the event itself if none came yet.
    previous: float | None = None
    if event_at is not None:
        before = [p for p in answered if (p.received or 0.0) <= event_at]
        previous = before[-1].received if before else event_at
    best_gap, best_start, best_end = 0.0, previous or 0.0, previous or 0.0
    for probe in answered[len(before) :]:
        t = probe.received or 0.0
        if previous is not None and t - previous > best_gap:
            best_gap, best_start, best_end = t - previous, previous, t
        previous = t
    last_sent = max((p.sent for p in result.probes), default=0.0)
    if previous is not None and last_sent - previous > best_gap:
        # Traffic never came back (or stopped at the end): the gap runs to the last send.
        best_gap, best_start, best_end = last_sent - previous, previous, last_sent
    if event_at is None:  # no event: "before" is everything up to the largest gap
        before = [p for p in answered if (p.received or 0.0) <= best_start]
    after = [p for p in answered if (p.received or 0.0) >= best_end]
    lost_in_gap = sum(
        1 for p in result.probes if p.received is None and best_start <= p.sent <= best_end
    )
    received = len(answered)
    return GapReport(
        sent=len(result.probes),
        received=received,
        lost=len(result.probes) - received,
        duplicates=result.duplicates,
        gap=best_gap,
        gap_start=best_start,
        gap_end=best_end,
        event_at=event_at,
        recovery=None if event_at is None or not after else best_end - event_at,
        lost_in_gap=lost_in_gap,
        responders_before=dict(Counter(p.responder for p in before)),
        responders_after=dict(Counter(p.responder for p in after)),
        responder_before=before[-1].responder if before else "",
        responder_after=after[0].responder if after else "",
    )
