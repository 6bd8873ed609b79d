"""Running the speaker as a process: signals, metrics endpoint, logging; used by the CLI.

SIGTERM and SIGINT mean a graceful stop (withdraw, GOODBYE, delete the Lease: the backups take
over within a round trip). SIGKILL cannot be caught: then the heartbeats and the data plane's
liveness gate simply stop and the backups take over after the detection time.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from openelb.config import KeepalivedSettings, SpeakerSettings
from openelb.kube.client import connect
from openelb.kube.errors import KubeConfigError
from openelb.speaker.node import SpeakerNode

log = logging.getLogger(__name__)


def serve(
    settings: SpeakerSettings,
    *,
    kubeconfig: str | None,
    metrics_port: int | None,
    instance: str,
    keepalived: KeepalivedSettings | None = None,
) -> int:
    """Run until a signal; the exit code (2 on bad configuration)."""
    logging.basicConfig(
        level=os.environ.get("OPENELB_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        api = connect(kubeconfig)
    except KubeConfigError as exc:
        print(f"openelb speaker: {exc}", file=sys.stderr)
        return 2
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from openelb import metrics

        start_http_server(metrics_port, registry=metrics.registry)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping gracefully", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    node = SpeakerNode(settings=settings, api=api, instance=instance, keepalived=keepalived)
    try:
        node.start()
    except (TimeoutError, ValueError, OSError) as exc:
        print(f"openelb speaker: {exc}", file=sys.stderr)
        node.shutdown(graceful=False)
        return 2
    print(f"openelb speaker {settings.node}: serving", flush=True)
    node.run(stop)
    return 0
