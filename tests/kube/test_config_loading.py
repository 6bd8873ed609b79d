"""connect(): explicit kubeconfig, $KUBECONFIG, in-cluster, default file; clear errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from openelb.kube import client
from openelb.kube.errors import KubeConfigError, Unavailable
from openelb.kube.resources import SERVICES


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(path: Path, server: str, *, context: str = "lab") -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_explicit_path_is_used(clean_env: Path) -> None:
    path = _kubeconfig(clean_env / "kc", "http://127.0.0.1:6443")
    api = client.connect(str(path), timeout=3.0)
    assert api.host == "http://127.0.0.1:6443"
    assert api.timeout == 3.0
    api.close()


def test_env_kubeconfig_is_used(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _kubeconfig(clean_env / "kc", "http://127.0.0.1:7443")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert client.connect().host == "http://127.0.0.1:7443"


def test_default_file_is_the_last_resort(clean_env: Path) -> None:
    (clean_env / ".kube").mkdir()
    _kubeconfig(clean_env / ".kube" / "config", "http://127.0.0.1:8443")
    assert client.connect().host == "http://127.0.0.1:8443"


def test_nothing_found_says_what_was_tried(clean_env: Path) -> None:
    with pytest.raises(
        KubeConfigError, match=r"KUBECONFIG.*KUBERNETES_SERVICE_HOST.*\.kube/config"
    ):
        client.connect()


def test_missing_file_and_unknown_context_are_clear(clean_env: Path) -> None:
    with pytest.raises(KubeConfigError, match="does not exist"):
        client.connect(str(clean_env / "nope"))
    path = _kubeconfig(clean_env / "kc", "http://127.0.0.1:6443")
    with pytest.raises(KubeConfigError, match="context 'other'"):
        client.connect(str(path), context="other")
    (clean_env / "bad").write_text("{not yaml: [")
    with pytest.raises(KubeConfigError, match="cannot use"):
        client.connect(str(clean_env / "bad"))


def test_in_cluster_without_token_is_clear(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(KubeConfigError, match="in-cluster"):
        client.connect()


def test_refused_connection_is_unavailable(clean_env: Path) -> None:
    path = _kubeconfig(clean_env / "kc", f"http://127.0.0.1:{_closed_port()}")
    api = client.connect(str(path), timeout=2.0)
    with pytest.raises(Unavailable) as info:
        api.list(SERVICES)
    assert info.value.reason == "ConnectionRefused"
    assert info.value.status == 0
    assert info.value.__cause__ is not None
