"""VIP mode end to end: the real manager, real ``openelb speaker`` processes, real keepalived.

A LabCluster (switch, client, three node namespaces, the embedded apiserver) runs the manager
and one speaker per node; a Service on a ``protocol: vip`` Eip gets its IP from the manager, the
router ID from the Eip status, and the speakers' keepalived put the VIP on exactly one node's
NIC. The assertions are about who holds the VIP and who answers the client, never about how
fast: the gaps are printed (``-s``) and measured properly by ``benchmarks/failover_vip.py``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from openelb.kube.resources import EIPS, EVENTS
from openelb.lab.cluster import LabCluster
from openelb.lab.netns import Process, Testbed
from openelb.lab.traffic import DEFAULT_PORT, UdpStream, analyse
from tests.keepalived.waiting import eventually

pytestmark = [pytest.mark.keepalived, pytest.mark.netns, pytest.mark.slow]

METRICS_PORT = 9406
SETTLE = 30.0
"""Generous: three Python processes and keepalived start on a loaded 2-CPU machine."""
START = 120.0
"""Until every speaker serves: each compiles its XDP program, which took over 30 s at a load
of 30 on this 2-CPU machine."""


@dataclass
class VipLab:
    lab: LabCluster
    vip: str
    speakers: dict[str, Process]

    def holders(self) -> set[str]:
        """Nodes with the VIP on their LAN NIC (what keepalived's master does)."""
        held = set()
        for node in self.lab.nodes:
            out = node.run(["ip", "-o", "addr", "show", "dev", node.ifname]).stdout
            if f" {self.vip}/" in out:
                held.add(node.name)
        return held

    def wait_single_holder(
        self, *, other_than: str = "", quiet: float = 2.0, timeout: float = SETTLE
    ) -> str:
        """The one node holding the VIP once that has not changed for ``quiet`` seconds.

        Settled, not just single: a restarted or healed preferred master takes the VIP back
        (preemption) a moment after another node took it.
        """
        found: set[str] = set()
        since = (frozenset[str](), time.monotonic())

        def settled() -> bool:
            nonlocal found, since
            found = self.holders()
            now = time.monotonic()
            if found != since[0]:
                since = (frozenset(found), now)
            return len(found) == 1 and other_than not in found and now - since[1] >= quiet

        assert eventually(settled, timeout), f"holders of {self.vip}: {found}\n{self.logs()}"
        return next(iter(found))

    def wait_serving(self) -> None:
        for proc in self.speakers.values():
            proc.wait_for_output("serving", timeout=START)

    def wait_configured(self, timeout: float = SETTLE) -> None:
        """Until every speaker's keepalived config names all the other nodes as unicast peers.

        Before that a speaker that has not seen the others yet holds the VIP alone, and the
        preferred master takes it over when its own keepalived joins: a legitimate move (one
        holder at a time), which a "settled" holder sampled too early would mistake for two.
        """
        addresses = {node.name: str(node.ipv4.ip) for node in self.lab.nodes}

        def configured() -> bool:
            for name in self.speakers:
                lines = {line.strip() for line in self._config(name).splitlines()}
                if any(ip not in lines for other, ip in addresses.items() if other != name):
                    return False
            return True

        assert eventually(configured, timeout), (
            f"not every node peers with the others\n{self.logs()}"
        )

    def _config(self, node: str) -> str:
        try:
            return (self.lab.keepalived_dir(node) / "keepalived.conf").read_text()
        except OSError:
            return ""

    def answered_by(self, duration: float = 0.5) -> set[str]:
        client = self.lab.client
        assert client is not None
        stream = UdpStream((self.vip, DEFAULT_PORT), duration=duration, netns=client.netns)
        report = analyse(stream.run())
        return set(report.responders_before) | set(report.responders_after)

    def metrics(self, node: str) -> str:
        done = self.lab.node(node).run(
            ["curl", "-s", "--max-time", "5", f"http://127.0.0.1:{METRICS_PORT}/metrics"],
            check=False,
        )
        return done.stdout

    def sample(self, node: str, name: str, **labels: str) -> float | None:
        """One sample of ``node``'s speaker metrics (labels matched as a subset), or None."""
        for family in text_string_to_metric_families(self.metrics(node)):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return None

    def events(self, reason: str) -> list[str]:
        items, _ = self.lab.api.list(EVENTS, namespace="default")
        return [str(e.get("message", "")) for e in items if e.get("reason") == reason]

    def keepalived_pid(self, node: str) -> int | None:
        path = self.lab.keepalived_dir(node) / "keepalived.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def logs(self) -> str:
        """Each speaker's log tail and the instance its keepalived runs (priority, peers): two
        masters mean two nodes whose configs do not name each other, or a reload not taken."""
        parts = []
        for name, proc in self.speakers.items():
            config = self._config(name) or "(none)"
            instance = (
                config[config.find("vrrp_instance") :] if "vrrp_instance" in config else config
            )
            parts.append(
                f"--- {name}:\n{proc.log()[-1500:]}\n{name}'s keepalived.conf:\n{instance}"
            )
        return "\n".join(parts)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def vip_lab(testbed: Testbed) -> Iterator[VipLab]:
    with LabCluster(nodes=3, testbed=testbed) as lab:
        lab.start_manager()
        lab.create_eip("vips", lab.pool()["ipv4"], protocol="vip", default=True)
        lab.create_service("web")
        (vip,) = lab.wait_for_ingress("web", timeout=SETTLE)
        assert eventually(
            lambda: (lab.api.get(EIPS, "vips").get("status") or {}).get("virtualRouterIDs"),
            SETTLE,
        ), "the manager assigns the VIP a router ID"
        speakers = {
            node.name: lab.start_speaker(node, "--metrics-port", str(METRICS_PORT))
            for node in lab.nodes
        }
        lab.start_echo_servers()
        vips = VipLab(lab, vip, speakers)
        vips.wait_serving()
        vips.wait_configured()
        yield vips


def test_one_node_holds_the_vip_reports_it_and_survives_keepalived_being_killed(
    vip_lab: VipLab,
) -> None:
    holder = vip_lab.wait_single_holder()
    assert vip_lab.answered_by() == {holder}

    assert eventually(lambda: any(holder in m for m in vip_lab.events("VIPHeld")), SETTLE), (
        vip_lab.events("VIPHeld")
    )
    assert eventually(
        lambda: vip_lab.sample(holder, "openelb_vrrp_state", state="MASTER") == 1.0, SETTLE
    ), vip_lab.metrics(holder)

    # keepalived dies under the speaker: the supervisor starts a new one, one node holds the VIP.
    old = vip_lab.keepalived_pid(holder)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert eventually(lambda: vip_lab.keepalived_pid(holder) not in (None, old), SETTLE), (
        vip_lab.logs()
    )
    assert eventually(
        lambda: (
            vip_lab.sample(holder, "openelb_keepalived_restarts_total", reason="signal SIGKILL")
            == 1.0
        ),
        SETTLE,
    ), vip_lab.metrics(holder)
    now = vip_lab.wait_single_holder()
    assert vip_lab.answered_by() == {now}

    # The speaker itself is SIGKILLed: its keepalived must not go on serving a config nobody
    # updates any more; it leaves (death signal) and another node takes the VIP.
    pid = vip_lab.keepalived_pid(now)
    vip_lab.speakers[now].kill()
    assert eventually(lambda: pid is not None and not _alive(pid), SETTLE), vip_lab.logs()
    after = vip_lab.wait_single_holder(other_than=now)
    assert vip_lab.answered_by() == {after}


def test_graceful_stop_and_link_cut_move_the_vip_and_never_leave_two_masters(
    vip_lab: VipLab,
) -> None:
    first = vip_lab.wait_single_holder()
    client = vip_lab.lab.client
    assert client is not None

    # A rolling update: the holder's speaker stops; keepalived leaves with a priority-0 advert.
    stream = UdpStream((vip_lab.vip, DEFAULT_PORT), duration=4.0, netns=client.netns).start()
    time.sleep(0.5)
    stream.mark("stop")
    vip_lab.speakers[first].stop(timeout=20)
    report = analyse(stream.wait(timeout=30), event="stop")
    second = vip_lab.wait_single_holder(other_than=first)
    # (No assertion on the stream's largest gap: a graceful handover takes a few ms, and on a
    # loaded machine scheduling noise can make a longer pause elsewhere in the stream.)
    print(f"\ngraceful stop of {first}: gap {report.gap * 1000:.0f} ms, now {second}")
    assert vip_lab.answered_by() == {second}
    assert eventually(lambda: any(first in m for m in vip_lab.events("VIPReleased")), SETTLE)

    # A hard failure: the new holder's cable is pulled; the last node takes over.
    stream = UdpStream((vip_lab.vip, DEFAULT_PORT), duration=4.0, netns=client.netns).start()
    time.sleep(0.5)
    stream.mark("cut")
    vip_lab.lab.node(second).link_down()
    report = analyse(stream.wait(timeout=30), event="cut")
    (third,) = {n.name for n in vip_lab.lab.nodes} - {first, second}
    print(f"link cut of {second}: gap {report.gap * 1000:.0f} ms, now {report.responder_after}")
    assert report.responder_after == third
    assert eventually(lambda: third in vip_lab.holders(), SETTLE)

    # Healed: after things settle exactly one node holds the VIP and answers.
    vip_lab.lab.node(second).link_up()
    time.sleep(2.0)
    holder = vip_lab.wait_single_holder()
    assert vip_lab.answered_by() == {holder}
    assert len(vip_lab.holders()) == 1


def test_layer2_and_vip_eips_are_served_side_by_side_by_the_same_speakers(
    testbed: Testbed,
) -> None:
    with LabCluster(nodes=2, testbed=testbed) as lab:
        lab.start_manager()
        v4 = lab.testbed.subnet4
        lab.create_eip("l2", f"{v4[220]}-{v4[221]}")
        lab.create_eip("vips", f"{v4[230]}-{v4[231]}", protocol="vip")
        lab.create_service("layer2", annotations={"eip.openelb.kubesphere.io/v1alpha2": "l2"})
        lab.create_service("vipmode", annotations={"eip.openelb.kubesphere.io/v1alpha2": "vips"})
        (l2_vip,) = lab.wait_for_ingress("layer2", timeout=SETTLE)
        (vrrp_vip,) = lab.wait_for_ingress("vipmode", timeout=SETTLE)
        lab.expose(l2_vip)  # kube-proxy's part for the Layer 2 VIP; keepalived adds its own
        speakers = {
            node.name: lab.start_speaker(node, "--dataplane", "afpacket") for node in lab.nodes
        }
        lab.start_echo_servers()
        vrrp = VipLab(lab, vrrp_vip, speakers)
        vrrp.wait_serving()
        vrrp.wait_configured()
        holder = vrrp.wait_single_holder()
        assert vrrp.answered_by() == {holder}, vrrp.logs()
        # The Layer 2 VIP is answered by the data plane (never put on a NIC by keepalived).
        layer2 = VipLab(lab, l2_vip, speakers)
        assert eventually(lambda: len(layer2.answered_by(duration=0.3)) == 1, SETTLE), vrrp.logs()
        assert layer2.holders() == set()
