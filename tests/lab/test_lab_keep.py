"""`openelb lab --keep` as a user runs it: it stays up, says how to poke at it, Ctrl-C cleans up."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from openelb.lab.netns import list_netns

pytestmark = [pytest.mark.netns, pytest.mark.slow]

OPENELB = str(Path(sys.executable).parent / "openelb")
LAB = ["lab", "--nodes", "2", "--dataplane", "afpacket", "--keep"]


class _Output:
    """Everything the process printed so far, read by a thread (so reads never block the test)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        self.thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.thread.start()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.text:
                return self.text
            time.sleep(0.1)
        raise AssertionError(f"{marker!r} not printed within {timeout:.0f} s:\n{self.text}")


def test_keep_leaves_it_running_until_ctrl_c_then_tears_everything_down() -> None:
    proc = subprocess.Popen(
        # Started with SIGINT ignored, as a script's `openelb lab --keep &` starts it; Python then
        # installs no Ctrl-C handler of its own, the lab must (it once hung here).
        ["sh", "-c", 'trap "" INT; exec "$0" "$@"', OPENELB, *LAB],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(proc)
    try:
        text = output.wait_for("Ctrl-C tears it all down", timeout=120)
        run_id = text.split("namespaces ", 1)[1].split("-*", 1)[0]
        assert [ns for ns in list_netns() if ns.startswith(run_id)]  # still up
        kubeconfig = text.split("KUBECONFIG=", 1)[1].split()[0]
        status = subprocess.run(
            [OPENELB, "status", "--kubeconfig", kubeconfig],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert "default/echo" in status.stdout
        proc.send_signal(signal.SIGINT)
        try:
            # Teardown stops every process (each gets seconds to stop gracefully) and deletes
            # the namespaces: generous, for a loaded 2-CPU machine.
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit 180 s after Ctrl-C:\n{output.text}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output.thread.join(timeout=10)
    out = output.text
    assert proc.returncode == 130, out
    assert "tearing everything down" in out
    assert not [ns for ns in list_netns() if ns.startswith(run_id)]
