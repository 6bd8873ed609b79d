"""The one door to the apiserver: the real ``kubernetes`` client's HTTP layer, raw JSON in and out.

Why raw JSON: the reconcilers need a handful of fields per object, and turning every listed or
watched object into the client's pydantic models costs far more CPU than ``json.loads``
(``benchmarks/kube_decode.py`` measures both). So requests are built and authenticated by the
client's ``ApiClient`` (kubeconfig, in-cluster tokens, TLS, proxies all handled there) and the
responses are read as JSON into dicts, which :mod:`openelb.kube.views` turns into small typed
views.

Every call has a timeout; every failure is a :class:`~openelb.kube.errors.KubeError`. Nothing here
knows whether the other end is a real kube-apiserver or the embedded one of the lab.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import urllib3
import yaml  # type: ignore[import-untyped]
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from openelb.kube.errors import (
    KubeConfigError,
    KubeError,
    Unavailable,
    error_for_status,
    error_from_status_object,
)
from openelb.kube.resources import Resource

PatchKind = Literal["merge", "json", "strategic"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
_WATCH_READ_SLACK = 10.0
"""Seconds a watch read may stay silent beyond ``timeoutSeconds`` before we call it dead."""
_POOL_SIZE = 32
"""Connections kept per host: every running watch holds one for its whole life."""


def connect(
    kubeconfig: str | None = None, *, context: str | None = None, timeout: float = 10.0
) -> KubeApi:
    """A :class:`KubeApi` for the cluster the configuration points at.

    Order: the explicit ``kubeconfig`` path, else ``$KUBECONFIG``, else the in-cluster service
    account, else ``~/.kube/config``. Raises :class:`KubeConfigError` saying what was tried.
    """
    configuration = load_configuration(kubeconfig, context=context)
    configuration.connection_pool_maxsize = _POOL_SIZE
    # One quick retry of a failed connect only: callers (watches, the elector) own their retry
    # policy, and a silent urllib3 retry loop would hide a dead apiserver from them.
    configuration.retries = urllib3.Retry(
        total=1, connect=1, read=0, status=0, redirect=0, respect_retry_after_header=False
    )
    return KubeApi(k8s_client.ApiClient(configuration), timeout=timeout)


def load_configuration(
    kubeconfig: str | None = None, *, context: str | None = None
) -> k8s_client.Configuration:
    """Load client configuration (see :func:`connect` for the order)."""
    configuration = k8s_client.Configuration()
    tried: list[str] = []
    path = kubeconfig or os.environ.get("KUBECONFIG") or ""
    if path:
        origin = "--kubeconfig" if kubeconfig else "$KUBECONFIG"
        missing = [p for p in path.split(os.pathsep) if p and not Path(p).expanduser().exists()]
        if missing and len(missing) == len([p for p in path.split(os.pathsep) if p]):
            raise KubeConfigError(f"kubeconfig {path!r} (from {origin}) does not exist")
        _load_kubeconfig(configuration, path=path, context=context, origin=origin)
        return configuration
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise KubeConfigError(f"in-cluster configuration is incomplete: {exc}") from exc
        if context:
            raise KubeConfigError("a context was given but the in-cluster configuration has none")
        return configuration
    tried.append("no --kubeconfig, no $KUBECONFIG, not in a cluster ($KUBERNETES_SERVICE_HOST)")
    default = Path("~/.kube/config").expanduser()
    if default.exists():
        _load_kubeconfig(configuration, path=str(default), context=context, origin="default")
        return configuration
    tried.append(f"{default} does not exist")
    raise KubeConfigError("no Kubernetes configuration found: " + "; ".join(tried))


def _load_kubeconfig(
    configuration: k8s_client.Configuration, *, path: str, context: str | None, origin: str
) -> None:
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError) as exc:
        where = f"context {context!r} of " if context else ""
        raise KubeConfigError(
            f"cannot use {where}kubeconfig {path!r} (from {origin}): {exc}"
        ) from exc


class KubeApi:
    """Generic raw-JSON access to any :class:`Resource`; thread-safe (urllib3 pools)."""

    def __init__(self, api_client: k8s_client.ApiClient, *, timeout: float = 10.0) -> None:
        self.api_client = api_client
        """The official client underneath (for the typed APIs where someone wants them)."""
        self.timeout = timeout
        """Seconds any single non-watch request may take, connect and response together."""

    @property
    def host(self) -> str:
        """Base URL of the apiserver."""
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        """Release pooled connections."""
        self.api_client.close()  # type: ignore[no-untyped-call]

    # --- reads -----------------------------------------------------------------------------------

    def get(
        self,
        res: Resource,
        name: str,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One object (404 raises :class:`~openelb.kube.errors.NotFound`)."""
        path = res.path(namespace=namespace, name=name, subresource=subresource)
        return self._json("GET", path, timeout=timeout)

    def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All matching objects and the list's resourceVersion (to watch from).

        With ``page_size`` the list is read in pages (``limit``/``continue``) and the
        resourceVersion of the first page is returned, as client-go's pager does.
        """
        query: list[tuple[str, Any]] = _selectors(label_selector, field_selector)
        items: list[dict[str, Any]] = []
        resource_version = ""
        token = ""
        while True:
            page_query = list(query)
            if page_size:
                page_query.append(("limit", page_size))
            if token:
                page_query.append(("continue", token))
            body = self._json(
                "GET", res.path(namespace=namespace), query=page_query, timeout=timeout
            )
            meta = body.get("metadata") or {}
            resource_version = resource_version or str(meta.get("resourceVersion") or "")
            for item in body.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            token = str(meta.get("continue") or "")
            if not token or not page_size:
                return items, resource_version

    def watch(
        self,
        res: Resource,
        *,
        resource_version: str,
        timeout_seconds: int,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
    ) -> WatchStream:
        """A stream of ``(type, object)`` events after ``resource_version``.

        Types are ``ADDED``, ``MODIFIED``, ``DELETED`` and ``BOOKMARK``; an ``ERROR`` event is
        raised as its :class:`KubeError` (410 as :class:`~openelb.kube.errors.Gone`). The stream
        ends cleanly after ``timeout_seconds``; a dropped connection raises
        :class:`~openelb.kube.errors.Unavailable`. ``close()`` ends it from any thread.
        """
        query = _selectors(label_selector, field_selector)
        query += [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", int(timeout_seconds)),
        ]
        if allow_bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        response = self._request(
            "GET",
            res.path(namespace=namespace),
            query=query,
            timeout=(self.timeout, timeout_seconds + _WATCH_READ_SLACK),
        )
        return WatchStream(response, res)

    # --- writes ----------------------------------------------------------------------------------

    def create(
        self,
        res: Resource,
        body: dict[str, Any],
        *,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Create ``body`` (namespace from the argument or the body's metadata)."""
        namespace = (namespace or _meta(body).get("namespace")) if res.namespaced else None
        body = _with_type(res, body)
        return self._json("POST", res.path(namespace=namespace), body=body, timeout=timeout)

    def replace(
        self,
        res: Resource,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """PUT ``body``; its ``metadata.resourceVersion`` makes it conditional (409 if stale)."""
        meta = _meta(body)
        path = res.path(
            namespace=meta.get("namespace") if res.namespaced else None,
            name=str(meta.get("name") or ""),
            subresource=subresource,
        )
        return self._json("PUT", path, body=_with_type(res, body), timeout=timeout)

    def patch(
        self,
        res: Resource,
        name: str,
        patch: dict[str, Any] | builtins.list[dict[str, Any]],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        kind: PatchKind = "merge",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """PATCH (merge by default; a ``metadata.resourceVersion`` in it is a precondition)."""
        if kind == "json" and not isinstance(patch, list):
            raise ValueError("a JSON patch is a list of operations")
        if kind != "json" and not isinstance(patch, dict):
            raise ValueError(f"a {kind} patch is an object")
        path = res.path(namespace=namespace, name=name, subresource=subresource)
        return self._json(
            "PATCH", path, body=patch, content_type=_PATCH_CONTENT_TYPES[kind], timeout=timeout
        )

    def delete(
        self,
        res: Resource,
        name: str,
        *,
        namespace: str | None = None,
        precondition_rv: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Delete; with ``precondition_rv`` only if the object is still at that version."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if precondition_rv:
            options["preconditions"] = {"resourceVersion": precondition_rv}
        path = res.path(namespace=namespace, name=name)
        return self._json("DELETE", path, body=options, timeout=timeout)

    # --- transport -------------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: builtins.list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        response = self._request(
            method, path, query=query, body=body, content_type=content_type, timeout=timeout
        )
        try:
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unavailable(exc, f"{method} {path}") from exc
        finally:
            response.release_conn()
        try:
            decoded = json.loads(data) if data else {}
        except ValueError as exc:
            raise KubeError(response.status, "BadResponse", f"{method} {path}: not JSON") from exc
        if not isinstance(decoded, dict):
            raise KubeError(response.status, "BadResponse", f"{method} {path}: not an object")
        return decoded

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: builtins.list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            rest_response = self.api_client.call_api(
                *request, _request_timeout=timeout if timeout is not None else self.timeout
            )
        except ApiException as exc:  # TLS errors and unbuildable requests surface this way
            raise Unavailable(0, "ClientError", f"{method} {path}: {exc.reason}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unavailable(exc, f"{method} {path}") from exc
        response: urllib3.BaseHTTPResponse = rest_response.response
        if 200 <= response.status <= 299:
            return response
        try:
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError):
            data = b""
        finally:
            response.release_conn()
        error = error_for_status(response.status, data, default_reason=response.reason or "")
        error.retry_after = _retry_after(response.headers.get("Retry-After"))
        raise error


class WatchStream(Iterator[tuple[str, dict[str, Any]]]):
    """The events of one watch request; iterate it, ``close()`` it (from any thread) to stop."""

    def __init__(self, response: urllib3.BaseHTTPResponse, res: Resource) -> None:
        self._response = response
        self._res = res
        self._events = self._read()
        self.closed = False
        """True once :meth:`close` was called (an error after that is not reported)."""

    def __next__(self) -> tuple[str, dict[str, Any]]:
        return next(self._events)

    def close(self) -> None:
        """End the stream now; a reader blocked in ``next()`` returns (StopIteration)."""
        self.closed = True
        shutdown = getattr(self._response, "shutdown", None)
        try:
            if shutdown is not None:
                shutdown()  # unblocks a reader in another thread
            self._response.close()
        except (ValueError, RuntimeError, OSError):
            pass  # already released or closed: nothing is blocked on it

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read(self) -> Iterator[tuple[str, dict[str, Any]]]:
        pending = b""
        try:
            for chunk in self._response.stream(65536, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield self._event(line)
            if pending.strip():
                yield self._event(pending)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self.closed:
                raise _unavailable(exc, f"watch {self._res}") from exc
        finally:
            self._response.release_conn()

    def _event(self, line: bytes) -> tuple[str, dict[str, Any]]:
        try:
            event = json.loads(line)
            kind = str(event["type"])
            obj = event["object"]
        except (ValueError, KeyError, TypeError) as exc:
            raise KubeError(
                0, "BadResponse", f"watch {self._res}: bad event {line[:200]!r}"
            ) from exc
        if kind == "ERROR":
            raise error_from_status_object(obj if isinstance(obj, dict) else {})
        if isinstance(obj, dict):
            obj.setdefault("apiVersion", self._res.api_version)
            obj.setdefault("kind", self._res.kind)
        return kind, obj


def _unavailable(exc: BaseException, what: str) -> Unavailable:
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    # NewConnectionError subclasses urllib3's ConnectTimeoutError, so it is checked first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        reason = "ConnectionRefused"
    elif isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        reason = "Timeout"
    else:
        reason = "ConnectionError"
    return Unavailable(0, reason, f"{what}: {exc}")


def _selectors(label_selector: str | None, field_selector: str | None) -> list[tuple[str, Any]]:
    query: list[tuple[str, Any]] = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _meta(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise ValueError("object has no metadata")
    return meta


def _with_type(res: Resource, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("apiVersion") and body.get("kind"):
        return body
    return {"apiVersion": res.api_version, "kind": res.kind, **body}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


__all__ = ["KubeApi", "PatchKind", "WatchStream", "connect", "load_configuration"]
