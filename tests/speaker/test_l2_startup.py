"""Start-up with the real XDP data plane: speakers that join before any pool exists.

The first Eip makes every speaker open its data plane at the same moment; bcc compiling the XDP
program takes about a second of CPU. That once happened inside the control loop, and both
speakers declared each other dead from silence that was really their own stall, answered the
VIP together and blocked it as "in use" by the other. Asserts outcomes (no false death, the
owner alone answers, a graceful stop hands over), never timings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from openelb.lab.l2cluster import L2Cluster
from openelb.lab.netns import Testbed
from openelb.speaker.ownership import compute_placement

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

VIP = "10.250.0.200"
NODES = ["n1", "n2"]


@pytest.fixture
def cluster(testbed: Testbed) -> Iterator[L2Cluster]:
    c = L2Cluster(testbed, nodes=2, dataplane="xdp-generic")
    try:
        for name in NODES:
            c.start_speaker(name)
        for name in NODES:
            c.wait_serving(name)
        yield c
    finally:
        c.close()


def _false_alarms(cluster: L2Cluster) -> list[str]:
    pattern = re.compile(r"declared dead \((silence|obituary)|already in use")
    return [
        f"{name}: {line}"
        for name, proc in cluster.speakers.items()
        for line in proc.log().splitlines()
        if pattern.search(line)
    ]


def test_speakers_opening_the_data_plane_together_keep_one_owner(cluster: L2Cluster) -> None:
    placement = compute_placement(VIP, live=NODES)
    owner, backup = placement.owner, placement.backup
    assert owner is not None and backup is not None
    cluster.add_pool("pool", "10.250.0.200-10.250.0.210")
    cluster.add_service("web", [VIP])
    assert cluster.wait_answering(VIP, {owner}) == {owner}
    assert cluster.answering(VIP, count=3) == {owner}
    assert _false_alarms(cluster) == []
    cluster.stop_gracefully(owner)
    assert cluster.wait_answering(VIP, {backup}) == {backup}
    assert cluster.answering(VIP, count=3) == {backup}
