"""``openelb lab``: the whole system on one machine, told as a story a newcomer can follow.

It builds a :class:`~openelb.lab.cluster.LabCluster` (switch, client, N nodes in network
namespaces, the embedded apiserver), starts the real manager and one real speaker per node,
creates an Eip and a Service, and shows: the IP assigned, which node answers (its MAC), the
client's traffic answered, a node failure injected, the failover gap the client measured.
Everything is torn down at the end, on Ctrl-C and on errors; ``--keep`` leaves it running for
exploration and prints the commands to poke at it.

``--mode vip`` tells the same story in VIP mode (``openelb.lab.vipstory``): the Eip has
``protocol: vip`` and keepalived, run by the speakers, holds the VIP instead of the data plane.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from openelb.lab.cluster import LabCluster, LabError
from openelb.lab.netns import Host, Process, TestbedError
from openelb.lab.traffic import DEFAULT_PORT, GapReport, UdpStream, analyse
from openelb.lab.vipstory import MODES, tell_vrrp_masters
from openelb.status import collect

FAILURES = ("link", "kill", "graceful")
"""link: the owner's cable is pulled (hard node failure); kill: its speaker gets SIGKILL;
graceful: its speaker is stopped with SIGTERM (a rolling update)."""

SPEAKER_METRICS_PORT = 9406
SPEAKER_START_TIMEOUT = 60.0  # imports and the XDP compile, on a loaded 2-CPU machine
"""Inside each node's namespace, so the same port on every node. The manager's metrics port is
picked free at start (it runs in the root namespace, where another lab or test may be running)."""

_SCRAPE = (
    "import sys, urllib.request; "
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
)


@dataclass(frozen=True)
class LabOptions:
    nodes: int = 3
    family: str = "ipv4"
    failure: str = "link"
    keep: bool = False
    dataplane: str = "auto"
    mode: str = "layer2"
    """``layer2`` or ``vip`` (keepalived)."""
    speaker_args: tuple[str, ...] = ()


class Story:
    """Numbered steps on stdout; each says what is being done, then what came of it."""

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self.out = out
        self.step = 0
        self.started = time.monotonic()

    def begin(self, text: str) -> None:
        self.step += 1
        self.out(f"\n[{self.step}] {text}")

    def say(self, text: str) -> None:
        self.out(f"    {text}")


def _terminate_as_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_lab(options: LabOptions, out: Callable[[str], None] = print) -> int:
    """Run the story; 0 when every step did what it should, 1 otherwise (teardown either way)."""
    if options.failure not in FAILURES:
        raise LabError(f"failure must be one of {', '.join(FAILURES)}")
    if options.mode not in MODES:
        raise LabError(f"mode must be one of {', '.join(MODES)}")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
        # Ctrl-C tears the lab down even when we were started with SIGINT ignored (any
        # `cmd &` from a script: Python then installs no KeyboardInterrupt handler at all).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    story = Story(out)
    story.begin(f"Building the testbed: a switch, a client and {options.nodes} nodes")
    try:
        with LabCluster(nodes=options.nodes, family=options.family) as lab:
            manager_port = _free_port()
            ok = _story(lab, options, story, manager_port=manager_port)
            if options.keep:
                _keep(lab, story, manager_port=manager_port)
    except KeyboardInterrupt:
        out("\ninterrupted: tearing everything down")
        return 130
    except LabError as exc:
        out(f"\nlab failed: {exc}")
        return 1
    out("\nEverything was torn down (namespaces, processes, apiserver).")
    return 0 if ok else 1


def _story(lab: LabCluster, options: LabOptions, story: Story, *, manager_port: int) -> bool:
    client = lab.client
    assert client is not None
    story.say(
        f"namespaces {lab.testbed.run_id}-*: client {client.ipv4.ip}, "
        + ", ".join(f"{n.name} {n.ipv4.ip} (MAC {n.mac})" for n in lab.nodes)
    )
    story.say(f"embedded apiserver at {lab.apiserver.url}; nodes reach it at 127.0.0.1:6443")

    story.begin("Starting the manager and one speaker per node")
    if options.dataplane in ("auto", "xdp-native"):
        lab.prepare_native_xdp()
    manager = lab.start_manager("--metrics-host", "127.0.0.1", "--metrics-port", str(manager_port))
    speakers = {
        node.name: lab.start_speaker(
            node,
            "--metrics-port",
            str(SPEAKER_METRICS_PORT),
            "--dataplane",
            options.dataplane,
            *options.speaker_args,
        )
        for node in lab.nodes
    }
    started = time.monotonic()
    # A client that talks before the speakers serve sends ARP requests nobody answers yet.
    for proc in speakers.values():
        try:
            proc.wait_for_output("serving", timeout=SPEAKER_START_TIMEOUT)
        except TestbedError as exc:
            raise LabError(str(exc)) from exc
    _check_alive([manager], settle=0.0)
    story.say(
        f"manager pid {manager.pid}; speakers: "
        + ", ".join(f"{name} pid {p.pid}" for name, p in speakers.items())
        + f"; all serving after {time.monotonic() - started:.1f} s"
        + (" (each compiled its XDP program)" if options.dataplane != "afpacket" else "")
    )

    story.begin("Creating an Eip (address pool) and a LoadBalancer Service")
    pools = lab.pool()
    families = {"ipv4": ["ipv4"], "ipv6": ["ipv6"], "dual": ["ipv4", "ipv6"]}[options.family]
    for family in families:
        lab.create_eip(f"lab-{family}", pools[family], protocol=options.mode, default=True)
        story.say(f"Eip lab-{family}: {pools[family]} ({options.mode}, interface eth0)")
    created = time.monotonic()
    lab.create_service("echo")
    story.say("Service default/echo (UDP 7007), annotation lb.kubesphere.io/v1alpha1: openelb")
    vips = lab.wait_for_ingress("echo", count=len(families), timeout=15)
    story.say(f"IP assigned: {', '.join(vips)} in {(time.monotonic() - created) * 1000:.0f} ms")
    for vip in vips:
        lab.expose(vip)
    lab.start_echo_servers()

    ok = True
    if options.mode == "vip":
        story.begin("keepalived on the nodes elects a master for each VIP")
        eips = [f"lab-{family}" for family in families]
        ok &= tell_vrrp_masters(lab, eips=eips, vips=vips, say=story.say)
    failed: set[str] = set()
    for vip in vips:
        ok &= _show_vip(
            lab, client, vip=vip, options=options, story=story, speakers=speakers, failed=failed
        )
    _tell_metrics(lab, story, manager_port=manager_port, speakers=speakers, failed=failed)
    return ok


def _show_vip(
    lab: LabCluster,
    client: Host,
    *,
    vip: str,
    options: LabOptions,
    story: Story,
    speakers: dict[str, Process],
    failed: set[str],
) -> bool:
    story.begin(f"The client talks to {vip}")
    before = analyse(UdpStream((vip, DEFAULT_PORT), duration=0.5, netns=client.netns).run())
    if not before.received:
        story.say(f"no answer from {vip}: no node announces it (speaker logs below)")
        _tell_logs(story, speakers)
        return False
    # The client's neighbour entry is the ground truth for "who answers": every node accepts the
    # VIP's traffic (as kube-proxy does), so only the announced MAC decides where it goes.
    entry = client.neighbour(vip)
    mac = entry[0] if entry else "?"
    by_mac = lab.node_by_mac(mac) if entry else None
    owner = by_mac or lab.node(before.responder_before or next(iter(before.responders_before), ""))
    story.say(f"answered by {owner.name}; the client's neighbour entry: {vip} -> {mac}")
    story.say(f"{before.received}/{before.sent} datagrams answered")
    if not _status_agrees(lab, story, vip=vip, owner=owner):
        return False

    what = {
        "link": f"pulling {owner.name}'s network cable (hard node failure)",
        "kill": f"killing {owner.name}'s speaker with SIGKILL",
        "graceful": f"stopping {owner.name}'s speaker gracefully (SIGTERM)",
    }[options.failure]
    story.begin(f"Failure: {what}, while the client streams a datagram every 1 ms")
    stream = UdpStream((vip, DEFAULT_PORT), duration=3.0, netns=client.netns).start()
    time.sleep(1.0)
    stream.mark("failure")
    failed.add(owner.name)
    if options.failure == "link":
        owner.link_down()
    elif options.failure == "kill":
        speakers[owner.name].kill()
    else:
        speakers[owner.name].stop()
    report = stream.wait(timeout=10)
    gap = analyse(report, event="failure")
    ok = _tell_failover(gap, owner=owner, lab=lab, client=client, vip=vip, story=story)
    if not ok:
        story.say("speaker logs (last lines):")
        _tell_logs(story, speakers)
    return ok


def _tell_logs(story: Story, speakers: dict[str, Process], *, tail: int = 1500) -> None:
    """The last ``tail`` characters of each speaker's log, indented under its name: what a
    newcomer needs when the story stops short."""
    for name, proc in speakers.items():
        story.say(f"--- {name}:\n    " + proc.log()[-tail:].replace("\n", "\n    "))


def _tell_failover(
    gap: GapReport, *, owner: Host, lab: LabCluster, client: Host, vip: str, story: Story
) -> bool:
    if not gap.responder_after:
        story.say("nobody answered after the failure: the failover did not happen")
        return False
    entry = client.neighbour(vip)
    story.say(
        f"{gap.responder_after} took over: the client's traffic stopped for "
        f"{gap.gap * 1000:.1f} ms ({gap.lost_in_gap} datagrams unanswered)"
    )
    if entry:
        new = lab.node_by_mac(entry[0])
        story.say(
            f"the client's neighbour entry now: {vip} -> {entry[0]}"
            f" ({new.name if new else 'unknown MAC'})"
        )
    if gap.responder_after == owner.name:
        story.say("(the same node still answers: its failure did not stop it answering)")
    return gap.responder_after != owner.name


def _status_agrees(lab: LabCluster, story: Story, *, vip: str, owner: Host) -> bool:
    """`openelb status` works out the holder from the objects; it must be the MAC's node."""
    status = collect(lab.api)
    found = [(s.key, a) for s in status.services for a in s.addresses if a.ip == vip]
    if not found:
        story.say(f"openelb status does not list {vip}")
        return False
    key, address = found[0]
    holder = address.holder.split(" ", 1)[0]
    if holder == owner.name:
        story.say(
            f"openelb status: {key} {vip} answered by {holder}, backup {address.backup}"
            " (agrees with the client)"
        )
    elif address.announced_by == owner.name:
        story.say(
            f"openelb status: {key} {vip} last announced by {owner.name} (agrees with the "
            f"client); by the Leases alone it would be {holder}, whose Lease has not expired yet"
        )
    if owner.name not in (holder, address.announced_by):
        story.say(
            f"openelb status says {holder} answers {vip} (last announced by "
            f"{address.announced_by}), but the client reached {owner.name}"
        )
        return False
    return True


def _tell_metrics(
    lab: LabCluster,
    story: Story,
    *,
    manager_port: int,
    speakers: dict[str, Process],
    failed: set[str],
) -> None:
    story.begin("What the metrics say (Prometheus text on each speaker and the manager)")
    for node in lab.nodes:
        if not speakers[node.name].alive():
            story.say(f"{node.name}: speaker stopped")
            continue
        url = f"http://127.0.0.1:{SPEAKER_METRICS_PORT}/metrics"
        samples = _scrape(node, url)
        owned = _total(samples, "openelb_speaker_vips_owned")
        count = _total(samples, "openelb_speaker_failover_seconds_count")
        seconds = _total(samples, "openelb_speaker_failover_seconds_sum")
        took = f", took over {count:.0f}x in {seconds / count * 1000:.1f} ms avg" if count else ""
        cut = " (its cable is pulled: it cannot know it lost them)" if node.name in failed else ""
        story.say(f"{node.name} ({node.netns}) {url}: owns {owned:.0f} VIP(s){took}{cut}")
    manager_url = f"http://127.0.0.1:{manager_port}/metrics"
    samples = _scrape(None, manager_url)
    used = _total(samples, "openelb_ipam_pool_used_addresses")
    leader = _total(samples, "openelb_kube_leader")
    story.say(f"manager {manager_url}: leader={leader:.0f}, pool addresses used {used:.0f}")


def _scrape(host: Host | None, url: str) -> dict[str, float]:
    """Metric samples (name{labels} -> value) from ``url``, inside ``host``'s namespace if given."""
    from prometheus_client.parser import text_string_to_metric_families

    cmd = [sys.executable, "-c", _SCRAPE, url]
    try:
        if host is None:
            text = subprocess.run(
                cmd, capture_output=True, text=True, timeout=10, check=True
            ).stdout
        else:
            text = host.run(cmd, timeout=10).stdout
    except (subprocess.SubprocessError, OSError):
        return {}
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def _total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k.split("{", 1)[0] == name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_alive(processes: list[Process], *, settle: float) -> None:
    time.sleep(settle)
    dead = [p for p in processes if not p.alive()]
    if dead:
        logs = "\n".join(f"--- {p.name}:\n{p.log()[-1500:]}" for p in dead)
        raise LabError(f"{', '.join(p.name for p in dead)} exited at start:\n{logs}")


def _keep(lab: LabCluster, story: Story, *, manager_port: int) -> None:
    client = lab.client
    assert client is not None
    node = lab.nodes[0]
    story.begin("Left running for you (Ctrl-C tears it all down). Try:")
    story.say(f"ip netns exec {client.netns} arping -c 3 -I eth0 <vip>")
    story.say(f"ip netns exec {client.netns} ip neigh")
    story.say(
        f"ip netns exec {client.netns} {sys.executable} -m openelb.lab.traffic stream "
        f"--target <vip>:{DEFAULT_PORT} --duration 5"
    )
    story.say(f"ip netns exec {node.netns} curl -s 127.0.0.1:{SPEAKER_METRICS_PORT}/metrics")
    story.say(f"curl -s 127.0.0.1:{manager_port}/metrics   (the manager)")
    story.say(f"{Path(sys.executable).parent / 'openelb'} status --kubeconfig {lab.kubeconfig}")
    story.say(f"KUBECONFIG={lab.kubeconfig} (the embedded apiserver, for any kubernetes client)")
    threading.Event().wait()
