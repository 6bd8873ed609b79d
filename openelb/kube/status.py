"""Status writes that never lose an update and never resurrect a removed key.

A status is written with PUT on the ``/status`` subresource carrying the object's
resourceVersion: the whole status is replaced (so a map that shrank, like an Eip's
``status.used``, really loses its keys, which a merge patch would keep), and the write only
succeeds against the version the new status was computed from. On 409 the object is read again
and the status recomputed from what is there now, a bounded number of times.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from openelb import metrics
from openelb.kube.client import KubeApi
from openelb.kube.errors import Conflict
from openelb.kube.resources import Resource

log = logging.getLogger(__name__)

Raw = dict[str, Any]
StatusFn = Callable[[Raw], Raw]
"""Given the whole current object (read-only), return the status it should have."""


class StatusConflictError(Conflict):
    """Every attempt hit a 409: someone keeps writing the object faster than we can."""


class StatusWriter:
    """Writes the status of one resource type; thread-safe (holds no per-object state)."""

    def __init__(self, api: KubeApi, res: Resource, *, max_attempts: int = 5) -> None:
        if not res.has_status:
            raise ValueError(f"{res} has no status subresource")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.api = api
        self.res = res
        self.max_attempts = max_attempts

    def update(
        self,
        name: str,
        compute: StatusFn,
        *,
        namespace: str | None = None,
        current: Raw | None = None,
    ) -> Raw:
        """Set the status to ``compute(object)``; returns the object as written (or as read,
        when the status already was that: no write, no new resourceVersion).

        ``current`` (e.g. from a watch cache) saves the first read; if it is stale the 409 sends
        us to re-read. Raises :class:`StatusConflictError` after ``max_attempts`` conflicts;
        other :class:`~openelb.kube.errors.KubeError` s (NotFound, Unavailable) pass through.
        """
        obj = current
        last: Conflict | None = None
        for attempt in range(1, self.max_attempts + 1):
            if obj is None:
                obj = self.api.get(self.res, name, namespace=namespace)
            status = compute(copy.deepcopy(obj))
            if (obj.get("status") or {}) == status:
                return obj
            body = {**obj, "status": status}
            try:
                return self.api.replace(self.res, body, subresource="status")
            except Conflict as exc:
                metrics.kube_status_conflict(str(self.res))
                log.debug("status of %s %s: conflict %d, re-reading", self.res, name, attempt)
                last = exc
                obj = None
        raise StatusConflictError(
            409, "Conflict", f"status of {self.res} {name}: {self.max_attempts} conflicts: {last}"
        )

    def set(self, obj: Raw, status: Raw) -> Raw:
        """Write exactly ``status`` to the object ``obj`` (re-applied on conflict)."""
        meta = obj.get("metadata") or {}
        return self.update(
            str(meta.get("name")),
            lambda _current: copy.deepcopy(status),
            namespace=meta.get("namespace") if self.res.namespaced else None,
            current=obj,
        )


__all__ = ["StatusConflictError", "StatusFn", "StatusWriter"]
