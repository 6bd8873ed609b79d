"""Supervisor rules that need no namespace: validation gate, restart backoff, unchanged configs.

A stand-in executable plays keepalived: it accepts every config under ``-t`` and otherwise runs
for a moment and dies, like a keepalived crashing at start.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from openelb.config import KeepalivedSettings
from openelb.keepalived import supervisor as supervisor_module
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


# A keepalived that takes a moment to start and writes down every SIGHUP, saying whether it came
# before or after it logged its start complete (keepalived 2.2.7 dies of, or drops, the former).
# Python, not sh: a shell cannot trap a signal that was ignored when it started (a suite run
# under nohup), and keepalived itself installs its handlers whatever it inherits.
SLOW_START = """#!{python}
import signal, sys, time
if "-t" in " ".join(sys.argv[1:]):
    sys.exit(0)
def note(word):
    with open({hups!r}, "a") as f:
        f.write(word + "\\n")
signal.signal(signal.SIGHUP, lambda *_: note("early"))
time.sleep({startup})
signal.signal(signal.SIGHUP, lambda *_: note("reload"))
{announce}
while True:
    time.sleep(0.05)
"""


def _slow_supervisor(
    tmp_path: Path, *, startup: float, announce: bool = True
) -> tuple[KeepalivedSupervisor, Path]:
    hups = tmp_path / "hups"
    fake = tmp_path / "slow-keepalived"
    fake.write_text(
        SLOW_START.format(
            python=sys.executable,
            hups=str(hups),
            startup=startup,
            announce=(
                'print("Thu Dec  3 09:38:58 2026: Startup complete", flush=True)'
                if announce
                else "pass"
            ),
        )
    )
    fake.chmod(0o755)
    settings = KeepalivedSettings(binary=str(fake))
    return KeepalivedSupervisor(settings=settings, runtime_dir=tmp_path / "run"), hups


def _hups(path: Path, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.02)
    return path.read_text().split() if path.exists() else []


def test_a_reload_during_the_start_waits_until_keepalived_is_ready(tmp_path: Path) -> None:
    sup, hups = _slow_supervisor(tmp_path, startup=0.5)
    vips = {"oelbnonexistent0": {"10.99.0.1"}}
    with sup:
        assert sup.apply("first\n", vips).action == "started"
        assert sup.apply("second\n", vips).action == "reloaded"
        assert sup.apply("third\n", vips).action == "reloaded"
        assert sup.reloads == 0  # held: keepalived has not started yet
        assert _hups(hups, 1) == ["reload"]  # one SIGHUP, once it is ready, for the newest
        assert sup.reloads == 1 and sup.paths.config.read_text() == "third\n"
        # Ready now: the next change is a reload at once.
        assert sup.apply("fourth\n", vips).action == "reloaded"
        assert _hups(hups, 2) == ["reload", "reload"]
        assert sup.restarts == 0


def test_a_keepalived_that_never_says_it_is_ready_still_gets_the_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "STARTUP_GRACE", 0.5)
    sup, hups = _slow_supervisor(tmp_path, startup=0.1, announce=False)
    vips = {"oelbnonexistent0": {"10.99.0.1"}}
    with sup:
        assert sup.apply("first\n", vips).action == "started"
        assert sup.apply("second\n", vips).action == "reloaded"
        assert _hups(hups, 1) == ["reload"]
        assert sup.reloads == 1
