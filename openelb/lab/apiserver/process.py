"""``openelb lab apiserver``: the embedded apiserver as a process, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from openelb.lab.apiserver.resources import DEFAULT_CRD_DIR, CrdError
from openelb.lab.apiserver.server import DEFAULT_HISTORY_LIMIT, ApiServer


def serve(
    *,
    port: int,
    host: str,
    kubeconfig: str | None,
    crd_dir: str | None,
    history_limit: int | None,
) -> int:
    """Run until a signal; returns the exit code (2 on bad CRDs or a busy port)."""
    try:
        server = ApiServer(
            port=port,
            host=host,
            crds=Path(crd_dir) if crd_dir else DEFAULT_CRD_DIR,
            history_limit=history_limit or DEFAULT_HISTORY_LIMIT,
        )
        server.start()
    except CrdError as exc:
        print(f"openelb lab apiserver: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"openelb lab apiserver: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if kubeconfig:
            server.write_kubeconfig(kubeconfig)
        served = ", ".join(sorted({t.qualified for t in server.types.values()}))
        print(f"openelb lab apiserver: serving {server.url} ({served})", flush=True)
        if kubeconfig:
            print(f"openelb lab apiserver: kubeconfig written to {kubeconfig}", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    print("openelb lab apiserver: stopped", flush=True)
    return 0
