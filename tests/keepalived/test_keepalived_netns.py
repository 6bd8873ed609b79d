"""Real keepalived in namespaces: three nodes and a client on one switch, unicast VRRPv3.

Each node runs a KeepalivedAnnouncer (plan, render, ``keepalived -t``, supervised child, FIFO
state) in its own namespace; the client streams UDP to the VIP with the traffic tool, whose
echo servers name the node that answered.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from openelb.keepalived.announcer import KeepalivedAnnouncer
from openelb.keepalived.model import DesiredState, DesiredVip, NodeAddresses
from openelb.keepalived.nicaddresses import addresses_on
from openelb.keepalived.notify import VrrpState
from openelb.keepalived.states import VipStateChange
from openelb.lab.netns import Host, Testbed
from openelb.lab.traffic import DEFAULT_PORT, EchoServer, UdpStream, analyse, start_echo_server
from tests.keepalived.waiting import eventually

pytestmark = [pytest.mark.keepalived, pytest.mark.netns, pytest.mark.slow]

NAMES = ("a", "b", "c")


@dataclass
class Cluster:
    testbed: Testbed
    client: Host
    hosts: dict[str, Host]
    announcers: dict[str, KeepalivedAnnouncer]
    servers: list[EchoServer]
    changes: list[VipStateChange] = field(default_factory=list)
    addresses: dict[str, NodeAddresses] = field(default_factory=dict)

    def desired(self, node: str, vips: list[tuple[str, str, int]]) -> DesiredState:
        return DesiredState(
            node,
            tuple(DesiredVip(ip, eip, rid, frozenset(self.hosts), "eth0") for ip, eip, rid in vips),
            self.addresses,
        )

    def apply_all(self, vips: list[tuple[str, str, int]]) -> None:
        for name, announcer in self.announcers.items():
            outcome = announcer.apply(self.desired(name, vips))
            assert outcome.result.applied, outcome.result.error

    def holders(self, vip: str) -> list[str]:
        return [n for n, h in self.hosts.items() if vip in addresses_on("eth0", netns=h.netns)]

    def preferred(self, vip: str) -> str:
        for announcer in self.announcers.values():
            if announcer.plan is not None:
                for inst in announcer.plan.instances:
                    if vip in inst.vips:
                        return inst.preferred
        raise AssertionError(f"{vip} is in no plan")

    def master(self, vip: str) -> str:
        """The VIP's holder once the election settled (on the ranking's preferred node)."""
        want = [self.preferred(vip)]
        assert eventually(lambda: self.holders(vip) == want), f"holders: {self.holders(vip)}"
        return want[0]


@pytest.fixture
def cluster(testbed: Testbed, tmp_path: Path) -> Iterator[Cluster]:
    client = testbed.add_host("client")
    hosts = {name: testbed.add_host(name) for name in NAMES}
    c = Cluster(testbed, client, hosts, {}, [])
    c.addresses = {n: NodeAddresses(n, str(h.ipv4.ip), str(h.ipv6.ip)) for n, h in hosts.items()}
    try:
        for name, host in hosts.items():
            c.servers.append(start_echo_server(host))
            c.announcers[name] = KeepalivedAnnouncer(
                node=name,
                runtime_dir=tmp_path / name,
                netns=host.netns,
                on_change=c.changes.append,
            ).start()
        yield c
    finally:
        for announcer in c.announcers.values():
            announcer.close()
        for server in c.servers:
            server.stop()


def _vip(testbed: Testbed, n: int) -> str:
    return str(testbed.subnet4[200 + n])


def test_one_master_holds_the_vip_and_takes_it_over_when_its_link_is_cut(cluster: Cluster) -> None:
    vip = _vip(cluster.testbed, 0)
    cluster.apply_all([(vip, "pool1", 7), (str(cluster.testbed.subnet6[0x200]), "pool1", 7)])
    first = cluster.master(vip)
    vip6 = str(cluster.testbed.subnet6[0x200])
    assert eventually(lambda: cluster.holders(vip6) == [first])  # both families on one node
    assert eventually(lambda: vip in cluster.announcers[first].held())
    assert [n for n, a in cluster.announcers.items() if vip in a.held()] == [first]
    stream = UdpStream(
        (vip, DEFAULT_PORT), interval=0.002, duration=8.0, netns=cluster.client.netns
    ).start()
    try:
        assert eventually(lambda: stream.replies_seen() >= 20)
        assert stream.last_responder() == first
        stream.mark("cut")
        cluster.hosts[first].link_down()
        assert eventually(lambda: stream.last_responder() not in ("", first), timeout=6.0)
        time.sleep(0.1)
    finally:
        stream.stop()
        result = stream.wait(timeout=10.0)
    report = analyse(result, event="cut")
    assert report.responder_before == first and report.moved
    second = report.responder_after
    assert cluster.announcers[second].vip_states()[vip] is VrrpState.MASTER
    assert cluster.announcers[first].vip_states()[vip] is VrrpState.FAULT
    assert any(
        c.node == second and c.vip == vip and c.state is VrrpState.MASTER for c in cluster.changes
    )
    # Failover measured on the node that took over (last advert of the old master -> MASTER).
    took = [c for c in cluster.changes if c.node == second and c.vip == vip and c.failover]
    assert took and 0 < took[-1].failover < 5


def test_killed_keepalived_is_restarted_and_client_traffic_resumes(cluster: Cluster) -> None:
    vip = _vip(cluster.testbed, 1)
    cluster.apply_all([(vip, "pool1", 9)])
    first = cluster.master(vip)
    supervisor = cluster.announcers[first].supervisor
    old_pid = supervisor.pid
    assert old_pid is not None
    stream = UdpStream(
        (vip, DEFAULT_PORT), interval=0.002, duration=8.0, netns=cluster.client.netns
    ).start()
    try:
        assert eventually(lambda: stream.replies_seen() >= 20 and stream.last_responder() == first)
        stream.mark("kill")
        os.killpg(old_pid, signal.SIGKILL)  # keepalived and its VRRP child: no cleanup of theirs
        assert eventually(lambda: supervisor.restarts >= 1 and supervisor.running())
        assert supervisor.pid != old_pid and "died (signal SIGKILL)" in supervisor.last_error
        seen = stream.replies_seen()
        assert eventually(lambda: stream.replies_seen() > seen + 50, timeout=6.0)
    finally:
        stream.stop()
        result = stream.wait(timeout=10.0)
    report = analyse(result, event="kill")
    assert report.responder_before == first and report.recovery is not None
    assert cluster.master(vip) == first  # back on the preferred node, and only there


def test_config_change_is_a_reload_that_does_not_move_other_vips(cluster: Cluster) -> None:
    first_vip, second_vip = _vip(cluster.testbed, 2), _vip(cluster.testbed, 3)
    cluster.apply_all([(first_vip, "pool1", 11)])
    holder = cluster.master(first_vip)
    pids = {n: a.supervisor.pid for n, a in cluster.announcers.items()}
    time.sleep(0.5)
    cluster.apply_all([(first_vip, "pool1", 11), (second_vip, "pool2", 12)])
    cluster.master(second_vip)
    assert cluster.holders(first_vip) == [holder]
    assert {n: a.supervisor.pid for n, a in cluster.announcers.items()} == pids  # no restart
    assert all(a.supervisor.reloads == 1 for a in cluster.announcers.values())
    moved = [c for c in cluster.changes if c.vip == first_vip and c.node == holder and c.at > 0]
    assert [c.state for c in moved].count(VrrpState.MASTER) == 1
    # Same desired state again: nothing to do.
    outcome = cluster.announcers[holder].apply(
        cluster.desired(holder, [(first_vip, "pool1", 11), (second_vip, "pool2", 12)])
    )
    assert outcome.result.action == "unchanged"
    # Removing a VIP releases it.
    cluster.apply_all([(first_vip, "pool1", 11)])
    assert eventually(lambda: cluster.holders(second_vip) == [])
    assert cluster.holders(first_vip) == [holder]


def test_a_refused_config_keeps_the_running_one_and_says_why(cluster: Cluster) -> None:
    vip = _vip(cluster.testbed, 4)
    cluster.apply_all([(vip, "pool1", 13)])
    holder = cluster.master(vip)
    supervisor = cluster.announcers[holder].supervisor
    pid = supervisor.pid
    before = supervisor.paths.config.read_text()
    result = supervisor.apply("vrrp_instance broken {\n    interface eth0\n}\n", {"eth0": {vip}})
    assert not result.applied and result.action == "rejected"
    assert "virtual router id" in result.error and result.error == supervisor.last_error
    assert supervisor.paths.config.read_text() == before and supervisor.pid == pid
    assert cluster.holders(vip) == [holder]


_SPEAKER = """
import sys, time
from pathlib import Path
from openelb.keepalived import supervisor
from openelb.keepalived.announcer import KeepalivedAnnouncer
from openelb.keepalived.model import DesiredState, DesiredVip, NodeAddresses
netns, rundir, vip, v4, death_signal = sys.argv[1:6]
if death_signal == "off":  # as where setpriv is missing
    supervisor._death_signal = lambda: []
a = KeepalivedAnnouncer(node="a", runtime_dir=Path(rundir), netns=netns, watch_adverts=False)
a.start()
a.apply(DesiredState("a", (DesiredVip(vip, "pool1", 20, frozenset({"a"}), "eth0"),),
                     {"a": NodeAddresses("a", v4, None)}))
print("applied", a.supervisor.pid, flush=True)
time.sleep(60)
"""


def _speaker_killed(
    testbed: Testbed, tmp_path: Path, *, death_signal: str
) -> tuple[Host, Path, str, int]:
    """A speaker stand-in that started keepalived with the VIP, then died by SIGKILL."""
    host = testbed.add_host("a")
    vip = str(testbed.subnet4[250])
    rundir = tmp_path / "a"
    speaker = testbed.spawn(
        [
            sys.executable,
            "-c",
            _SPEAKER,
            host.netns,
            str(rundir),
            vip,
            str(host.ipv4.ip),
            death_signal,
        ],
        name="speaker",
    )
    assert eventually(lambda: "applied" in speaker.log(), timeout=20), speaker.log()
    assert eventually(lambda: vip in addresses_on("eth0", netns=host.netns))
    keepalived_pid = int(speaker.log().split()[1])
    speaker.kill()  # SIGKILL: the speaker cleans up nothing itself
    return host, rundir, vip, keepalived_pid


def test_keepalived_leaves_with_its_vips_when_the_speaker_is_killed(
    testbed: Testbed, tmp_path: Path
) -> None:
    host, _rundir, vip, keepalived_pid = _speaker_killed(testbed, tmp_path, death_signal="on")
    assert eventually(lambda: not Path(f"/proc/{keepalived_pid}").exists(), timeout=10)
    assert eventually(lambda: vip not in addresses_on("eth0", netns=host.netns), timeout=5)


def test_a_killed_speakers_keepalived_and_vips_are_cleaned_up_at_start(
    testbed: Testbed, tmp_path: Path
) -> None:
    host, rundir, vip, keepalived_pid = _speaker_killed(testbed, tmp_path, death_signal="off")
    # Without a death signal keepalived (own session) and the VIP stay behind...
    assert Path(f"/proc/{keepalived_pid}").exists()
    assert vip in addresses_on("eth0", netns=host.netns)
    successor = KeepalivedAnnouncer(
        node="a", runtime_dir=rundir, netns=host.netns, watch_adverts=False
    ).start()
    try:  # ...until the next speaker starts
        assert vip not in addresses_on("eth0", netns=host.netns)
        assert eventually(lambda: not Path(f"/proc/{keepalived_pid}").exists(), timeout=5)
    finally:
        successor.close()


def test_stop_releases_the_vip_to_a_backup_at_once(cluster: Cluster) -> None:
    vip = _vip(cluster.testbed, 5)
    cluster.apply_all([(vip, "pool1", 14)])
    holder = cluster.master(vip)
    cluster.announcers[holder].close()
    assert vip not in addresses_on("eth0", netns=cluster.hosts[holder].netns)
    assert eventually(lambda: len(cluster.holders(vip)) == 1, timeout=3.0)
    assert cluster.holders(vip) != [holder]


def test_two_eips_get_their_router_ids_from_status_and_land_on_different_nodes(
    cluster: Cluster,
) -> None:
    from openelb.keepalived.desired import vip_mode_state
    from openelb.kube.views import Eip, Node, Service
    from openelb.speaker.records import SpeakerRecord

    tb = cluster.testbed
    vip1, vip2 = str(tb.subnet4[230]), str(tb.subnet4[240])
    eips = [
        Eip.from_raw(
            {
                "metadata": {"name": name},
                "spec": {"address": address, "protocol": "vip"},
                "status": {"virtualRouterIDs": {address: rid}},
            }
        )
        for name, address, rid in (("first", vip1, 31), ("second", vip2, 32))
    ]
    services = [
        Service.from_raw(
            {
                "metadata": {
                    "name": f"s{i}",
                    "namespace": "default",
                    "uid": f"s{i}",
                    "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"},
                },
                "spec": {"type": "LoadBalancer"},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
            }
        )
        for i, ip in enumerate((vip1, vip2))
    ]
    nodes = [
        Node.from_raw(
            {
                "metadata": {"name": n},
                "spec": {},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": str(h.ipv4.ip)}],
                },
            }
        )
        for n, h in cluster.hosts.items()
    ]
    records = {
        n: SpeakerRecord(n, (str(h.ipv4.ip), 7946), 1, {"first": "eth0", "second": "eth0"})
        for n, h in cluster.hosts.items()
    }
    plans = {}
    for name, announcer in cluster.announcers.items():
        state = vip_mode_state(
            node=name, services=services, eips=eips, slices=[], nodes=nodes, records=records
        )
        outcome = announcer.apply(state.desired)
        assert outcome.result.applied and not outcome.issues
        plans[name] = {(i.name, i.router_id, i.preferred) for i in outcome.plan.instances}
    assert len({frozenset(p) for p in plans.values()}) == 1  # every node planned the same
    (_, _, pref1), (_, _, pref2) = sorted(plans["a"])
    assert pref1 != pref2
    assert cluster.master(vip1) == pref1 and cluster.master(vip2) == pref2
