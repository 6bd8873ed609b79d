"""A watch-backed local cache of one resource, feeding change notifications to reconcilers.

The loop is the one client-go's reflector runs: list, then watch from the list's
resourceVersion with bookmarks (so a quiet resource still advances our RV and a re-watch does not
replay or miss anything); when a watch ends or breaks, watch again from the last RV seen; relist
only when the server says that RV is gone (410); back off (capped, exponential, jittered) after
errors. A relist is diffed against the cache, so consumers see exactly the ADDED / MODIFIED /
DELETED that happened while we were away, then one ``RESYNC``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from openelb import metrics
from openelb.kube.backoff import Backoff
from openelb.kube.client import KubeApi, WatchStream
from openelb.kube.errors import Gone, KubeError
from openelb.kube.resources import Resource, object_key
from openelb.kube.views import ViewError

log = logging.getLogger(__name__)

T = TypeVar("T")
Raw = dict[str, Any]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
RESYNC = "RESYNC"
"""After every (re)list, once its differences were delivered: key ``""``, no objects."""


@dataclass(frozen=True)
class Change(Generic[T]):
    """One change of the cache: ``old`` is None for ADDED, ``new`` is None for DELETED."""

    kind: str
    key: str
    old: T | None
    new: T | None


class WatchCache(Generic[T]):
    """Objects of one resource (optionally one namespace / selector), kept current by a watch.

    ``view`` turns raw JSON into what the cache holds (e.g. ``views.Service.from_raw``); an object
    it rejects is logged and left out. ``on_change`` runs in the cache's thread, after the cache
    was updated; it should only queue work (``KeyQueue.add``).
    """

    @overload
    def __init__(
        self: WatchCache[Raw],
        api: KubeApi,
        res: Resource,
        *,
        namespace: str | None = ...,
        label_selector: str | None = ...,
        field_selector: str | None = ...,
        on_change: Callable[[Change[Raw]], None] | None = ...,
        view: None = ...,
        watch_timeout: int = ...,
        backoff: Backoff | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: WatchCache[T],
        api: KubeApi,
        res: Resource,
        *,
        namespace: str | None = ...,
        label_selector: str | None = ...,
        field_selector: str | None = ...,
        on_change: Callable[[Change[T]], None] | None = ...,
        view: Callable[[Raw], T],
        watch_timeout: int = ...,
        backoff: Backoff | None = ...,
    ) -> None: ...

    def __init__(
        self,
        api: KubeApi,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        on_change: Callable[[Change[Any]], None] | None = None,
        view: Callable[[Raw], Any] | None = None,
        watch_timeout: int = 300,
        backoff: Backoff | None = None,
    ) -> None:
        self.api = api
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._on_change = on_change
        self._view = view
        self._watch_timeout = watch_timeout
        self._backoff = backoff or Backoff(initial=0.2, maximum=30.0)
        self._lock = threading.Lock()
        self._objects: dict[str, Any] = {}
        self._versions: dict[str, str] = {}
        self._rv = ""
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None
        self.relists = 0
        """Lists made so far (1 after the first sync)."""
        self.last_error: KubeError | None = None
        """The most recent list/watch failure (None until one happens)."""

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> WatchCache[T]:
        """Start the background list/watch thread (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"watch:{self.res}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching (the cache keeps its content); returns once the thread ended."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once the first list was loaded (False on timeout)."""
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    # --- reads -----------------------------------------------------------------------------------

    def get(self, key: str) -> T | None:
        """The object with ``namespace/name`` (or ``name``), or None."""
        with self._lock:
            obj: T | None = self._objects.get(key)
            return obj

    def items(self) -> list[T]:
        """A snapshot of every cached object."""
        with self._lock:
            return list(self._objects.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._objects)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    @property
    def resource_version(self) -> str:
        """The last resourceVersion the cache has seen (list, event or bookmark)."""
        return self._rv

    # --- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                self.watch_once()
                self._backoff.reset()
            except Gone:
                log.info("watch %s: resourceVersion %s is gone; relisting", self.res, self._rv)
                metrics.kube_watch_failed(str(self.res), "Gone")
                need_list = True
            except KubeError as exc:
                if self._stop.is_set():
                    break
                self.last_error = exc
                metrics.kube_watch_failed(str(self.res), exc.reason)
                delay = max(self._backoff.next(), exc.retry_after or 0.0)  # 429 Retry-After
                log.warning("watch %s failed (%s); retrying in %.2fs", self.res, exc, delay)
                self._stop.wait(delay)

    def relist(self) -> None:
        """List everything and reconcile the cache with it (one iteration of the loop)."""
        items, rv = self.api.list(
            self.res,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        fresh: dict[str, tuple[str, Raw]] = {}
        for raw in items:
            fresh[object_key(raw)] = (_rv_of(raw), raw)
        with self._lock:
            gone = [key for key in self._objects if key not in fresh]
        for key in gone:
            self._apply(DELETED, key, None, "")
        for key, (version, raw) in fresh.items():
            self._apply(ADDED, key, raw, version)
        self._rv = rv
        self.relists += 1
        metrics.kube_watch_relisted(str(self.res), objects=len(self))
        self._synced.set()
        self._notify(Change(RESYNC, "", None, None))

    def watch_once(self) -> None:
        """One watch request from the current RV until it ends (one iteration of the loop)."""
        stream = self.api.watch(
            self.res,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=self._rv,
            timeout_seconds=self._watch_timeout,
            allow_bookmarks=True,
        )
        self._stream = stream
        try:
            if self._stop.is_set():
                return
            for kind, raw in stream:
                version = _rv_of(raw)
                if kind in (ADDED, MODIFIED, DELETED):
                    self._apply(kind, object_key(raw), raw, version)
                if version:
                    self._rv = version
                if self._stop.is_set():
                    return
        finally:
            self._stream = None
            stream.close()
        metrics.kube_cache_size(str(self.res), len(self))

    def _apply(self, kind: str, key: str, raw: Raw | None, version: str) -> None:
        """Update the cache for one event and notify (skipping replays of what we hold)."""
        with self._lock:
            old = self._objects.get(key)
            if kind == DELETED:
                if key not in self._objects:
                    return
                del self._objects[key]
                self._versions.pop(key, None)
                new = None
            else:
                if raw is None or (old is not None and self._versions.get(key) == version):
                    return
                try:
                    new = self._view(raw) if self._view is not None else raw
                except (ViewError, ValueError, TypeError, KeyError) as exc:
                    log.warning("watch %s: ignoring malformed %s: %s", self.res, key, exc)
                    return
                self._objects[key] = new
                self._versions[key] = version
                kind = MODIFIED if old is not None else ADDED
        self._notify(Change(kind, key, old, new))

    def _notify(self, change: Change[Any]) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(change)
        except Exception:  # a consumer's bug must not kill the watch
            log.exception("watch %s: on_change failed for %s %s", self.res, change.kind, change.key)


def _rv_of(raw: Raw) -> str:
    meta = raw.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""


__all__ = ["ADDED", "DELETED", "MODIFIED", "RESYNC", "Change", "WatchCache"]
