"""A config applied while keepalived is still starting must not be lost (nor kill it).

keepalived 2.2.7 has a window of some tens of milliseconds after exec (much longer on a loaded
machine) in which a SIGHUP either kills it (no handler yet) or is silently dropped (it is
busy starting its VRRP child and keeps running the first config). The speaker hits that window
whenever two snapshots arrive close together at start: the first rendered while it saw only
itself (its unicast peer is itself), the second with the other nodes. A lost reload left such a
node master of a config no other node hears: two masters for as long as nothing else changed
(seen as a 30 s split brain in the end-to-end suite under load). The supervisor now holds the
reload until keepalived says its start is complete.

Here with keepalived as it is, a few pauses that land in the window now and then (every time on
a loaded machine); ``test_supervisor.py`` checks the rule itself with a stand-in keepalived.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openelb.keepalived.announcer import KeepalivedAnnouncer
from openelb.keepalived.model import DesiredState, DesiredVip, NodeAddresses
from openelb.keepalived.nicaddresses import addresses_on
from openelb.lab.netns import Host, Testbed
from tests.keepalived.waiting import eventually

pytestmark = [pytest.mark.keepalived, pytest.mark.netns, pytest.mark.slow]


class Node:
    """One node namespace running a KeepalivedAnnouncer for one lone-node instance."""

    def __init__(self, host: Host, announcer: KeepalivedAnnouncer, testbed: Testbed) -> None:
        self.host = host
        self.announcer = announcer
        self.me = {"a": NodeAddresses("a", str(host.ipv4.ip), str(host.ipv6.ip))}
        self.first, self.second = str(testbed.subnet4[200]), str(testbed.subnet4[201])

    def desired(self, *vips: str) -> DesiredState:
        return DesiredState(
            "a", tuple(DesiredVip(ip, "pool", 7, frozenset({"a"}), "eth0") for ip in vips), self.me
        )

    def held(self) -> set[str]:
        return set(addresses_on("eth0", netns=self.host.netns)) & {self.first, self.second}

    def start_then_change(self, *, delay: float, label: str) -> None:
        """Start keepalived with one VIP, change to two after ``delay``: both must come up."""
        supervisor = self.announcer.supervisor
        assert self.announcer.apply(self.desired(self.first)).result.action == "started"
        pid = supervisor.pid
        time.sleep(delay)
        assert self.announcer.apply(self.desired(self.first, self.second)).result.applied
        assert eventually(lambda: self.second in self.held(), 15.0), (
            f"{label}: keepalived still runs the first config\n{supervisor.log_tail()}"
        )
        assert supervisor.pid == pid and supervisor.restarts == 0, (
            f"{label}: the reload killed keepalived: {supervisor.last_error}"
        )
        assert self.announcer.apply(self.desired()).result.action == "stopped"
        assert eventually(lambda: not self.held(), 15.0)


@pytest.fixture
def node(testbed: Testbed, tmp_path: Path) -> Iterator[Node]:
    host = testbed.add_host("a")
    announcer = KeepalivedAnnouncer(
        node="a",
        runtime_dir=tmp_path / "a",
        netns=host.netns,
        watch_adverts=False,
    ).start()
    try:
        yield Node(host, announcer, testbed)
    finally:
        announcer.close()


def test_a_config_applied_right_after_the_start_is_the_one_keepalived_runs(node: Node) -> None:
    for delay in (0.0, 0.01, 0.02, 0.03):
        node.start_then_change(delay=delay, label=f"second config {delay * 1000:.0f} ms later")
