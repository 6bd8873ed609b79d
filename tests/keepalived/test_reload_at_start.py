"""A config applied while keepalived is still starting must not be lost (nor kill it).

keepalived 2.2.7 has a window of some tens of milliseconds after exec (much longer on a loaded
machine) in which a SIGHUP either kills it (no handler yet) or is silently dropped (it is
busy starting its VRRP child and keeps running the first config). The speaker hits that window
whenever two snapshots arrive close together at start: the first rendered while it saw only
itself (its unicast peer is itself), the second with the other nodes. A lost reload left such a
node master of a config no other node hears: two masters for as long as nothing else changed
(seen as a 30 s split brain in the end-to-end suite under load). The supervisor now holds the
reload until keepalived says its start is complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openelb.keepalived.announcer import KeepalivedAnnouncer
from openelb.keepalived.model import DesiredState, DesiredVip, NodeAddresses
from openelb.keepalived.nicaddresses import addresses_on
from openelb.lab.netns import Host, Testbed

pytestmark = [pytest.mark.keepalived, pytest.mark.netns, pytest.mark.slow]

DELAYS = [i * 0.005 for i in range(12)]
"""Pauses between the start and the second config, one fresh start each: the window moves
with the machine's load, and one try would prove little."""


def _wait(predicate: Callable[[], object], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


@pytest.fixture
def node(testbed: Testbed, tmp_path: Path) -> Iterator[tuple[Host, KeepalivedAnnouncer]]:
    host = testbed.add_host("a")
    announcer = KeepalivedAnnouncer(
        node="a", runtime_dir=tmp_path / "a", netns=host.netns, watch_adverts=False
    ).start()
    try:
        yield host, announcer
    finally:
        announcer.close()


def test_a_config_applied_right_after_the_start_is_the_one_keepalived_runs(
    node: tuple[Host, KeepalivedAnnouncer], testbed: Testbed
) -> None:
    host, announcer = node
    me = {"a": NodeAddresses("a", str(host.ipv4.ip), str(host.ipv6.ip))}
    first, second = str(testbed.subnet4[200]), str(testbed.subnet4[201])

    def desired(*vips: str) -> DesiredState:
        return DesiredState(
            "a", tuple(DesiredVip(ip, "pool", 7, frozenset({"a"}), "eth0") for ip in vips), me
        )

    supervisor = announcer.supervisor
    for round_, delay in enumerate(DELAYS):
        assert announcer.apply(desired(first)).result.action == "started"
        pid = supervisor.pid
        # Soon after, as the speaker's worker does when a newer snapshot is already waiting.
        time.sleep(delay)
        assert announcer.apply(desired(first, second)).result.applied
        assert _wait(lambda: second in addresses_on("eth0", netns=host.netns)), (
            f"round {round_}: keepalived still runs the first config\n{supervisor.log_tail()}"
        )
        assert supervisor.pid == pid and supervisor.restarts == 0, (
            f"round {round_}: the reload killed keepalived: {supervisor.last_error}"
        )
        assert announcer.apply(desired()).result.action == "stopped"
        assert _wait(lambda: not addresses_on("eth0", netns=host.netns).keys() & {first, second})
