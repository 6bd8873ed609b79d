"""The ``openelb`` command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from openelb import __version__
from openelb.cli import main


def test_version_reports_packet_module_and_xdp_support() -> None:
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"openelb {__version__}"
    assert lines[1].startswith("packet module: compiled") or lines[1].startswith(
        "packet module: python ("
    )
    assert lines[2] == "xdp: usable (bcc 0.26.0)" or lines[2].startswith("xdp: not usable: ")


@pytest.mark.bpf
def test_version_says_xdp_is_usable_where_it_is() -> None:
    result = CliRunner().invoke(main, ["version"])
    assert "xdp: usable" in result.output


def test_version_explains_why_xdp_is_not_usable_without_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["version"])
    assert "xdp: not usable: not root" in result.output


def test_status_without_any_cluster_configuration_says_what_it_tried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code != 0
    assert "no Kubernetes configuration found" in result.output


def test_speaker_needs_a_node_name_and_refuses_bad_settings() -> None:
    result = CliRunner().invoke(main, ["speaker"], env={"NODE_NAME": ""})
    assert result.exit_code != 0 and "--node" in result.output
    result = CliRunner().invoke(main, ["speaker", "--node", "n1", "--heartbeat-misses", "1"])
    assert result.exit_code != 0 and "misses" in result.output
