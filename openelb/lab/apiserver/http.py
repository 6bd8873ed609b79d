"""The HTTP face of the embedded apiserver: kube's URL layout, verbs, status codes and streams.

Routing follows kube-apiserver: ``/api/v1/...`` for the core group and
``/apis/<group>/<version>/...`` for the others, ``namespaces/<ns>/`` before namespaced
resources, ``/status`` as a subresource, ``?watch=true`` (or the legacy ``/watch/`` prefix) for a
chunked watch stream. Persistent HTTP/1.1 connections are kept, as client pools expect; every
connection is tracked so a stop, a dropped watch or an injected reset really cuts the wire.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from openelb.lab.apiserver import errors
from openelb.lab.apiserver.errors import ApiError
from openelb.lab.apiserver.faults import Faults
from openelb.lab.apiserver.resources import ResourceType
from openelb.lab.apiserver.selectors import parse_field_selector, parse_label_selector
from openelb.lab.apiserver.store import Store, Stored
from openelb.lab.apiserver.watching import WatchDroppedError, WatchRequest, WatchStream

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-openelb-embedded",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "none (Python, openelb embedded apiserver)",
    "compiler": "cpython",
    "platform": "linux/amd64",
}
_JSON = "application/json"


@dataclass(frozen=True)
class Response:
    code: int
    body: bytes
    headers: Mapping[str, str] | None = None


def _json(code: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(code, json.dumps(body, separators=(",", ":")).encode(), headers)


@dataclass(frozen=True)
class Target:
    """What a URL names: a resource type, maybe a namespace, a name and a subresource."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


class ApiHttpServer(ThreadingHTTPServer):
    """A threaded server that knows its open connections, to cut them on demand."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        store: Store,
        types: Mapping[tuple[str, str, str], ResourceType],
        faults: Faults,
        bookmark_interval: float,
    ) -> None:
        self.store = store
        self.types = types
        self.faults = faults
        self.bookmark_interval = bookmark_interval
        self._connections: dict[socket.socket, bool] = {}
        """Open connections; True while the connection carries a watch stream."""
        self._conn_lock = threading.Lock()
        super().__init__(address, ApiHandler)

    def track(self, sock: socket.socket, *, watching: bool | None = None) -> None:
        with self._conn_lock:
            if watching is None:
                self._connections.setdefault(sock, False)
            else:
                self._connections[sock] = watching

    def untrack(self, sock: socket.socket) -> None:
        with self._conn_lock:
            self._connections.pop(sock, None)

    def cut(self, *, watches_only: bool) -> int:
        """Shut down open connections (all, or those streaming a watch); returns how many."""
        with self._conn_lock:
            victims = [s for s, w in self._connections.items() if w or not watches_only]
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(victims)

    def discovery(self) -> dict[tuple[str, str], list[ResourceType]]:
        grouped: dict[tuple[str, str], list[ResourceType]] = {}
        for (group, version, _plural), rtype in self.types.items():
            grouped.setdefault((group, version), []).append(rtype)
        return grouped


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return query.get(name, [""])[-1].lower() in ("true", "1")


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHttpServer
    # Headers and body leave in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per request on Linux).
    disable_nagle_algorithm = True
    server_version = "openelb-embedded-apiserver"

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ----------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, response: Response) -> None:
        self.send_response(response.code)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in (response.headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _reset(self) -> None:
        """Answer nothing and send a TCP RST, like a crashing peer or a middlebox."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        rule = self.server.faults.take(method, split.path)
        if rule is not None:
            if rule.action == "reset":
                self._reset()
                return
            if rule.action == "hang":
                self.server.faults.hang(rule.seconds)
            elif rule.action == "fail":
                self._send(_injected_failure(rule.status, rule.retry_after))
                return
        try:
            result = self._route(method, split.path, query, body)
        except ApiError as exc:
            result = _json(exc.code, exc.status(), exc.headers)
        except Exception as exc:
            log.exception("embedded apiserver: %s %s failed", method, self.path)
            result = _json(500, ApiError(500, "InternalError", f"internal error: {exc}").status())
        try:
            if isinstance(result, WatchStream):
                self._stream(result)
            else:
                self._send(result)
        except OSError:
            self.close_connection = True

    def _peer_closed(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return peeked == b""
        except (OSError, ValueError):
            return True

    def _stream(self, stream: WatchStream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", _JSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        self.server.track(self.connection, watching=True)
        self.close_connection = True
        try:
            for chunk in stream.chunks():
                if not chunk:
                    if self._peer_closed():
                        return
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except WatchDroppedError:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        finally:
            self.server.track(self.connection, watching=False)

    # ------------------------------------------------------------------ routing

    def _route(
        self, method: str, path: str, query: Mapping[str, list[str]], body: bytes
    ) -> Response | WatchStream:
        segments = [s for s in path.split("/") if s]
        if segments in (["healthz"], ["readyz"], ["livez"]):
            return Response(200, b"ok")
        if segments == ["version"]:
            return _json(200, SERVER_VERSION)
        discovered = self._discovery(segments)
        if discovered is not None:
            return discovered
        target = self._target(segments)
        if _one(query, "dryRun"):
            raise errors.bad_request("dryRun is not supported by the embedded apiserver")
        handler: Callable[[Target, Mapping[str, list[str]], bytes], Response | WatchStream]
        handler = {
            "GET": self._get,
            "POST": self._post,
            "PUT": self._put,
            "PATCH": self._patch,
            "DELETE": self._delete,
        }[method]
        return handler(target, query, body)

    def _discovery(self, segments: list[str]) -> Response | None:
        groups = self.server.discovery()
        if segments == ["api"]:
            return _json(200, {"kind": "APIVersions", "versions": ["v1"]})
        if segments == ["apis"]:
            names = sorted({g for g, _ in groups if g})
            return _json(
                200,
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [_group_body(g, [v for gg, v in groups if gg == g]) for g in names],
                },
            )
        if len(segments) == 2 and segments[0] == "api":
            key = ("", segments[1])
        elif len(segments) == 3 and segments[0] == "apis":
            key = (segments[1], segments[2])
        else:
            return None
        if key not in groups:
            raise _no_such_resource()
        resources: list[dict[str, Any]] = []
        for rtype in groups[key]:
            verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update"]
            resources.append(
                {
                    "name": rtype.plural,
                    "singularName": rtype.kind.lower(),
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": [*verbs, "watch"],
                }
            )
            if rtype.status_subresource:
                resources.append(
                    {
                        "name": f"{rtype.plural}/status",
                        "singularName": "",
                        "namespaced": rtype.namespaced,
                        "kind": rtype.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return _json(
            200,
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{key[0]}/{key[1]}" if key[0] else key[1],
                "resources": resources,
            },
        )

    def _target(self, segments: list[str]) -> Target:
        if segments[:1] == ["api"] and len(segments) >= 3:
            group, version, rest = "", segments[1], segments[2:]
        elif segments[:1] == ["apis"] and len(segments) >= 4:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise _no_such_resource()
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (group == "" and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _no_such_resource()
        rtype = self.server.types.get((group, version, rest[0]))
        if rtype is None:
            raise _no_such_resource()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and not (subresource == "status" and rtype.status_subresource):
            raise _no_such_resource()
        if namespace is not None and not rtype.namespaced:
            raise _no_such_resource()
        if rtype.namespaced and namespace is None and name is not None:
            raise _no_such_resource()
        return Target(rtype, namespace, name, subresource, watch_path)

    # ------------------------------------------------------------------- verbs

    def _get(
        self, target: Target, query: Mapping[str, list[str]], body: bytes
    ) -> Response | WatchStream:
        rtype = target.rtype
        if target.name is not None and not target.watch_path:
            stored = self.server.store.get(rtype, target.namespace or "", target.name)
            return Response(200, stored.raw)
        labels = parse_label_selector(_one(query, "labelSelector"))
        fields = parse_field_selector(_one(query, "fieldSelector"))
        if target.name is not None:
            fields = parse_field_selector(
                ",".join(
                    filter(None, [f"metadata.name={target.name}", _one(query, "fieldSelector")])
                )
            )
        if target.watch_path or _flag(query, "watch"):
            timeout = _one(query, "timeoutSeconds")
            try:
                timeout_s = float(timeout) if timeout else None
            except ValueError:
                raise errors.bad_request(f"invalid timeoutSeconds: {timeout}") from None
            send_initial = _flag(query, "sendInitialEvents")
            if send_initial and not _flag(query, "allowWatchBookmarks"):
                raise errors.invalid(
                    kind="ListOptions",
                    group="meta.k8s.io",
                    name="",
                    field="allowWatchBookmarks",
                    why="Required value: allowWatchBookmarks must be set to true when "
                    "sendInitialEvents is true",
                )
            request = WatchRequest(
                rtype=rtype,
                namespace=target.namespace,
                labels=labels,
                fields=fields,
                resource_version=_one(query, "resourceVersion"),
                timeout=timeout_s,
                bookmarks=_flag(query, "allowWatchBookmarks"),
                send_initial_events=send_initial,
            )
            return WatchStream(
                self.server.store, request, bookmark_interval=self.server.bookmark_interval
            )
        limit_text = _one(query, "limit") or "0"
        try:
            limit = int(limit_text)
        except ValueError:
            raise errors.bad_request(f"invalid limit: {limit_text}") from None
        page = self.server.store.list_page(
            rtype,
            target.namespace,
            labels=labels,
            fields=fields,
            limit=max(0, limit),
            continue_token=_one(query, "continue") or "",
        )
        meta: dict[str, Any] = {"resourceVersion": str(page.rv)}
        if page.continue_token:
            meta["continue"] = page.continue_token
            meta["remainingItemCount"] = page.remaining
        head = json.dumps(
            {"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta},
            separators=(",", ":"),
        ).encode()
        items = b",".join(s.raw for s in page.items)
        return Response(200, head[:-1] + b',"items":[' + items + b"]}")

    def _decode(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None

    def _post(self, target: Target, query: Mapping[str, list[str]], body: bytes) -> Response:
        if target.name is not None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        if target.rtype.namespaced and target.namespace is None:
            raise _no_such_resource()
        stored = self.server.store.create(target.rtype, target.namespace or "", self._decode(body))
        return Response(201, stored.raw)

    def _put(self, target: Target, query: Mapping[str, list[str]], body: bytes) -> Response:
        if target.name is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        stored = self.server.store.update(
            target.rtype,
            target.namespace or "",
            target.name,
            self._decode(body),
            status=target.subresource == "status",
        )
        return Response(200, stored.raw)

    def _patch(self, target: Target, query: Mapping[str, list[str]], body: bytes) -> Response:
        if target.name is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        stored = self.server.store.patch(
            target.rtype,
            target.namespace or "",
            target.name,
            self._decode(body),
            content_type=self.headers.get("Content-Type") or "",
            status=target.subresource == "status",
        )
        return Response(200, stored.raw)

    def _delete(self, target: Target, query: Mapping[str, list[str]], body: bytes) -> Response:
        options = self._decode(body) if body else None
        if options is not None and not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        store = self.server.store
        rtype = target.rtype
        if target.name is None:
            page = store.list_page(
                rtype,
                target.namespace,
                labels=parse_label_selector(_one(query, "labelSelector")),
                fields=parse_field_selector(_one(query, "fieldSelector")),
            )
            for item in page.items:
                meta = item.obj["metadata"]
                with contextlib.suppress(ApiError):
                    store.delete(rtype, meta.get("namespace", ""), meta["name"], options)
            return _json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        stored, gone = store.delete(rtype, target.namespace or "", target.name, options)
        if not gone or rtype.return_deleted_object:
            return Response(200, stored.raw)
        return _json(200, _success(rtype, stored))


def _success(rtype: ResourceType, stored: Stored) -> dict[str, Any]:
    meta = stored.obj["metadata"]
    details: dict[str, Any] = {"name": meta["name"], "kind": rtype.plural, "uid": meta["uid"]}
    if rtype.group:
        details["group"] = rtype.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _group_body(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in sorted(set(versions))]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def _no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _injected_failure(status: int, retry_after: float | None) -> Response:
    reason = {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "Timeout"}.get(
        status, "InternalError"
    )
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(0, round(retry_after)))
    error = ApiError(status, reason, f"injected fault: HTTP {status}")
    if status == 429:
        error.details = {"retryAfterSeconds": max(0, round(retry_after or 0))}
    return _json(status, error.status(), headers)
