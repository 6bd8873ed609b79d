"""An embedded apiserver per test and a KubeApi connected to it through a kubeconfig file."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openelb.kube.client import KubeApi, connect
from openelb.kube.resources import NAMESPACES


@dataclass
class KubeLab:
    server: Any  # openelb.lab.apiserver.ApiServer
    kubeconfig: Path
    api: KubeApi

    def connect(self, timeout: float = 2.0, *, url: str | None = None) -> KubeApi:
        """Another client (own connection pool), as a second process would have; ``url``
        points it elsewhere (e.g. at a :class:`openelb.lab.tcpproxy.TcpProxy`)."""
        path = self.kubeconfig
        if url is not None:
            data = json.loads(path.read_text())
            data["clusters"][0]["cluster"]["server"] = url
            path = path.with_name(f"kubeconfig-{abs(hash(url))}")
            path.write_text(json.dumps(data))
        return connect(str(path), timeout=timeout)


@pytest.fixture
def kube_lab(tmp_path: Path) -> Iterator[KubeLab]:
    # The embedded apiserver lands separately; until it does these tests skip, saying why.
    apiserver = pytest.importorskip("openelb.lab.apiserver")
    server = apiserver.ApiServer(bookmark_interval=0.2).start()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    api = connect(str(kubeconfig), timeout=2.0)
    api.create(NAMESPACES, {"metadata": {"name": "ns1"}})
    try:
        yield KubeLab(server, kubeconfig, api)
    finally:
        server.clear_faults()
        server.stop()
        api.close()


def wait_until(check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``check`` until it is true (True) or ``timeout`` passes (False)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
