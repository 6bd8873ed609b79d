"""This speaker's own Lease ``openelb-speaker-<node>``: created, renewed, deleted on stop.

Plain create/renew/delete rather than an elector: there is nothing to win, each speaker is the
only writer of its Lease. Renewal failures are logged and retried, never fatal: with the
apiserver down the speaker keeps serving from what it knows (fail-static), and the other
speakers judge its liveness by heartbeats, not by the Lease.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from openelb.kube.client import KubeApi
from openelb.kube.errors import AlreadyExists, Conflict, KubeError, NotFound
from openelb.kube.resources import LEASES
from openelb.speaker.records import SpeakerRecord, lease_name

log = logging.getLogger(__name__)


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SpeakerLease:
    """Publishes a :class:`SpeakerRecord` on the node's Lease and keeps it renewed."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        record: SpeakerRecord,
        duration: float = 15.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = lease_name(record.node)
        self.duration = duration
        self._record = record
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0
        self.failures = 0
        self.failing = 0
        """Renewals failed in a row (0: the apiserver answered the last one)."""
        self.healthy_since: float | None = None
        """Monotonic time since when renewals have succeeded without a break (None: the last
        one failed). Other Leases can only be seen moving from then on (:mod:`.expiry`)."""

    @property
    def record(self) -> SpeakerRecord:
        return self._record

    def update(self, record: SpeakerRecord) -> None:
        """New content (incarnation, interfaces): written at once by the renewal thread.

        Never waits for the apiserver: the control loop calls this (a refuted obituary raises
        the incarnation), and an apiserver that drops packets would hold a synchronous write for
        seconds, longer than ``hung_after``: the node would lose its VIPs to an outage.
        """
        with self._lock:
            changed = record != self._record
            self._record = record
        if changed:
            self._wake.set()

    def start(self) -> SpeakerLease:
        self.renew()
        self._thread = threading.Thread(target=self._run, name="openelb-speaker-lease", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, delete: bool) -> None:
        """Stop renewing; ``delete`` removes the Lease (graceful stop: we left the cluster)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if delete:
            try:
                self.api.delete(LEASES, self.name, namespace=self.namespace, timeout=3.0)
            except NotFound:
                pass
            except KubeError as exc:
                log.warning("could not delete speaker Lease %s: %s", self.name, exc)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.duration / 3)
            if self._stop.is_set():
                return
            self._wake.clear()
            self.renew()

    def renew(self) -> bool:
        """Create or renew the Lease once; True on success."""
        with self._lock:
            record = self._record
        body = self._body(record)
        try:
            try:
                current = self.api.get(LEASES, self.name, namespace=self.namespace, timeout=3.0)
            except NotFound:
                try:
                    self.api.create(LEASES, body, namespace=self.namespace, timeout=3.0)
                except AlreadyExists:
                    return False  # raced with ourselves (restart): the next renewal updates it
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                acquire = (current.get("spec") or {}).get("acquireTime")
                if acquire:
                    body["spec"]["acquireTime"] = acquire
                self.api.replace(LEASES, body, timeout=3.0)
        except Conflict:
            self.failures += 1
            return False
        except KubeError as exc:
            self.failures += 1
            self.failing += 1
            self.healthy_since = None
            # One line per outage, not one per renewal: the apiserver may be gone for minutes.
            level = logging.WARNING if self.failing == 1 else logging.DEBUG
            log.log(level, "speaker Lease %s not renewed (serving on): %s", self.name, exc)
            return False
        if self.failing:
            log.info(
                "speaker Lease %s renewed again after %d failed attempts", self.name, self.failing
            )
        self.renewals += 1
        self.failing = 0
        if self.healthy_since is None:
            self.healthy_since = time.monotonic()
        return True

    def _body(self, record: SpeakerRecord) -> dict[str, Any]:
        now = _micro_now()
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/component": "speaker"},
                "annotations": record.annotations(),
            },
            "spec": {
                "holderIdentity": record.node,
                "leaseDurationSeconds": max(1, round(self.duration)),
                "acquireTime": now,
                "renewTime": now,
            },
        }
