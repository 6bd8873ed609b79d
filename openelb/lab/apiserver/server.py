"""``ApiServer``: the embedded apiserver's lifecycle, kubeconfig and fault-injection controls.

Tests and the lab start one in-process (or as ``openelb lab apiserver``) and point the real
``kubernetes`` client at :attr:`ApiServer.url`. ``stop()`` then ``restart()`` keeps every object
and the resourceVersion and binds the same port again, so a client sees exactly what it would see
from a restarted kube-apiserver: refused connections, then the same state.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from openelb.lab.apiserver.faults import Faults
from openelb.lab.apiserver.http import ApiHttpServer
from openelb.lab.apiserver.resources import (
    BUILTIN_TYPES,
    DEFAULT_CRD_DIR,
    ResourceType,
    load_crd_dir,
    types_from_crd,
)
from openelb.lab.apiserver.store import Store

log = logging.getLogger(__name__)

DEFAULT_HISTORY_LIMIT = 200_000
"""Events kept for watches to resume from: enough for the 10,000-Service scale benchmark."""


def _crd_types(crds: Path | str | Iterable[dict[str, Any]] | None) -> list[ResourceType]:
    if crds is None:
        return []
    if crds == DEFAULT_CRD_DIR and not DEFAULT_CRD_DIR.is_dir():
        # An installed package has no deploy/ next to it: serve the built-in types only.
        log.warning("embedded apiserver: %s not found, serving no custom resources", crds)
        return []
    if isinstance(crds, (str, Path)):
        return load_crd_dir(Path(crds))
    found: list[ResourceType] = []
    for crd in crds:
        found.extend(types_from_crd(crd))
    return found


class ApiServer:
    """A stateful Kubernetes API server speaking the real REST and watch protocol over HTTP."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        crds: Path | str | Iterable[dict[str, Any]] | None = DEFAULT_CRD_DIR,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        bookmark_interval: float = 1.0,
    ) -> None:
        """``crds``: a directory of CRD manifests (default ``deploy/crds``), CRD dicts, or None."""
        if bookmark_interval <= 0:
            raise ValueError("bookmark_interval must be positive")
        self.host = host
        self._port = port
        self._bookmark_interval = bookmark_interval
        types = [*BUILTIN_TYPES, *_crd_types(crds)]
        self.types: dict[tuple[str, str, str], ResourceType] = {
            (t.group, t.version, t.plural): t for t in types
        }
        namespaces = self.types[("", "v1", "namespaces")]
        self.store = Store(history_limit=history_limit, namespace_type=namespaces)
        self.faults = Faults()
        self._http: ApiHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = 0
        """Bumped by every start/stop, so a pending outage never restarts a server stopped since."""
        self._lifecycle_lock = threading.Lock()

    # --------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def bookmark_interval(self) -> float:
        """Seconds between BOOKMARK events on watches that allow them; settable while running."""
        return self._bookmark_interval

    @bookmark_interval.setter
    def bookmark_interval(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("bookmark_interval must be positive")
        self._bookmark_interval = seconds
        if self._http is not None:
            self._http.bookmark_interval = seconds

    @property
    def running(self) -> bool:
        return self._http is not None

    def start(self) -> ApiServer:
        with self._lifecycle_lock:
            self._lifecycle += 1
            return self._start()

    def _start(self) -> ApiServer:
        if self._http is not None:
            return self
        self.store.reopen()
        http = ApiHttpServer(
            (self.host, self._port),
            store=self.store,
            types=self.types,
            faults=self.faults,
            bookmark_interval=self._bookmark_interval,
        )
        self._port = http.server_address[1]
        self._http = http
        self._thread = threading.Thread(
            target=http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"apiserver:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port and every open connection; state is kept for :meth:`restart`."""
        with self._lifecycle_lock:
            self._lifecycle += 1
            self._stop()

    def _stop(self) -> None:
        http, self._http = self._http, None
        if http is None:
            return
        self.store.close()
        http.shutdown()
        http.server_close()
        http.cut(watches_only=False)
        self.faults.release_hangs()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def restart(self) -> ApiServer:
        """Stop and start again on the same port with the same objects and resourceVersion."""
        self.stop()
        return self.start()

    def outage(self, seconds: float) -> threading.Thread:
        """Refuse connections for ``seconds``: stop now, start again on the same port after.

        Returns the thread that restarts the server (join it to wait for the end of the outage).
        A :meth:`start` or :meth:`stop` in the meantime cancels the restart.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self.stop()
        with self._lifecycle_lock:
            epoch = self._lifecycle

        def resume() -> None:
            time.sleep(seconds)
            with self._lifecycle_lock:
                if self._lifecycle == epoch:
                    self._lifecycle += 1
                    self._start()

        thread = threading.Thread(target=resume, name=f"apiserver-outage:{self._port}", daemon=True)
        thread.start()
        return thread

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path | str, *, context: str = "openelb-lab") -> Path:
        """A kubeconfig for this server (JSON, which every YAML loader reads); returns the path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "openelb-lab"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(tmp, target)
        return target

    # ------------------------------------------------------------ inspection

    @property
    def resource_version(self) -> int:
        return self.store.resource_version

    # ------------------------------------------------------- fault injection

    def fail_requests(
        self,
        n: int = 1,
        *,
        status: int = 500,
        retry_after: float | None = None,
        path_contains: str | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` (429 adds Retry-After)."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error code (400-599)")
        if status == 429 and retry_after is None:
            retry_after = 1
        self.faults.add(
            "fail",
            n,
            status=status,
            retry_after=retry_after,
            path_contains=path_contains,
            methods=methods,
        )

    def hang_requests(
        self,
        n: int = 1,
        *,
        seconds: float | None = None,
        path_contains: str | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Stall the next ``n`` matching requests for ``seconds`` (None: until cleared/stopped)."""
        self.faults.add("hang", n, seconds=seconds, path_contains=path_contains, methods=methods)

    def reset_connections(
        self,
        n: int = 1,
        *,
        path_contains: str | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with a TCP reset and no response."""
        self.faults.add("reset", n, path_contains=path_contains, methods=methods)

    def drop_watches(self) -> int:
        """Cut every open watch stream mid-flight (no final chunk); returns how many."""
        self.store.wake_watchers(drop=True)
        if self._http is None:
            return 0
        return self._http.cut(watches_only=True)

    def expire_watches(self) -> int:
        """End every watch with a 410 Expired ERROR event; resuming from any RV is 410 too.

        Clients must relist (as after an etcd compaction that outran them). Returns the new floor.
        """
        floor = self.store.compact(everything=True)
        self.store.wake_watchers(expire=True)
        return floor

    def compact(self, rv: int | None = None) -> int:
        """Forget events up to ``rv`` (default: all); resuming from before it gets 410."""
        return self.store.compact(rv)

    def clear_faults(self) -> None:
        """Remove pending fault rules and release hung requests."""
        self.faults.clear()
