"""Supervisor rules that need no namespace: validation gate, restart backoff, unchanged configs.

A stand-in executable plays keepalived: it accepts every config under ``-t`` and otherwise runs
for a moment and dies, like a keepalived crashing at start.
"""

from __future__ import annotations

import time
from pathlib import Path

from openelb.config import KeepalivedSettings
from openelb.keepalived.supervisor import KeepalivedSupervisor

FAKE = """#!/bin/sh
case "$*" in *-t*) grep -q broken "$3" && { echo "bad keyword" >&2; exit 5; }; exit 0;; esac
echo "started $*"
sleep 0.05
exit 3
"""


def _supervisor(tmp_path: Path) -> KeepalivedSupervisor:
    fake = tmp_path / "fake-keepalived"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    settings = KeepalivedSettings(
        binary=str(fake), restart_backoff_first=0.05, restart_backoff_max=0.2
    )
    return KeepalivedSupervisor(settings=settings, runtime_dir=tmp_path / "run")


def test_a_dying_keepalived_is_restarted_with_capped_backoff(tmp_path: Path) -> None:
    with _supervisor(tmp_path) as sup:
        assert sup.apply("good config\n", {"oelbnonexistent0": {"10.99.0.1"}}).action == "started"
        deadline = time.monotonic() + 10
        while sup.restarts < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sup.restarts >= 4
        assert "died (exit 3)" in sup.last_error
        # The same config again is not a reason to start it outside the backoff.
        assert sup.apply("good config\n", {"oelbnonexistent0": {"10.99.0.1"}}).action == (
            "unchanged"
        )
    assert not sup.running()


def test_a_refused_config_is_never_installed(tmp_path: Path) -> None:
    with _supervisor(tmp_path) as sup:
        result = sup.apply("broken config\n", {"oelbnonexistent0": {"10.99.0.1"}})
        assert (result.applied, result.action) == (False, "rejected")
        assert "bad keyword" in result.error
        assert not sup.paths.config.exists() and not sup.running()


def test_no_vips_means_no_keepalived(tmp_path: Path) -> None:
    with _supervisor(tmp_path) as sup:
        assert sup.apply("empty\n", {}).action == "stopped"
        assert not sup.running()
