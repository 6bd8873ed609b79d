"""The ``openelb`` command line."""

from __future__ import annotations

import os

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


@pytest.mark.parametrize("command", ["status"])
def test_unimplemented_commands_say_so_and_fail(command: str) -> None:
    result = CliRunner().invoke(main, [command])
    assert result.exit_code != 0
    assert "not implemented yet" in result.output


def test_speaker_needs_a_node_name_and_refuses_bad_settings() -> None:
    result = CliRunner().invoke(main, ["speaker"], env={"NODE_NAME": ""})
    assert result.exit_code != 0 and "--node" in result.output
    result = CliRunner().invoke(main, ["speaker", "--node", "n1", "--heartbeat-misses", "1"])
    assert result.exit_code != 0 and "misses" in result.output
