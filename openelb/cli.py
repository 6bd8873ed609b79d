"""The ``openelb`` command: manager, speaker, lab, bench, status, version."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from openelb import __version__
from openelb.keepalived.options import keepalived_options
from openelb.manager.command import manager_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """openelb: a bare-metal load balancer for Kubernetes (Layer 2 and VIP modes)."""


@main.command()
def version() -> None:
    """Print the version, the packet module in use and whether XDP works on this host."""
    from openelb.dataplane import packet
    from openelb.dataplane.capability import probe_xdp

    click.echo(f"openelb {__version__}")
    module = packet.IMPLEMENTATION
    if packet.FALLBACK_REASON:
        module += f" ({packet.FALLBACK_REASON})"
    click.echo(f"packet module: {module}")
    xdp = probe_xdp()
    if xdp.usable:
        click.echo(f"xdp: usable (bcc {xdp.bcc_version})")
    else:
        click.echo(f"xdp: not usable: {xdp.reason}")


# --- manager (issue #4): flags and run loop live in openelb.manager.command -----------------------
main.add_command(manager_command)


# --- speaker (issue #6) --------------------------------------------------------------------------
@main.command()
@click.option("--kubeconfig", default=None, help="Kubeconfig path (default: in-cluster).")
@click.option("--node", envvar="NODE_NAME", required=True, help="This node's name [$NODE_NAME].")
@click.option("--heartbeat-address", default="", help="Heartbeat IP (default: InternalIP).")
@click.option("--heartbeat-port", type=int, default=7947, show_default=True)
@click.option("--heartbeat-interval", type=float, default=0.02, show_default=True)
@click.option("--heartbeat-misses", type=int, default=5, show_default=True)
@click.option("--heartbeat-key", envvar="OPENELB_HEARTBEAT_KEY", default="", help="HMAC secret.")
@click.option("--hung-after", type=float, default=2.0, show_default=True)
@click.option("--announce-burst", default="0,0.1,0.5,1,2", show_default=True)
@click.option("--announce-refresh", type=float, default=None, help="Re-announce period (s).")
@click.option("--probe-wait", type=float, default=0.03, show_default=True)
@click.option("--lease-namespace", default="openelb-system", show_default=True)
@click.option("--lease-duration", type=float, default=15.0, show_default=True)
@click.option(
    "--dataplane",
    type=click.Choice(["auto", "xdp-native", "xdp-generic", "afpacket"]),
    default="auto",
    show_default=True,
)
@click.option("--instance", default="default", show_default=True, help="bpffs pin folder name.")
@click.option("--metrics-port", type=int, default=None, help="Serve /metrics on this port.")
@keepalived_options  # VIP mode (issue #8): keepalived flags, used once an Eip has protocol: vip
def speaker(  # noqa: PLR0917 - click passes every option by name
    kubeconfig: str | None,
    node: str,
    heartbeat_address: str,
    heartbeat_port: int,
    heartbeat_interval: float,
    heartbeat_misses: int,
    heartbeat_key: str,
    hung_after: float,
    announce_burst: str,
    announce_refresh: float | None,
    probe_wait: float,
    lease_namespace: str,
    lease_duration: float,
    dataplane: str,
    instance: str,
    metrics_port: int | None,
    **vip_mode: Any,
) -> None:
    """Run the speaker on a node: announce its Layer 2 VIPs, run keepalived for VIP-mode ones."""
    from openelb.config import SpeakerSettings
    from openelb.keepalived.options import settings_from_options
    from openelb.speaker.process import serve

    keepalived = settings_from_options(vip_mode)
    try:
        settings = SpeakerSettings(
            node=node,
            heartbeat_address=heartbeat_address,
            heartbeat_port=heartbeat_port,
            heartbeat_interval=heartbeat_interval,
            heartbeat_misses=heartbeat_misses,
            heartbeat_key=heartbeat_key,
            hung_after=hung_after,
            announce_burst=SpeakerSettings.parse_burst(announce_burst),
            announce_refresh=announce_refresh,
            probe_wait=probe_wait,
            lease_namespace=lease_namespace,
            lease_duration=lease_duration,
            dataplane=dataplane,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    sys.exit(
        serve(
            settings,
            kubeconfig=kubeconfig,
            metrics_port=metrics_port,
            instance=instance,
            keepalived=keepalived,
        )
    )


@main.group(invoke_without_command=True)
@click.option("--nodes", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option(
    "--family",
    type=click.Choice(["ipv4", "ipv6", "dual"]),
    default="ipv4",
    show_default=True,
    help="Address family of the Service IP (dual: one of each).",
)
@click.option(
    "--failure",
    type=click.Choice(["link", "kill", "graceful"]),
    default="link",
    show_default=True,
    help="How the owner node fails: cable pulled, speaker SIGKILLed, speaker stopped.",
)
@click.option("--keep", is_flag=True, help="Leave it running for exploration (Ctrl-C ends).")
@click.option(
    "--dataplane",
    type=click.Choice(["auto", "xdp-native", "xdp-generic", "afpacket"]),
    default="auto",
    show_default=True,
    help="How the speakers answer ARP/NDP: XDP where it loads, else AF_PACKET.",
)
@click.option(
    "--mode",
    type=click.Choice(["layer2", "vip"]),
    default="layer2",
    show_default=True,
    help="layer2: the speakers answer ARP/NDP; vip: keepalived (VRRPv3) holds the VIP.",
)
@click.pass_context
def lab(  # noqa: PLR0917 - click passes options positionally
    ctx: click.Context,
    nodes: int,
    family: str,
    failure: str,
    keep: bool,
    dataplane: str,
    mode: str,
) -> None:
    """Build the whole system in network namespaces and show a failover."""
    if ctx.invoked_subcommand is not None:
        return
    from openelb.lab.scenario import LabOptions, run_lab

    sys.exit(
        run_lab(
            LabOptions(
                nodes=nodes,
                family=family,
                failure=failure,
                keep=keep,
                dataplane=dataplane,
                mode=mode,
            )
        )
    )


# --- lab apiserver (issue #3) ------------------------------------------------------------------
@lab.command("apiserver")
@click.option("--port", type=int, default=0, show_default=True, help="TCP port (0: any free).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write a kubeconfig for the server here.",
)
@click.option(
    "--crd-dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Directory of CRD manifests to serve [default: deploy/crds].",
)
@click.option(
    "--history-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Watch events kept for resuming watches.",
)
def lab_apiserver(
    port: int, host: str, kubeconfig: str | None, crd_dir: str | None, history_limit: int | None
) -> None:
    """Run the embedded Kubernetes apiserver until SIGTERM or Ctrl-C."""
    from openelb.lab.apiserver.process import serve

    sys.exit(
        serve(
            port=port,
            host=host,
            kubeconfig=kubeconfig,
            crd_dir=crd_dir,
            history_limit=history_limit,
        )
    )


@main.command()
@click.option("--only", multiple=True, help="Run only this benchmark (repeatable), e.g. ipam.")
@click.option("--quick", is_flag=True, help="Smaller runs for a first picture in minutes.")
@click.option(
    "--timeout",
    type=float,
    default=1800.0,
    show_default=True,
    help="Seconds one benchmark may take before it is stopped.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.md and the plots (default: benchmarks/results).",
)
def bench(only: tuple[str, ...], quick: bool, timeout: float, out: Path | None) -> None:
    """Run the benchmark suite one benchmark at a time and write the report (markdown + PNG)."""
    from openelb.lab.benchrun import run_suite

    sys.exit(run_suite(only=only, quick=quick, timeout=timeout, out_dir=out))


@main.command()
@click.option(
    "--kubeconfig",
    default=None,
    help="Kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config).",
)
@click.option("--context", default=None, help="Context in the kubeconfig.")
@click.option(
    "--lease-namespace",
    default="openelb-system",
    show_default=True,
    envvar="OPENELB_NAMESPACE",
    help="Where the manager's and speakers' Leases live.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(
    kubeconfig: str | None, context: str | None, lease_namespace: str, as_json: bool
) -> None:
    """Show pools, Services and which node announces each VIP."""
    from openelb.kube.client import connect
    from openelb.kube.errors import KubeConfigError, KubeError
    from openelb.status import collect, render

    try:
        api = connect(kubeconfig, context=context)
    except KubeConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        result = collect(api, namespace=lease_namespace)
    except KubeError as exc:
        raise click.ClickException(f"cannot read the cluster at {api.host}: {exc}") from exc
    finally:
        api.close()
    click.echo(result.as_json() if as_json else render(result))


if __name__ == "__main__":
    main()
