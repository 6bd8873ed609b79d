"""One batch of reconciling: read the caches, decide, write in a crash-safe order.

Safety does not rest on the order of writes but on three rules: a Service's stored status is the
truth (a restart rebuilds IPAM from it), an address given up is not handed out while another
Service's stored status still shows it (the reconciler's published index), and every write is
conditional on the resourceVersion it was decided from and fenced by leadership. The order then
keeps the stored state tidy at every instant:

1. finalizers first, so a Service that gets an address cannot be deleted without its release;
2. Eip statuses (``used`` doubles as a reservation: a manager killed before the Service's status
   write gives it the same address after a restart) before the Service statuses of the batch;
   under load they are coalesced to one write per ``eip_interval``, since one write of a pool's
   ``used`` covers many Services, and always written when the queue runs dry;
3. Service statuses; each success tells the reconciler the address is now published;
4. finalizer removals last, after an Eip write that no longer lists the address.

A failed write leaves the key for a retry; IPAM already holds the decision in memory, so the
retry reaches the same answer. A 409 means the cache lags the stored object (a dropped watch, an
apiserver restart, a user's edit): the object is read afresh so the retry does not conflict
again. A failed Eip status write is retried by the controller itself, with its own backoff, not
through the queue: the queue's ``eips`` key means "re-read every Eip and re-decide every
Service", far more than a status write needs. The controller is driven by one worker thread; it
is the only user of the :class:`Reconciler`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from openelb import metrics
from openelb.ipam import ServiceKey, parse_ip
from openelb.kube.backoff import Backoff
from openelb.kube.errors import Conflict, KubeError, NotFound
from openelb.manager.decisions import EventNote, FinalizerChange, ServiceDecision, StartReport
from openelb.manager.eipstatus import eip_finalizer_change
from openelb.manager.optin import Raw
from openelb.manager.reconciler import Reconciler, is_ours
from openelb.manager.writing import FencedWriter, NotLeadingError

log = logging.getLogger(__name__)

EIPS_KEY = "eips"
"""Queue key: the set of Eips changed (re-read all; they are few)."""
NAMESPACE_PREFIX = "namespace/"
"""Queue key prefix: a Namespace's labels changed."""


class Store(Protocol):
    """What the controller reads: a watch cache of raw objects by ``ns/name`` or ``name``."""

    def get(self, key: str) -> Any: ...

    def items(self) -> Any: ...


class EventSink(Protocol):
    """Where Events go (``openelb.kube.events.EventRecorder``)."""

    def event(self, obj: Any, type: str, reason: str, message: str) -> Any: ...


@dataclass
class BatchResult:
    """What a batch left to do."""

    retry: set[str] = field(default_factory=set)
    """Keys to retry with backoff (a write failed)."""
    later: dict[str, float] = field(default_factory=dict)
    """Keys to reconcile again after a delay (waiting for an address to be let go)."""
    writes: int = 0
    """API writes made."""


def service_queue_key(key: ServiceKey) -> str:
    """Queue key of a Service."""
    return f"{key.namespace}/{key.name}"


def raw_of(item: Any) -> Raw | None:
    """A cache entry as raw JSON (caches may hold views carrying ``raw``)."""
    if item is None:
        return None
    if isinstance(item, Mapping):
        return item
    raw = getattr(item, "raw", None)
    return raw if isinstance(raw, Mapping) else None


def _rv(raw: Raw | None) -> int:
    try:
        return int((raw or {}).get("metadata", {}).get("resourceVersion", -1))
    except (TypeError, ValueError):
        return -1


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Controller:
    """Applies the reconciler's decisions to the API, in batches."""

    def __init__(
        self,
        *,
        services: Store,
        eips: Store,
        namespaces: Store,
        writer: FencedWriter,
        events: EventSink,
        reconciler: Reconciler | None = None,
        clock: Callable[[], str] = _now,
        eip_interval: float = 0.25,
        write_concurrency: int = 8,
    ) -> None:
        self.reconciler = reconciler or Reconciler()
        self._services = services
        self._eips = eips
        self._namespaces = namespaces
        self._writer = writer
        self._events = events
        self._clock = clock
        self._lock = threading.Lock()
        self._pool = (
            ThreadPoolExecutor(write_concurrency, thread_name_prefix="openelb-manager-write")
            if write_concurrency > 1
            else None
        )
        self._eip_interval = eip_interval
        self._last_eip_flush = 0.0
        self._eip_backoff = Backoff(initial=0.05, maximum=2.0)
        """Between failed Eip status writes (injected 500s must not spin the worker)."""
        self._eip_retry_at = 0.0
        """Monotonic time before which a failed Eip status write is not tried again."""
        self._observed_pools: set[str] = set()
        self._seen_generation = -1
        self._eips_dirty = True
        """Eip statuses may differ from what is stored (recomputing them costs O(addresses))."""
        self._written: dict[str, Raw] = {}
        """Objects as our own writes returned them: newer than the cache until it catches up."""

    # --- start ---------------------------------------------------------------------------------

    def start(self) -> tuple[StartReport, list[str]]:
        """Rebuild from the caches; returns the report and every key to reconcile."""
        services = [raw for item in self._services.items() if (raw := raw_of(_value(item)))]
        report = self.reconciler.start(
            services=services,
            eips=self._all(self._eips),
            namespaces=self._all(self._namespaces),
        )
        keys = [service_queue_key(_key(raw)) for raw in services if is_ours(raw)]
        return report, [EIPS_KEY, *keys]

    def close(self) -> None:
        """Stop the write threads (after the term)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def use_stores(self, *, services: Store, eips: Store) -> None:
        """Read from these from now on (the watch caches, after a rebuild from fresh lists)."""
        self._services = services
        self._eips = eips

    # --- one batch -----------------------------------------------------------------------------

    def run_batch(self, keys: Iterable[str], *, flush: bool = True) -> BatchResult:
        """Reconcile ``keys`` (Service keys and control keys) with crash-safe write order.

        ``flush`` False lets Eip status writes wait for ``eip_interval`` (more work is queued).
        """
        started = time.perf_counter()
        result = BatchResult()
        service_keys: dict[str, None] = {}
        for key in keys:
            if key == EIPS_KEY:
                self._eips_dirty = True
                self.reconciler.set_eips(self._all(self._eips))
                service_keys.update(dict.fromkeys(self._our_service_keys()))
                service_keys.setdefault(EIPS_KEY)
            elif key.startswith(NAMESPACE_PREFIX):
                name = key.removeprefix(NAMESPACE_PREFIX)
                self.reconciler.set_namespace(name, raw_of(self._namespaces.get(name)))
                service_keys.update(dict.fromkeys(self._our_service_keys(namespace=name)))
            else:
                service_keys.setdefault(key)
        service_keys.pop(EIPS_KEY, None)

        decided: list[tuple[str, Raw | None, ServiceDecision]] = []
        for key in service_keys:
            raw = self._latest_service(key)
            namespace, _, name = key.partition("/")
            decision = self.reconciler.reconcile(ServiceKey(namespace, name), raw)
            decided.append((key, raw, decision))
            if decision.retry_after is not None:
                result.later[key] = decision.retry_after
        try:
            self._apply(decided, result, flush=flush)
        except NotLeadingError:
            log.info("leadership lost mid-batch: stopped writing")
            result.retry.update(service_keys)
        metrics.manager_batch_done(
            seconds=time.perf_counter() - started, services=len(service_keys)
        )
        return result

    def _apply(
        self,
        decided: list[tuple[str, Raw | None, ServiceDecision]],
        result: BatchResult,
        *,
        flush: bool,
    ) -> None:
        adding = [(k, raw, d) for k, raw, d in decided if raw is not None]
        ready = [
            (key, current, decision)
            for key, current, decision in self._each(
                adding, lambda key, raw, decision: self._add_finalizer(key, raw, decision, result)
            )
            if current is not None
        ]
        releasing = any(d.finalizer is FinalizerChange.REMOVE for _, _, d in decided)
        eips_ok = self._flush_eips(result, force=flush or releasing)
        published = self._each(
            ready, lambda key, raw, decision: self._finish(key, raw, decision, result, eips_ok)
        )
        for _, latest, decision in published:
            if latest is not None and decision.ingress is not None:
                self.reconciler.published(_key(latest), decision.ingress)
        for key, seen, decision in decided:
            if seen is not None:
                self._record(seen, decision, written=key not in result.retry)
        self._observe(decided)

    def _each(
        self,
        items: list[tuple[str, Raw, ServiceDecision]],
        work: Callable[[str, Raw, ServiceDecision], Raw | None],
    ) -> list[tuple[str, Raw | None, ServiceDecision]]:
        """Run ``work`` for every Service, in parallel: writes to different objects are
        independent, and a round trip per write is what bounds throughput."""
        if len(items) <= 1 or self._pool is None:
            return [(key, work(key, raw, decision), decision) for key, raw, decision in items]
        futures = [
            (key, self._pool.submit(work, key, raw, decision), decision)
            for key, raw, decision in items
        ]
        # NotLeadingError propagates from .result(): the batch stops (the others stop too,
        # each at its own fence check).
        return [(key, future.result(), decision) for key, future, decision in futures]

    def _add_finalizer(
        self, key: str, raw: Raw, decision: ServiceDecision, result: BatchResult
    ) -> Raw | None:
        if decision.finalizer is not FinalizerChange.ADD:
            return raw
        return self._write(key, result, self._writer.set_finalizer, raw, present=True)

    def _finish(
        self, key: str, raw: Raw, decision: ServiceDecision, result: BatchResult, eips_ok: bool
    ) -> Raw | None:
        """Status write, then finalizer removal; returns the object after the status write."""
        latest: Raw | None = raw
        if decision.writes_status:
            latest = self._write(
                key, result, self._writer.set_service_status, raw, decision, now=self._clock()
            )
            if latest is None:
                return None
        if decision.finalizer is FinalizerChange.REMOVE and latest is not None:
            if not eips_ok:
                with self._lock:
                    result.retry.add(key)
                return latest
            self._write(key, result, self._writer.set_finalizer, latest, present=False)
        return latest

    def flush(self) -> BatchResult:
        """Write Eip statuses that are behind (the worker calls it when the queue runs dry)."""
        result = BatchResult()
        with contextlib.suppress(NotLeadingError):
            self._flush_eips(result, force=True)
        return result

    @property
    def eips_behind(self) -> bool:
        """Some Eip status is not written yet."""
        return self._eips_dirty or self.reconciler.generation != self._seen_generation

    def eips_due_in(self) -> float:
        """Seconds until a behind Eip status write may be tried (0: now)."""
        return max(0.0, self._eip_retry_at - time.monotonic())

    def describe_eips(self) -> str:
        """Why Eip statuses are behind, for a person reading a timeout."""
        if not self.eips_behind:
            return "Eip statuses written"
        failures = self._eip_backoff.failures
        return (
            f"Eip statuses behind (generation {self.reconciler.generation}, written "
            f"{self._seen_generation}, {failures} failed writes in a row, next try in "
            f"{self.eips_due_in():.2f} s)"
        )

    def _flush_eips(self, result: BatchResult, *, force: bool) -> bool:
        """Write changed Eip statuses, at most every ``eip_interval`` unless ``force``.

        An Eip status reports; it is not the truth (Service statuses are), so under load its
        writes are coalesced: one write of a pool's ``used`` covers many Services.
        """
        if self.reconciler.generation != self._seen_generation:
            self._seen_generation = self.reconciler.generation
            self._eips_dirty = True
        if not self._eips_dirty:
            return True
        now = time.monotonic()
        if now < self._eip_retry_at:
            return False  # the last write failed: wait out the backoff, even when forced
        if not force and now - self._last_eip_flush < self._eip_interval:
            return True
        self._last_eip_flush = now
        self.reconciler.refresh_router_ids()
        ok = self._write_eips(result)
        self._eips_dirty = not ok
        if ok:
            self._eip_backoff.reset()
            self._eip_retry_at = 0.0
        else:
            self._eip_retry_at = time.monotonic() + self._eip_backoff.next()
        return ok

    def _write(
        self,
        key: str,
        result: BatchResult,
        write: Callable[..., dict[str, Any]],
        *args: Any,
        **kwargs: Any,
    ) -> Raw | None:
        """One write; on failure ``key`` goes to ``result.retry`` (Service keys only: an Eip's
        failed write is retried by :meth:`_flush_eips`)."""
        retry = not key.startswith(EIP_PREFIX)
        try:
            updated = write(*args, **kwargs)
        except NotLeadingError:
            raise
        except NotFound:
            # Gone: the cache's DELETED event brings the key back with nothing to write.
            self._written.pop(key, None)
            return None
        except Conflict:
            metrics.manager_write_failed("conflict")
            self._refresh(key)
            if retry:
                with self._lock:
                    result.retry.add(key)
            return None
        except KubeError as exc:
            metrics.manager_write_failed("error")
            log.warning("write for %s failed: %s", key, exc)
            if retry:
                with self._lock:
                    result.retry.add(key)
            return None
        with self._lock:
            result.writes += 1
            self._written[key] = updated
        return updated

    def _refresh(self, key: str) -> None:
        """After a 409: remember the stored object, so the retry starts from it even while the
        cache lags (``_latest`` takes the newer of the two)."""
        try:
            if key.startswith(EIP_PREFIX):
                fresh = self._writer.read_eip(key.removeprefix(EIP_PREFIX))
            else:
                namespace, _, name = key.partition("/")
                fresh = self._writer.read_service(namespace, name)
        except NotFound:
            self._written.pop(key, None)
            return
        except KubeError as exc:  # the retry will read the cache instead
            log.debug("re-reading %s after a conflict failed: %s", key, exc)
            self._written.pop(key, None)
            return
        self._written[key] = fresh

    def _write_eips(self, result: BatchResult) -> bool:
        ok = True
        now = self._clock()
        for name in self.reconciler.eip_names():
            raw = self._latest(self._eips, name)
            if raw is None:
                continue
            status = self.reconciler.eip_status(name, now=now)
            if status is None:
                continue
            if status != (raw.get("status") or {}):
                written = self._write(
                    _eip_key(name), result, self._writer.set_eip_status, raw, status
                )
                if written is None:
                    ok = False
                    continue
                raw = written
            if not self._eip_finalizer(name, raw, status, result):
                ok = False
            for note in self.reconciler.eip_events(name):
                self._emit(raw, note)
        return ok

    def _eip_finalizer(
        self, name: str, raw: Raw, status: Mapping[str, Any], result: BatchResult
    ) -> bool:
        """Hold a live Eip's deletion; let a deleted one go once it holds nothing. False: the
        write failed."""
        change = eip_finalizer_change(raw, usage=int(status.get("usage") or 0))
        if change is FinalizerChange.KEEP:
            return True
        present = change is FinalizerChange.ADD
        written = self._write(
            _eip_key(name), result, self._writer.set_eip_finalizer, raw, present=present
        )
        if written is not None and not present:
            log.info("Eip %s holds no address any more: its deletion goes ahead", name)
        return written is not None

    def _record(self, raw: Raw, decision: ServiceDecision, *, written: bool) -> None:
        """Warnings always (they are reported once); the rest only once the write is done."""
        for note in decision.events:
            if written or note.type == "Warning":
                self._emit(raw, note)

    def _emit(self, raw: Raw, note: EventNote) -> None:
        try:
            self._events.event(raw, note.type, note.reason, note.message)
        except KubeError as exc:  # an Event is best effort: never fail a reconcile for it
            log.debug("event %s on %s not recorded: %s", note.reason, _key(raw), exc)

    def _observe(self, decided: list[tuple[str, Raw | None, ServiceDecision]]) -> None:
        for _, _, decision in decided:
            for assigned in decision.allocated:
                metrics.ipam_allocated(pool=assigned.pool, family=assigned.family.value)
            for ip in decision.released:
                family, _ = parse_ip(ip)
                metrics.ipam_released(family=family.value)
            if decision.failure is not None and decision.events:
                metrics.ipam_allocation_failed(decision.failure.value)
        metrics.manager_managed(sum(1 for _ in self.reconciler.allocator.holdings.services()))
        metrics.manager_unassigned(self.reconciler.unassigned())
        pools = self.reconciler.allocator.pools
        for gone in self._observed_pools.difference(pools):
            metrics.ipam_pool_removed(gone)
        self._observed_pools = set(pools)
        for name, pool in pools.items():
            size = pool.range.size if pool.range else 0
            metrics.ipam_pool_observed(
                name, size=size, used=len(pool.held), free=pool.free if pool.range else 0
            )

    # --- reading -------------------------------------------------------------------------------

    def _latest_service(self, key: str) -> Raw | None:
        return self._latest(self._services, key)

    def _latest(self, store: Store, key: str) -> Raw | None:
        """The cache's object, or the one our last write returned when that is newer."""
        cached = raw_of(store.get(key))
        written_key = key if store is self._services else _eip_key(key)
        written = self._written.get(written_key)
        if cached is None:
            self._written.pop(written_key, None)
            return None
        if written is not None:
            if _rv(written) > _rv(cached):
                return written
            self._written.pop(written_key, None)  # the cache caught up: keep one copy
        return cached

    def _our_service_keys(self, namespace: str | None = None) -> list[str]:
        keys = []
        for item in self._services.items():
            raw = raw_of(_value(item))
            if raw is None or not is_ours(raw):
                continue
            key = _key(raw)
            if namespace is None or key.namespace == namespace:
                keys.append(service_queue_key(key))
        return keys

    @staticmethod
    def _all(store: Store) -> list[Raw]:
        return [raw for item in store.items() if (raw := raw_of(_value(item))) is not None]


EIP_PREFIX = "eip:"
"""Key prefix of an Eip among written objects (``:`` never occurs in a Service key)."""


def _eip_key(name: str) -> str:
    """Key of an Eip among written objects."""
    return f"{EIP_PREFIX}{name}"


def _value(item: Any) -> Any:
    """``items()`` may yield objects or (key, object) pairs."""
    if isinstance(item, tuple) and len(item) == 2:
        return item[1]
    return item


def _key(raw: Raw) -> ServiceKey:
    meta = raw.get("metadata", {})
    return ServiceKey(str(meta.get("namespace", "")), str(meta.get("name", "")))
