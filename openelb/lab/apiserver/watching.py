"""Watch streams: synthetic ADDED for a fresh start, replay from a resourceVersion, then live.

A watch yields newline-terminated JSON events, batched into one chunk per wake-up. It follows
kube-apiserver's watch cache: a resourceVersion older than the retained history gets one
``ERROR`` event with a 410 ``Expired`` Status (HTTP 200, as the cache answers), an object whose
labels stop matching the selector arrives as DELETED (with its previous content), one that starts
matching as ADDED, and with ``allowWatchBookmarks`` a BOOKMARK carries the resourceVersion up to
which everything was delivered, periodically and when ``timeoutSeconds`` ends the stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

from openelb.lab.apiserver import errors
from openelb.lab.apiserver.errors import ApiError
from openelb.lab.apiserver.resources import ResourceType
from openelb.lab.apiserver.selectors import FieldSelector, LabelSelector
from openelb.lab.apiserver.store import Event, Store, iter_matching

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_LIVENESS = 1.0
"""Seconds between checks that an idle watch's client is still connected."""


class WatchDroppedError(Exception):
    """The stream must end without a clean close (fault injection or server stop)."""


@dataclass(frozen=True)
class WatchRequest:
    rtype: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str | None
    timeout: float | None
    bookmarks: bool
    send_initial_events: bool = False


def _error_line(error: ApiError) -> bytes:
    body = {"type": "ERROR", "object": error.status()}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _bookmark_line(rtype: ResourceType, rv: int, *, initial_end: bool = False) -> bytes:
    meta: dict[str, object] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    body = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}
    return json.dumps({"type": "BOOKMARK", "object": body}, separators=(",", ":")).encode() + b"\n"


def parse_start(resource_version: str | None) -> int | None:
    """None: start from the current state (synthetic ADDED); else the RV to resume after."""
    if resource_version in (None, "", "0"):
        return None
    try:
        rv = int(resource_version)
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {resource_version}") from None
    if rv < 0:
        raise errors.bad_request(f"invalid resource version: {resource_version}")
    return rv


class WatchStream:
    """One client's watch; iterate :meth:`chunks` and write each non-empty chunk to the wire.

    An empty chunk means "nothing new": the caller checks that its client is still there.
    """

    def __init__(self, store: Store, request: WatchRequest, *, bookmark_interval: float) -> None:
        self.store = store
        self.request = request
        self.bookmark_interval = bookmark_interval
        self._type_key = (request.rtype.group, request.rtype.plural)
        self._expire_epoch = store.watch_expire_epoch
        self._drop_epoch = store.watch_drop_epoch

    def _wanted(self) -> bool:
        store = self.store
        return (
            not store.closed
            and store.watch_expire_epoch == self._expire_epoch
            and store.watch_drop_epoch == self._drop_epoch
        )

    def _initial(self) -> tuple[int, bytes]:
        req = self.request
        rv, objects = self.store.snapshot(req.rtype)
        matching = iter_matching(
            sorted(objects, key=lambda s: s.rv),
            namespace=req.namespace,
            labels=req.labels,
            fields=req.fields,
        )
        lines = [b'{"type":"ADDED","object":%s}\n' % s.raw for s in matching]
        if req.send_initial_events and req.bookmarks:
            lines.append(_bookmark_line(req.rtype, rv, initial_end=True))
        return rv, b"".join(lines)

    def _lines_for(self, event: Event) -> bytes:
        req = self.request
        if (event.rtype.group, event.rtype.plural) != self._type_key:
            return b""
        if req.namespace is not None and event.namespace != req.namespace:
            return b""
        if not req.fields.empty and not req.fields.matches(event.current.obj):
            return b""
        if req.labels.empty:
            return event.line()
        now = req.labels.matches(event.current.labels)
        before = event.previous is not None and req.labels.matches(event.previous.labels)
        if event.type != "MODIFIED" or event.previous is None:
            return event.line() if now else b""
        if now and before:
            return event.line()
        if now:
            return b'{"type":"ADDED","object":%s}\n' % event.current.raw
        if before:
            return event.left_selector_line()
        return b""

    def chunks(self) -> Iterator[bytes]:
        req = self.request
        start = None if req.send_initial_events else parse_start(req.resource_version)
        if start is None:
            position, initial = self._initial()
            if initial:
                yield initial
        else:
            position = start
            if position < self.store.floor:
                yield _error_line(_too_old(position, self.store.floor))
                return
        now = time.monotonic()
        deadline = now + req.timeout if req.timeout else None
        next_bookmark = now + self.bookmark_interval
        while True:
            if self.store.watch_drop_epoch != self._drop_epoch or self.store.closed:
                raise WatchDroppedError
            if self.store.watch_expire_epoch != self._expire_epoch:
                yield _error_line(
                    errors.expired(
                        "The resourceVersion for the provided watch is "
                        "too old (the server expired this watch)."
                    )
                )
                return
            now = time.monotonic()
            # Wake at least every second so a vanished client is noticed (the empty chunk).
            wait = min(next_bookmark - now, _LIVENESS) if req.bookmarks else _LIVENESS
            if deadline is not None:
                wait = min(wait, deadline - now)
            events, floor, current = self.store.events_after(
                position, wait=max(0.0, wait), still_wanted=self._wanted
            )
            if position < floor:
                yield _error_line(_too_old(position, floor))
                return
            if events:
                batch = b"".join(self._lines_for(e) for e in events)
                position = events[-1].rv
                if batch:
                    yield batch
                continue
            position = max(position, current)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                if req.bookmarks:
                    yield _bookmark_line(req.rtype, position)
                return
            if req.bookmarks and now >= next_bookmark:
                next_bookmark = now + self.bookmark_interval
                yield _bookmark_line(req.rtype, position)
            else:
                yield b""


def _too_old(rv: int, floor: int) -> ApiError:
    return errors.expired(f"too old resource version: {rv} ({floor + 1})")
