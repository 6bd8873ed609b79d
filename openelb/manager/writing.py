"""The manager's writes to the API, fenced by leadership.

Every write checks the fence first: the moment the manager stops leading, no new request leaves
(an in-flight one may complete; its resourceVersion precondition keeps it from clobbering a newer
leader's write). All writes are conditional on the resourceVersion the decision was made from, so
a concurrent change is a 409 and the key is reconciled again from fresh state.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from openelb.kube.client import KubeApi
from openelb.kube.errors import KubeError
from openelb.kube.resources import EIPS, SERVICES
from openelb.manager.conditions import with_condition
from openelb.manager.decisions import ServiceDecision, ingress_status
from openelb.manager.optin import EIP_FINALIZER, FINALIZER, Raw


class NotLeadingError(KubeError):
    """A write was refused locally because this manager no longer leads."""

    def __init__(self) -> None:
        super().__init__(0, "NotLeading", "this manager is not the leader; write skipped")


class FencedWriter:
    """Service finalizer/status and Eip status writes, each refused once leadership is lost."""

    def __init__(self, api: KubeApi, *, leading: Callable[[], bool]) -> None:
        self._api = api
        self._leading = leading
        self.attempts = 0
        """Write requests sent (tests check a standby sends none)."""

    def _check(self) -> None:
        if not self._leading():
            raise NotLeadingError
        self.attempts += 1

    def set_finalizer(self, raw: Raw, *, present: bool) -> dict[str, Any]:
        """Add or remove our finalizer, conditional on the object's resourceVersion."""
        self._check()
        meta = raw["metadata"]
        patch = _finalizer_patch(raw, FINALIZER, present=present)
        return self._api.patch(SERVICES, meta["name"], patch, namespace=meta["namespace"])

    def set_eip_finalizer(self, raw: Raw, *, present: bool) -> dict[str, Any]:
        """Add or remove the Eip finalizer, conditional on the Eip's resourceVersion."""
        self._check()
        patch = _finalizer_patch(raw, EIP_FINALIZER, present=present)
        return self._api.patch(EIPS, raw["metadata"]["name"], patch)

    def set_service_status(
        self, raw: Raw, decision: ServiceDecision, *, now: str
    ) -> dict[str, Any]:
        """Write what ``decision`` changes in the Service's status: the ingress addresses and/or
        openelb's condition (one PUT /status with the object's RV)."""
        self._check()
        body = copy.deepcopy(dict(raw))
        status = dict(body.get("status") or {})
        if decision.ingress is not None:
            status = ingress_status(status, decision.ingress)
        if decision.condition_write:
            status = with_condition(raw, status, decision.condition, now=now)
        body["status"] = status
        return self._api.replace(SERVICES, body, subresource="status")

    def read_service(self, namespace: str, name: str) -> dict[str, Any]:
        """The Service as stored now (after a 409: the cache may lag, e.g. after a dropped watch).

        Reads are not fenced: they change nothing.
        """
        return self._api.get(SERVICES, name, namespace=namespace)

    def read_eip(self, name: str) -> dict[str, Any]:
        """The Eip as stored now (after a 409 on its status)."""
        return self._api.get(EIPS, name)

    def set_eip_status(self, raw: Raw, status: dict[str, Any]) -> dict[str, Any]:
        """Replace an Eip's status as a whole (so keys that left ``used`` really go)."""
        self._check()
        body = {key: value for key, value in raw.items() if key != "status"}
        body["status"] = status
        return self._api.replace(EIPS, body, subresource="status")


def _finalizer_patch(raw: Raw, finalizer: str, *, present: bool) -> dict[str, Any]:
    """A merge patch setting the whole finalizer list, pinned to the object's resourceVersion."""
    meta = raw["metadata"]
    finalizers = [f for f in meta.get("finalizers") or () if f != finalizer]
    if present:
        finalizers.append(finalizer)
    return {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
