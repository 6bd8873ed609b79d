"""Leader election on a coordination.k8s.io Lease, and observation of other holders' Leases.

Why an own elector: the official client's ``LeaderElection`` thread dies on a connection error
without calling its stop hook, so the old leader keeps working while another takes over. Here:

- acquire and renew are conditional writes (PUT with the Lease's resourceVersion); a 409 means
  someone else wrote first, and we are not the leader;
- a leader that fails to renew stops leading (calls ``on_stopped_leading``) at once by default,
  and never later than ``renew_deadline`` after its last successful renewal, which is before
  any other candidate may consider the lease expired (``lease_duration`` after *it* saw that
  renewal); every request's timeout is cut to fit inside that deadline;
- expiry is judged on the local monotonic clock from when a change of the Lease was observed,
  never by comparing our clock with the writer's ``renewTime`` (clock skew);
- on graceful shutdown the leader stops its work, then releases the Lease (empty holder), so a
  follower takes over on its next retry instead of waiting for expiry.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openelb import metrics
from openelb.kube.client import KubeApi
from openelb.kube.errors import AlreadyExists, Conflict, KubeError, NotFound
from openelb.kube.resources import LEASES
from openelb.kube.views import Lease
from openelb.kube.watching import Change, WatchCache

log = logging.getLogger(__name__)

Hook = Callable[[], None]


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Campaign for the Lease ``namespace/name`` as ``identity`` until stopped.

    ``run(stop)`` blocks; it may lead several times (after losing the lease it campaigns again),
    calling ``on_started_leading`` / ``on_stopped_leading`` in its own thread each time. The hooks
    must return promptly: ``on_stopped_leading`` must have stopped the leader's work when it
    returns.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Hook | None = None,
        on_stopped_leading: Hook | None = None,
        jitter: float = 0.2,
        step_down_on_first_failure: bool = True,
        release_on_stop: bool = True,
    ) -> None:
        if not identity:
            raise ValueError("a leader election identity must not be empty")
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                "leader election needs 0 < retry_period < renew_deadline < lease_duration"
            )
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.jitter = jitter
        self.step_down_on_first_failure = step_down_on_first_failure
        """True: the first failed renewal ends leadership. False: retry until renew_deadline."""
        self.release_on_stop = release_on_stop
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._leading = False
        self._lease: dict[str, Any] | None = None
        self._observed_key: tuple[str, str] = ("", "")
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._rng = random.Random()
        self.transitions = 0
        """Times this elector started leading."""

    @property
    def is_leader(self) -> bool:
        """True between ``on_started_leading`` and ``on_stopped_leading``."""
        return self._leading

    @property
    def lease_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def observed_holder(self) -> str:
        """The holder in the last Lease this elector read or wrote ("" if none)."""
        return self._observed_key[0]

    # --- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Campaign and lead until ``stop`` is set; then stop leading and release the Lease."""
        try:
            while not stop.is_set():
                if self._leading:
                    self._renew_cycle(stop)
                else:
                    if self.try_acquire_or_renew():
                        self._start_leading()
                        continue
                    stop.wait(self._jittered(self.retry_period))
        finally:
            if self._leading:
                self._stop_leading("released")
                if self.release_on_stop:
                    self.release()

    def _renew_cycle(self, stop: threading.Event) -> None:
        """Wait one retry period, then renew; stop leading when that fails (per the policy)."""
        if stop.wait(self.retry_period):
            return
        while self._leading and not stop.is_set():
            left = self._last_renew + self.renew_deadline - time.monotonic()
            if left <= 0:
                self._stop_leading("renew-deadline")
                return
            if self.try_acquire_or_renew(deadline=left):
                return
            if self._observed_key[0] not in ("", self.identity):
                self._stop_leading("lost")
                return
            if self.step_down_on_first_failure:
                self._stop_leading("renew-failed")
                return
            stop.wait(min(self.retry_period / 4, max(0.0, left - 0.001)))

    def _start_leading(self) -> None:
        self._leading = True
        self.transitions += 1
        metrics.kube_leader_changed(self.lease_key, leading=True, transition="acquired")
        log.info("%s: started leading %s", self.identity, self.lease_key)
        if self._on_started is not None:
            self._on_started()

    def _stop_leading(self, transition: str) -> None:
        self._leading = False
        metrics.kube_leader_changed(self.lease_key, leading=False, transition=transition)
        log.info("%s: stopped leading %s (%s)", self.identity, self.lease_key, transition)
        if self._on_stopped is not None:
            self._on_stopped()

    # --- one attempt -----------------------------------------------------------------------------

    def try_acquire_or_renew(self, *, deadline: float | None = None) -> bool:
        """One attempt to take or keep the Lease; True if we hold it now.

        ``deadline`` (seconds) bounds the whole attempt: it caps each request's timeout.
        """
        started = time.monotonic()
        timeout = self.api.timeout if deadline is None else min(self.api.timeout, deadline)
        try:
            if self._leading and self._lease is not None:
                # Renew against the version we wrote last: one request, and a 409 is news.
                try:
                    self._write(self._lease, started, timeout=timeout)
                    return True
                except Conflict:
                    pass
            return self._acquire(started, timeout=self._remaining(started, timeout))
        except KubeError as exc:
            log.info("%s: lease %s attempt failed: %s", self.identity, self.lease_key, exc)
            return False

    def _acquire(self, started: float, *, timeout: float) -> bool:
        try:
            current = self.api.get(LEASES, self.name, namespace=self.namespace, timeout=timeout)
        except NotFound:
            return self._create(started, timeout=self._remaining(started, timeout))
        self._observe(current)
        spec = current.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        if holder and holder != self.identity and not self._expired(spec):
            return False
        try:
            self._write(current, started, timeout=self._remaining(started, timeout))
        except (Conflict, AlreadyExists):
            return False
        return True

    def _create(self, started: float, *, timeout: float) -> bool:
        now = _micro_now()
        body = {
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": _whole_seconds(self.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            created = self.api.create(LEASES, body, namespace=self.namespace, timeout=timeout)
        except AlreadyExists:
            return False
        self._wrote(created, started)
        return True

    def _write(self, current: dict[str, Any], started: float, *, timeout: float) -> None:
        spec = dict(current.get("spec") or {})
        now = _micro_now()
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = _whole_seconds(self.lease_duration)
        spec["renewTime"] = now
        body = {**current, "spec": spec}
        written = self.api.replace(LEASES, body, timeout=timeout)
        self._wrote(written, started)

    def _wrote(self, lease: dict[str, Any], started: float) -> None:
        # The renewal counts from when it was sent: others saw it no earlier than that.
        self._lease = lease
        self._last_renew = started
        self._observe(lease)

    def release(self) -> bool:
        """Give the Lease up (empty holder) if we hold it; True when released."""
        if self._lease is None:
            return False
        spec = dict(self._lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return False
        spec["holderIdentity"] = ""
        spec["leaseDurationSeconds"] = 1
        spec["renewTime"] = _micro_now()
        try:
            self._lease = self.api.replace(LEASES, {**self._lease, "spec": spec})
        except KubeError as exc:
            log.info(
                "%s: releasing %s failed (it will expire): %s", self.identity, self.lease_key, exc
            )
            return False
        log.info("%s: released %s", self.identity, self.lease_key)
        return True

    # --- expiry on the local clock ---------------------------------------------------------------

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        key = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
        if key != self._observed_key:
            self._observed_key = key
            self._observed_at = time.monotonic()

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return time.monotonic() >= self._observed_at + duration

    def _remaining(self, started: float, timeout: float) -> float:
        return max(0.05, timeout - (time.monotonic() - started))

    def _jittered(self, period: float) -> float:
        return period * (1.0 + self.jitter * self._rng.random())


def _whole_seconds(seconds: float) -> int:
    return max(1, round(seconds))


@dataclass(frozen=True)
class HolderState:
    """What a :class:`LeaseObserver` knows about one Lease."""

    name: str
    holder: str
    alive: bool
    """The holder renewed within its lease duration (by our monotonic clock)."""
    expires_in: float
    """Seconds until it counts as expired (<= 0 when expired)."""


class LeaseObserver:
    """Watch Leases (e.g. speakers' ``openelb-speaker-<node>``) and tell who is alive.

    Liveness is judged like the elector judges expiry: from the local time at which a renewal
    (a new ``renewTime``) was observed, plus the Lease's duration.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        prefix: str = "",
        label_selector: str | None = None,
        on_change: Callable[[Change[Lease]], None] | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.prefix = prefix
        self._on_change = on_change
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, float]] = {}
        self.cache: WatchCache[Lease] = WatchCache(
            api,
            LEASES,
            namespace=namespace,
            label_selector=label_selector,
            view=Lease.from_raw,
            on_change=self._changed,
            watch_timeout=watch_timeout,
        )

    def start(self) -> LeaseObserver:
        self.cache.start()
        return self

    def stop(self) -> None:
        self.cache.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self.cache.wait_synced(timeout)

    def _changed(self, change: Change[Lease]) -> None:
        lease = change.new
        if lease is not None and lease.name.startswith(self.prefix):
            with self._lock:
                seen = self._seen.get(lease.name)
                if seen is None or seen[0] != lease.renew_time:
                    self._seen[lease.name] = (lease.renew_time, time.monotonic())
        elif change.old is not None:
            with self._lock:
                self._seen.pop(change.old.name, None)
        if self._on_change is not None and (
            change.key == "" or change.key.split("/")[-1].startswith(self.prefix)
        ):
            self._on_change(change)

    def holders(self) -> dict[str, HolderState]:
        """Every observed Lease (matching the prefix) by name."""
        now = time.monotonic()
        out: dict[str, HolderState] = {}
        with self._lock:
            seen = dict(self._seen)
        for lease in self.cache.items():
            if not lease.name.startswith(self.prefix) or lease.name not in seen:
                continue
            expires_in = seen[lease.name][1] + lease.duration_seconds - now
            alive = bool(lease.holder) and lease.duration_seconds > 0 and expires_in > 0
            out[lease.name] = HolderState(lease.name, lease.holder, alive, expires_in)
        return out

    def alive(self) -> set[str]:
        """Names of the Leases whose holder is alive."""
        return {name for name, state in self.holders().items() if state.alive}

    def next_expiry(self) -> float | None:
        """Seconds until the next alive holder expires unless it renews (None: nobody alive)."""
        times = [s.expires_in for s in self.holders().values() if s.alive]
        return min(times) if times else None


__all__ = ["HolderState", "LeaseElector", "LeaseObserver"]
