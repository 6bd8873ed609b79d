"""The manager process: watch caches, leader election, and the worker that runs batches.

Caches run whether or not this manager leads (a standby is warm and takes over fast). Only the
leader runs a worker; each term starts from scratch: a fresh :class:`Reconciler` rebuilt from a
fresh list of Services and Eips (a standby's cache may lag the last writes of the old leader),
and a fresh queue. Losing leadership clears the fence at once, so no further write leaves this
process, then stops the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from openelb import metrics
from openelb.config import ManagerSettings
from openelb.ipam import RouterIdRange
from openelb.kube.client import KubeApi
from openelb.kube.events import EventRecorder
from openelb.kube.leases import LeaseElector
from openelb.kube.queueing import KeyQueue, ShutDown
from openelb.kube.resources import EIPS, NAMESPACES, SERVICES
from openelb.kube.watching import WatchCache
from openelb.manager.controller import EIPS_KEY, NAMESPACE_PREFIX, Controller
from openelb.manager.reconciler import Reconciler, is_ours
from openelb.manager.writing import FencedWriter

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
"""Seconds before a term whose worker failed unexpectedly rebuilds and starts again."""


class _ListedStore:
    """A fresh list served like a cache, for the rebuild at the start of a term."""

    def __init__(self, items: list[dict[str, Any]], cache: WatchCache[Any]) -> None:
        self._items = items
        self._cache = cache

    def get(self, key: str) -> Any:
        return self._cache.get(key)

    def items(self) -> list[dict[str, Any]]:
        return self._items


class Manager:
    """One manager process: caches, elector and (while leading) the worker."""

    def __init__(self, api: KubeApi, settings: ManagerSettings) -> None:
        self.api = api
        self.settings = settings
        self.identity = settings.leader.identity or f"{socket.gethostname()}-{os.getpid()}"
        self.leading = threading.Event()
        """Set while this manager leads; every write checks it."""
        self.synced = threading.Event()
        """Set once a term has rebuilt its state and queued every key."""
        self.writers: list[FencedWriter] = []
        """The writer of every term so far (their ``attempts`` say who wrote)."""
        self._queue: KeyQueue | None = None
        self._busy = False
        self._controller: Controller | None = None
        self._worker: threading.Thread | None = None
        self._term_stop = threading.Event()
        self.services = WatchCache(api, SERVICES, on_change=self._service_changed)
        self.eips = WatchCache(api, EIPS, on_change=self._eip_changed)
        self.namespaces = WatchCache(api, NAMESPACES, on_change=self._namespace_changed)
        self.events = EventRecorder(api, component="openelb-manager", host=self.identity)
        self.elector = LeaseElector(
            api,
            name=settings.leader.lease_name,
            namespace=settings.leader.lease_namespace,
            identity=self.identity,
            lease_duration=settings.leader.lease_duration,
            renew_deadline=settings.leader.renew_deadline,
            retry_period=settings.leader.retry_period,
            on_started_leading=self._started_leading,
            on_stopped_leading=self._stopped_leading,
        )

    # --- lifecycle -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; then stop leading (releasing the Lease) and the caches."""
        caches = (self.services, self.eips, self.namespaces)
        for cache in caches:
            cache.start()
        try:
            if self.settings.leader.enabled:
                self.elector.run(stop)
            else:
                self._started_leading()
                stop.wait()
        finally:
            self._stopped_leading()
            for cache in caches:
                cache.stop()
            self.events.close(timeout=1.0)

    def _started_leading(self) -> None:
        log.info("%s leads: rebuilding from the API", self.identity)
        self._term_stop = threading.Event()
        self._queue = KeyQueue()
        self.synced.clear()
        self.leading.set()
        self._worker = threading.Thread(
            target=self._work,
            args=(self._queue, self._term_stop),
            name="openelb-manager-worker",
            daemon=True,
        )
        self._worker.start()

    def _stopped_leading(self) -> None:
        if not self.leading.is_set() and self._worker is None:
            return
        self.leading.clear()  # the fence: no write leaves after this line
        log.info("%s stopped leading: writes stopped", self.identity)
        self._term_stop.set()
        queue, worker = self._queue, self._worker
        self._queue, self._worker = None, None
        if queue is not None:
            queue.shutdown()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10)

    def idle(self) -> bool:
        """Leading, rebuilt, and nothing queued, delayed or in progress (tests wait for it)."""
        return not self.activity()

    def activity(self) -> list[str]:
        """What keeps this manager from being idle, one line per reason (empty: idle).

        Names the keys queued, waiting for a retry (with their failure counts) or in progress,
        so a test that times out waiting for idle says what is stuck and why.
        """
        queue = self._queue
        controller = self._controller
        reasons: list[str] = []
        if not self.leading.is_set():
            reasons.append("not leading")
        if not self.synced.is_set():
            reasons.append("not rebuilt yet")
        if queue is None or controller is None:
            reasons.append("no worker")
            return reasons
        if controller.eips_behind:
            reasons.append(controller.describe_eips())
        if self._busy:
            reasons.append("a batch is running")
        snapshot = queue.snapshot()
        failures = dict(snapshot.failures)
        if snapshot.queued:
            reasons.append(f"queued: {_keys(snapshot.queued)}")
        if snapshot.processing:
            reasons.append(f"in progress: {_keys(snapshot.processing)}")
        if snapshot.delayed:
            waiting = [
                f"{key} in {left:.2f} s"
                + (f" after {failures[key]} failures" if key in failures else "")
                for key, left in snapshot.delayed
            ]
            reasons.append(f"delayed: {_keys(waiting)}")
        return reasons

    @property
    def write_attempts(self) -> int:
        """Write requests this process sent, over all its terms."""
        return sum(writer.attempts for writer in self.writers)

    # --- the worker ----------------------------------------------------------------------------

    def _work(self, queue: KeyQueue, stop: threading.Event) -> None:
        """Run the term; an unexpected error restarts it from a fresh rebuild (still leading)."""
        while not stop.is_set():
            try:
                controller = self._begin_term(queue, stop)
                if controller is None:
                    return
                self.synced.set()
                try:
                    while not stop.is_set():
                        self._run_once(controller, queue)
                finally:
                    controller.close()
            except ShutDown:
                return
            except Exception:
                log.exception("manager worker failed; rebuilding in %.0f s", RESTART_DELAY)
                self.synced.clear()
                stop.wait(RESTART_DELAY)

    def _begin_term(self, queue: KeyQueue, stop: threading.Event) -> Controller | None:
        for cache in (self.services, self.eips, self.namespaces):
            while not cache.wait_synced(1.0):
                if stop.is_set():
                    return None
        services, _ = self.api.list(SERVICES)
        eips, _ = self.api.list(EIPS)
        ipam = self.settings.ipam
        reconciler = Reconciler(
            router_id_range=RouterIdRange(
                ipam.router_id_first, ipam.router_id_last, frozenset(ipam.router_id_reserved)
            )
        )
        writer = FencedWriter(self.api, leading=self.leading.is_set)
        self.writers.append(writer)
        controller = Controller(
            services=_ListedStore(services, self.services),
            eips=_ListedStore(eips, self.eips),
            namespaces=self.namespaces,
            writer=writer,
            events=self.events,
            reconciler=reconciler,
            write_concurrency=self.settings.write_concurrency,
        )
        report, keys = controller.start()
        self._controller = controller
        # From now on the caches are the source; the lists only served the rebuild.
        controller.use_stores(services=self.services, eips=self.eips)
        log.info(
            "rebuilt: %d Services, %d addresses restored, %d conflicts, %d dropped",
            report.services,
            report.restored,
            len(report.conflicts),
            len(report.dropped),
        )
        for line in report.conflicts:
            log.warning("conflict on start: %s", line)
        metrics.manager_managed(report.services)
        for key in keys:
            queue.add(key)
        return controller

    def _run_once(self, controller: Controller, queue: KeyQueue) -> None:
        """Take up to a batch of keys, reconcile them, hand failures back to the queue."""
        timeout = 0.5 if not controller.eips_behind else max(0.01, controller.eips_due_in())
        first = queue.get(timeout=min(0.5, timeout))
        if first is None:
            # A failed Eip status write is retried here, by the controller's own backoff.
            self._busy = True
            try:
                controller.flush()
            finally:
                self._busy = False
            return
        self._busy = True
        try:
            self._run_batch(controller, queue, first)
        finally:
            self._busy = False

    def _run_batch(self, controller: Controller, queue: KeyQueue, first: str) -> None:
        batch = [first]
        while len(batch) < self.settings.batch_size:
            key = queue.get(timeout=0)
            if key is None:
                break
            batch.append(key)
        result = controller.run_batch(batch, flush=len(queue) == 0)
        for key in batch:
            queue.done(key)
            if key in result.retry:
                queue.retry(key)
            else:
                queue.forget(key)
        for key in result.retry.difference(batch):
            queue.retry(key)
        for key, delay in result.later.items():
            queue.add_after(key, delay)

    # --- cache callbacks -----------------------------------------------------------------------

    def _add(self, key: str) -> None:
        queue = self._queue
        if queue is not None:
            queue.add(key)

    def _service_changed(self, change: Any) -> None:
        if not change.key:  # RESYNC after a relist: its differences came as changes already
            return
        raw = change.new if change.new is not None else change.old
        raw = getattr(raw, "raw", raw)
        if change.new is None or raw is None or is_ours(raw) or _was_ours(change.old):
            self._add(str(change.key))

    def _eip_changed(self, change: Any) -> None:
        if not change.key:
            return
        if (
            change.old is not None
            and change.new is not None
            and not _pool_changed(change.old, change.new)
        ):
            return  # only the status moved (our own write): nothing to re-decide
        self._add(EIPS_KEY)

    def _namespace_changed(self, change: Any) -> None:
        if not change.key:
            return
        self._add(f"{NAMESPACE_PREFIX}{change.key}")


def _keys(keys: Any, limit: int = 10) -> str:
    """The first ``limit`` keys, and how many more."""
    items = list(keys)
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _pool_changed(old: Any, new: Any) -> bool:
    """Whether an Eip changed in a way that matters to IPAM (spec, annotations, deletion)."""
    old_raw, new_raw = getattr(old, "raw", old), getattr(new, "raw", new)
    old_meta, new_meta = old_raw.get("metadata", {}), new_raw.get("metadata", {})
    return bool(
        old_raw.get("spec") != new_raw.get("spec")
        or old_meta.get("annotations") != new_meta.get("annotations")
        or old_meta.get("deletionTimestamp") != new_meta.get("deletionTimestamp")
        or old_meta.get("creationTimestamp") != new_meta.get("creationTimestamp")
    )


def _was_ours(old: Any) -> bool:
    raw = getattr(old, "raw", old)
    return isinstance(raw, dict) and is_ours(raw)
