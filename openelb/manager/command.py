"""``openelb manager``: flags to :class:`~openelb.config.ManagerSettings`, then run until signalled.

Kept apart from :mod:`openelb.cli` so the command line stays cheap to load: the Kubernetes client
and the manager are imported only when the command runs.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import click

from openelb.config import IpamSettings, KubeSettings, LeaderElectionSettings, ManagerSettings


@click.command("manager")
@click.option(
    "--kubeconfig",
    envvar="OPENELB_KUBECONFIG",
    help="kubeconfig path (default: $KUBECONFIG, in-cluster, ~/.kube/config).",
)
@click.option("--context", default=None, help="Context in the kubeconfig.")
@click.option(
    "--metrics-port",
    type=int,
    default=9443,
    show_default=True,
    envvar="OPENELB_METRICS_PORT",
    help="Prometheus endpoint port; 0 disables it.",
)
@click.option("--metrics-host", default="0.0.0.0", show_default=True)
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True)
@click.option("--lease-name", default="openelb-manager", show_default=True)
@click.option(
    "--lease-namespace", default="openelb-system", show_default=True, envvar="OPENELB_NAMESPACE"
)
@click.option("--identity", default="", help="Identity in the Lease (default: hostname-pid).")
@click.option("--lease-duration", type=float, default=15.0, show_default=True)
@click.option("--renew-deadline", type=float, default=10.0, show_default=True)
@click.option("--retry-period", type=float, default=2.0, show_default=True)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--write-concurrency", type=int, default=8, show_default=True)
@click.option("--router-id-first", type=int, default=1, show_default=True)
@click.option("--router-id-last", type=int, default=255, show_default=True)
@click.option("--router-id-reserved", default="", help="IDs never assigned, e.g. 1,2,50-60.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def manager_command(
    *,
    kubeconfig: str | None,
    context: str | None,
    metrics_port: int,
    metrics_host: str,
    leader_elect: bool,
    lease_name: str,
    lease_namespace: str,
    identity: str,
    lease_duration: float,
    renew_deadline: float,
    retry_period: float,
    batch_size: int,
    write_concurrency: int,
    router_id_first: int,
    router_id_last: int,
    router_id_reserved: str,
    log_level: str,
) -> None:
    """Run the manager: leader-elected IPAM for LoadBalancer Services."""
    try:
        settings = ManagerSettings(
            kube=KubeSettings(kubeconfig=kubeconfig, context=context),
            leader=LeaderElectionSettings(
                enabled=leader_elect,
                lease_name=lease_name,
                lease_namespace=lease_namespace,
                identity=identity,
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
            ),
            ipam=IpamSettings(
                router_id_first=router_id_first,
                router_id_last=router_id_last,
                router_id_reserved=IpamSettings.parse_ids(router_id_reserved),
            ),
            batch_size=batch_size,
            write_concurrency=write_concurrency,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(run(settings))


def run(settings: ManagerSettings) -> int:
    """Run a manager until SIGTERM/SIGINT; the exit status."""
    from prometheus_client import start_http_server

    from openelb import metrics
    from openelb.kube.client import connect
    from openelb.kube.errors import KubeConfigError

    try:
        api = connect(
            settings.kube.kubeconfig,
            context=settings.kube.context,
            timeout=settings.kube.request_timeout,
        )
    except KubeConfigError as exc:
        click.echo(f"openelb manager: {exc.message}", err=True)
        return 2
    from openelb.manager.process import Manager  # after the configuration is known to work

    if settings.metrics_port:
        start_http_server(settings.metrics_port, settings.metrics_host, metrics.registry)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    manager = Manager(api, settings)
    try:
        manager.run(stop)
    finally:
        api.close()
    return 0
