"""pytest fixtures for the namespace testbed, loaded by ``tests/conftest.py``.

- Tests marked ``netns``, ``bpf`` or ``keepalived`` are skipped, with the reason, when the host
  cannot run them (not root, tool missing). CI runs as root with everything installed, so there
  they all run.
- At session start the janitor removes leftovers of earlier crashed runs.
- ``testbed`` gives a fresh switch (add hosts with ``testbed.add_host``), torn down afterwards
  whatever the outcome; ``testbed_factory`` builds several.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from openelb.lab.apiserver import ApiServer, lab_api_client
from openelb.lab.netns import Testbed

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@functools.cache
def _netns_unavailable() -> str:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed; run `make setup`"
    return ""


@functools.cache
def _bpf_unavailable() -> str:
    from openelb.dataplane.capability import probe_xdp

    support = probe_xdp()
    return "" if support.usable else f"XDP not usable here: {support.reason}"


@functools.cache
def _keepalived_unavailable() -> str:
    if shutil.which("keepalived") is None:
        return "keepalived is not installed; run `make setup`"
    return ""


_REQUIREMENTS: dict[str, list[Callable[[], str]]] = {
    "netns": [_netns_unavailable],
    "bpf": [_netns_unavailable, _bpf_unavailable],
    "keepalived": [_netns_unavailable, _keepalived_unavailable],
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker, checks in _REQUIREMENTS.items():
            if item.get_closest_marker(marker) is None:
                continue
            for check in checks:
                reason = check()
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
                    break


def pytest_sessionstart(session: pytest.Session) -> None:
    if _netns_unavailable():
        return
    from openelb.lab.janitor import collect_leftovers

    removed = collect_leftovers()
    if removed:
        print(f"\njanitor: removed {len(removed)} leftover namespaces of crashed runs")


@pytest.fixture
def testbed_factory() -> Iterator[Callable[..., Testbed]]:
    """Build testbeds on demand; all of them are torn down after the test."""
    built: list[Testbed] = []

    def make(**kwargs: object) -> Testbed:
        tb = Testbed(**kwargs)  # type: ignore[arg-type]
        built.append(tb)
        return tb

    try:
        yield make
    finally:
        for tb in built:
            tb.close()


@pytest.fixture
def testbed(testbed_factory: Callable[..., Testbed]) -> Testbed:
    """A fresh switch with no hosts yet."""
    return testbed_factory()


# --- embedded apiserver (issue #3) -------------------------------------------------------------
# ``apiserver``: a started in-process ApiServer (deploy/crds loaded), stopped after the test;
# ``kubeconfig``: a kubeconfig file for it; ``kube_client``: a kubernetes ApiClient for it.


@pytest.fixture
def apiserver() -> Iterator[ApiServer]:
    """A fresh embedded apiserver on a free loopback port, stopped after the test."""
    server = ApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kubeconfig(apiserver: ApiServer, tmp_path: Path) -> Path:
    """Path of a kubeconfig file pointing at ``apiserver``."""
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_client(apiserver: ApiServer) -> Iterator[ApiClient]:
    """A ``kubernetes.client.ApiClient`` for ``apiserver`` (closed after the test)."""
    client = lab_api_client(apiserver.url)
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]
