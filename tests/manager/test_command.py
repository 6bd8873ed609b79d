"""``openelb manager`` flags: bad settings and a missing kubeconfig fail clearly, before running."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from openelb.cli import main


def test_bad_router_id_range_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["manager", "--router-id-first", "0"])
    assert result.exit_code == 2
    assert "router ID range 0-255" in result.output


def test_bad_election_timing_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["manager", "--renew-deadline", "20"])
    assert result.exit_code == 2
    assert "renew_deadline" in result.output


def test_missing_kubeconfig_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(
        main, ["manager", "--kubeconfig", str(missing), "--metrics-port", "0"]
    )
    assert result.exit_code == 2
    assert str(missing) in result.output
