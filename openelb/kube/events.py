"""Kubernetes Events about the objects openelb manages, aggregated and rate limited.

Why like client-go: a Service that cannot get an IP is reconciled again and again; writing a new
Event each time floods etcd and ``kubectl describe``. So the same event (object, type, reason,
message) becomes one Event whose ``count`` and ``lastTimestamp`` move, and each object has a
token bucket (burst, then one per interval) so a hot loop cannot spam. Writing happens in a
background thread: a slow apiserver never blocks a reconciler, and a full queue drops events
(counted) rather than memory.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openelb import metrics
from openelb.kube.client import KubeApi
from openelb.kube.errors import KubeError, NotFound
from openelb.kube.resources import EVENTS

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True)
class _Pending:
    involved: dict[str, str]
    namespace: str
    type: str
    reason: str
    message: str
    at: str


@dataclass
class _Recorded:
    name: str
    count: int


class _TokenBucket:
    def __init__(self, burst: int, refill_seconds: float) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.refill_seconds)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class EventRecorder:
    """Records core/v1 Events as ``component`` on ``host``."""

    def __init__(
        self,
        api: KubeApi,
        *,
        component: str,
        host: str = "",
        burst: int = 25,
        refill_seconds: float = 300.0,
        queue_size: int = 1000,
        max_tracked: int = 4096,
    ) -> None:
        self.api = api
        self.component = component
        self.host = host
        self._burst = burst
        self._refill = refill_seconds
        self._buckets: dict[str, _TokenBucket] = {}
        self._recorded: dict[tuple[str, ...], _Recorded] = {}
        self._max_tracked = max_tracked
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._in_flight = 0

    def event(self, obj: Any, type: str, reason: str, message: str) -> bool:
        """Record an event about ``obj`` (raw dict or a view with ``.raw``); never blocks.

        Returns False when it was dropped (rate limit or full queue).
        """
        if type not in (NORMAL, WARNING):
            raise ValueError(f"event type must be {NORMAL} or {WARNING}, not {type!r}")
        raw = getattr(obj, "raw", obj)
        involved = _involved(raw)
        key = f"{involved.get('namespace', '')}/{involved['kind']}/{involved['name']}"
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_tracked:
                    self._buckets.pop(next(iter(self._buckets)))  # oldest object: memory bound
                bucket = self._buckets[key] = _TokenBucket(self._burst, self._refill)
            allowed = bucket.take()
        if not allowed:
            metrics.kube_event("dropped")
            return False
        pending = _Pending(
            involved=involved,
            namespace=involved.get("namespace") or "default",
            type=type,
            reason=reason,
            message=message[:1024],
            at=_now(),
        )
        self._ensure_thread()
        with self._idle:
            self._in_flight += 1
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
            metrics.kube_event("dropped")
            return False
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer thread."""
        self.flush(timeout)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._writer, name=f"events:{self.component}", daemon=True
                )
                self._thread.start()

    def _writer(self) -> None:
        while True:
            pending = self._queue.get()
            if pending is None:
                return
            try:
                self._write(pending)
            except KubeError as exc:
                metrics.kube_event("failed")
                log.warning(
                    "event %s on %s not recorded: %s", pending.reason, pending.involved, exc
                )
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

    def _write(self, pending: _Pending) -> None:
        ident = (
            pending.involved.get("uid", ""),
            pending.involved["kind"],
            pending.namespace,
            pending.involved["name"],
            pending.type,
            pending.reason,
            pending.message,
        )
        seen = self._recorded.get(ident)
        if seen is not None:
            try:
                self.api.patch(
                    EVENTS,
                    seen.name,
                    {"count": seen.count + 1, "lastTimestamp": pending.at},
                    namespace=pending.namespace,
                )
                seen.count += 1
                metrics.kube_event("aggregated")
                return
            except NotFound:
                del self._recorded[ident]  # expired (events have a TTL): start a new one
        name = f"{pending.involved['name']}.{uuid.uuid4().hex[:16]}"
        body = {
            "metadata": {"name": name, "namespace": pending.namespace},
            "involvedObject": pending.involved,
            "type": pending.type,
            "reason": pending.reason,
            "message": pending.message,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
            "firstTimestamp": pending.at,
            "lastTimestamp": pending.at,
            "count": 1,
        }
        self.api.create(EVENTS, body, namespace=pending.namespace)
        if len(self._recorded) >= self._max_tracked:
            self._recorded.pop(next(iter(self._recorded)))
        self._recorded[ident] = _Recorded(name=name, count=1)
        metrics.kube_event("created")


def _involved(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not isinstance(raw.get("metadata"), dict):
        raise ValueError("an event needs the object it is about (with metadata)")
    meta = raw["metadata"]
    if not raw.get("kind") or not meta.get("name"):
        raise ValueError("the object of an event needs kind and metadata.name")
    involved = {
        "kind": str(raw["kind"]),
        "apiVersion": str(raw.get("apiVersion") or ""),
        "name": str(meta["name"]),
        "uid": str(meta.get("uid") or ""),
        "resourceVersion": str(meta.get("resourceVersion") or ""),
    }
    if meta.get("namespace"):
        involved["namespace"] = str(meta["namespace"])
    return {k: v for k, v in involved.items() if v}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["NORMAL", "WARNING", "EventRecorder"]
