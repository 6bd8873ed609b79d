"""End to end: speaker processes in namespaces, the real data plane, the embedded apiserver.

Asserts who answers (a real ``arping`` from a client), never how fast: the failover gaps are
measured by ``benchmarks/failover_l2.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest

from openelb.kube.resources import ENDPOINTSLICES, EVENTS, SERVICES
from openelb.lab.l2cluster import L2Cluster
from openelb.lab.netns import Testbed
from openelb.speaker.ownership import compute_placement

pytestmark = [pytest.mark.netns, pytest.mark.slow]

# The AF_PACKET responder: with generic XDP on the testbed's veths, about one run in two left
# a node whose unicast frames never reached its stack (neighbour entries INCOMPLETE, its
# heartbeats lost both ways); reported to the data plane's owner. The speaker logic under test
# is the same with either data plane.
DATAPLANE = "afpacket"

VIP = "10.250.0.200"
AFTER_VIP = "10.250.0.203"
NODES = ["n1", "n2", "n3"]


@pytest.fixture
def cluster(testbed: Testbed) -> Iterator[L2Cluster]:
    c = L2Cluster(testbed, nodes=3, dataplane=DATAPLANE)
    try:
        c.add_pool("pool", "10.250.0.200-10.250.0.210")
        c.add_service("web", [VIP])
        for name in NODES:
            c.start_speaker(name)
        for name in NODES:
            c.wait_serving(name)
        yield c
    finally:
        c.close()


def _placement(live: list[str]) -> tuple[str, str]:
    p = compute_placement(VIP, live=live)
    assert p.owner is not None and p.backup is not None
    return p.owner, p.backup


def test_exactly_the_owner_answers_and_the_backup_takes_over_after_sigkill(
    cluster: L2Cluster,
) -> None:
    owner, backup = _placement(NODES)
    assert cluster.wait_answering(VIP, {owner}) == {owner}
    assert cluster.answering(VIP, count=3) == {owner}
    cluster.sigkill(owner)
    assert cluster.wait_answering(VIP, {backup}) == {backup}
    assert cluster.answering(VIP, count=3) == {backup}


def test_graceful_stop_hands_over_to_the_backup(cluster: L2Cluster) -> None:
    owner, backup = _placement(NODES)
    assert cluster.wait_answering(VIP, {owner}) == {owner}
    cluster.stop_gracefully(owner)
    assert cluster.wait_answering(VIP, {backup}) == {backup}
    assert cluster.answering(VIP, count=3) == {backup}


def test_link_cut_moves_the_vip_and_the_healed_owner_takes_it_back_alone(
    cluster: L2Cluster,
) -> None:
    owner, backup = _placement(NODES)
    assert cluster.wait_answering(VIP, {owner}) == {owner}
    cluster.nodes[owner].link_down()
    assert cluster.wait_answering(VIP, {backup}) == {backup}
    cluster.nodes[owner].link_up()
    # Each side of the partition was right while it lasted: both may answer for a moment after
    # the heal, then ownership follows rank again and stays there.
    assert cluster.wait_stable(VIP, {owner}) == {owner}
    assert cluster.answering(VIP, count=3) == {owner}


def test_an_address_already_in_use_is_not_announced_and_is_reported(cluster: L2Cluster) -> None:
    taken = "10.250.0.205"
    squatter = cluster.testbed.add_host("squat")
    squatter.run(["ip", "addr", "add", f"{taken}/24", "dev", "eth0"])
    cluster.add_service("late", [taken])  # assigned after the speakers synced: probed first
    events: list[dict[str, object]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not events:
        items, _ = cluster.call(lambda: cluster.api.list(EVENTS, namespace="default"))
        events = [e for e in items if e.get("reason") == "AddressInUse"]
        time.sleep(0.1)
    assert events, "an AddressInUse Event on the Service"
    # Only the host that really has the address answers for it.
    answering = cluster.answering(taken, count=3)
    assert answering == {squatter.mac.lower()}


def test_a_batch_of_new_addresses_blocks_only_the_one_another_host_holds(
    cluster: L2Cluster,
) -> None:
    batch = [f"10.250.0.{n}" for n in range(204, 211)]
    taken = "10.250.0.207"
    squatter = cluster.testbed.add_host("squat")
    squatter.run(["ip", "addr", "add", f"{taken}/24", "dev", "eth0"])
    # One Service carrying them all: every owner gains its share in one step, probed together.
    cluster.add_service("many", batch)
    for vip in batch:
        if vip == taken:
            continue
        owner = compute_placement(vip, live=NODES).owner
        assert owner is not None
        assert cluster.wait_answering(vip, {owner}) == {owner}, (vip, _logs(cluster))
    events: list[dict[str, object]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not events:
        items, _ = cluster.call(lambda: cluster.api.list(EVENTS, namespace="default"))
        events = [e for e in items if e.get("reason") == "AddressInUse"]
        time.sleep(0.1)
    assert events and all(str(e["message"]).startswith(f"{taken} ") for e in events), events
    assert cluster.answering(taken, count=3) == {squatter.mac.lower()}


def test_dual_stack_service_each_address_answered_by_its_owner(cluster: L2Cluster) -> None:
    v4, v6 = "10.250.0.201", "fd0e:1b::201"
    cluster.add_pool("pool6", "fd0e:1b::200-fd0e:1b::210")
    cluster.add_service("dual", [v4, v6])
    for vip in (v4, v6):
        owner = compute_placement(vip, live=NODES).owner
        assert owner is not None
        assert cluster.wait_answering(vip, {owner}) == {owner}, vip
        assert cluster.answering(vip, count=3) == {owner}, vip
    # Only the owner ever took the v6 VIP: pool6 is new, and a node whose Lease did not mention
    # it yet once counted as unable to serve it, so another node answered for a moment.
    owner6 = compute_placement(v6, live=NODES).owner
    took = {
        name for name, proc in cluster.speakers.items() if f"now answering for {v6}" in proc.log()
    }
    assert took == {owner6}, _logs(cluster)


def test_etp_local_follows_the_ready_endpoints(cluster: L2Cluster) -> None:
    vip = "10.250.0.202"

    def endpoints_on(node: str) -> dict[str, object]:
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "local-abc",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "local"},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.1.0.9"], "nodeName": node, "conditions": {"ready": True}}
            ],
        }

    cluster.create(ENDPOINTSLICES, endpoints_on("n1"))
    cluster.add_service("local", [vip], local=True)
    assert cluster.wait_answering(vip, {"n1"}) == {"n1"}
    current = cluster.call(
        lambda: cluster.api.get(ENDPOINTSLICES, "local-abc", namespace="default")
    )
    moved = endpoints_on("n3")
    moved["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]  # type: ignore[index]
    cluster.call(lambda: cluster.api.replace(ENDPOINTSLICES, moved))
    assert cluster.wait_answering(vip, {"n3"}) == {"n3"}
    assert cluster.answering(vip, count=3) == {"n3"}


def _groups(cluster: L2Cluster, name: str) -> str:
    return cluster.nodes[name].run(["ip", "-6", "maddr", "show", "dev", "eth0"]).stdout


def test_the_owner_of_an_ipv6_vip_holds_its_solicited_node_group_until_it_lets_go(
    cluster: L2Cluster,
) -> None:
    vip, group = "fd0e:1b::2a1", "ff02::1:ff00:2a1"
    cluster.add_pool("pool6", "fd0e:1b::200-fd0e:1b::2ff")
    cluster.add_service("six", [vip])
    owner = compute_placement(vip, live=NODES).owner
    assert owner is not None
    assert cluster.wait_answering(vip, {owner}) == {owner}
    assert _wait(lambda: group in _groups(cluster, owner))
    assert [n for n in NODES if n != owner and group in _groups(cluster, n)] == []
    cluster.call(lambda: cluster.api.delete(SERVICES, "six", namespace="default"))
    assert _wait(lambda: group not in _groups(cluster, owner))


def test_an_apiserver_outage_drops_nothing_and_failover_still_works(cluster: L2Cluster) -> None:
    owner, backup = _placement(NODES)
    assert cluster.wait_answering(VIP, {owner}) == {owner}
    # The property is about a converged cluster losing its apiserver. Speakers start together,
    # so a Lease may still be on its way to a peer when the owner first answers (about 0.1 s
    # here, seconds on a loaded machine); an outage in that instant freezes a view without the
    # owner, whose backup then answers too until the apiserver returns. That is a start-up race
    # (docs/speaker.md), not fail-static: wait until every speaker has seen every Lease.
    cluster.wait_converged()
    cluster.call(cluster.server.stop)
    try:
        # Fail-static: the owner keeps answering, nobody else starts (outcomes, sampled).
        for _ in range(5):
            assert cluster.answering(VIP, count=2) == {owner}, _logs(cluster)
            time.sleep(0.3)
        # Heartbeats need no apiserver: a dead owner is still replaced.
        cluster.sigkill(owner)
        assert cluster.wait_answering(VIP, {backup}) == {backup}
    finally:
        cluster.call(cluster.server.start)
    # Converged after the outage: the watches resync and a new Service is served by its owner.
    survivors = [n for n in NODES if n != owner]
    cluster.add_service("after", [AFTER_VIP])
    after = compute_placement(AFTER_VIP, live=survivors).owner
    assert after is not None
    assert cluster.wait_answering(AFTER_VIP, {after}, timeout=40) == {after}
    assert cluster.answering(VIP, count=3) == {backup}


def _short_lease_cluster(testbed: Testbed) -> L2Cluster:
    # Leases of 2 s (renewed every 0.7 s, "expired" after 4 s): long outages in a short test.
    c = L2Cluster(testbed, nodes=3, dataplane=DATAPLANE, extra_args=("--lease-duration", "2"))
    c.add_pool("pool", "10.250.0.200-10.250.0.210")
    c.add_service("web", [VIP])
    for name in NODES:
        c.start_speaker(name)
    for name in NODES:
        c.wait_serving(name)
    c.wait_converged()
    return c


def _members_lines(cluster: L2Cluster) -> dict[str, int]:
    return {n: p.log().count("speaker members:") for n, p in cluster.speakers.items()}


def _shrunk_views(cluster: L2Cluster, since: dict[str, int]) -> list[str]:
    """Member sets logged after ``since`` that miss a running speaker."""
    shrunk = []
    for name, proc in cluster.speakers.items():
        lines = [ln for ln in proc.log().splitlines() if "speaker members:" in ln]
        for line in lines[since.get(name, 0) :]:
            if set(line.split("speaker members:")[1].split()) != set(NODES):
                shrunk.append(f"{name}: {line}")
    return shrunk


def _sample_alone(cluster: L2Cluster, owner: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert cluster.answering(VIP, count=2) == {owner}, _logs(cluster)
        time.sleep(0.2)


Outage = Callable[[L2Cluster, str], contextlib.AbstractContextManager[object]]
"""An apiserver outage around a ``with`` block, given the cluster and the VIP's owner."""


def _owner_alone_through(testbed: Testbed, outage: Outage, *, during: float, after: float) -> None:
    """The owner alone answers during ``outage`` and after it, and no speaker's view of the
    members ever shrinks (sampled ``during`` and ``after`` seconds)."""
    cluster = _short_lease_cluster(testbed)
    try:
        owner, _ = _placement(NODES)
        assert cluster.wait_answering(VIP, {owner}) == {owner}
        before = _members_lines(cluster)
        with outage(cluster, owner):
            _sample_alone(cluster, owner, seconds=during)
        _sample_alone(cluster, owner, seconds=after)
        assert _shrunk_views(cluster, before) == []
    finally:
        cluster.close()


@contextlib.contextmanager
def _owner_cut_off(cluster: L2Cluster, owner: str) -> Iterator[None]:
    cluster.cut_from_apiserver(owner)
    try:
        yield
    finally:
        cluster.reconnect_to_apiserver(owner)


@contextlib.contextmanager
def _apiserver_down(cluster: L2Cluster, owner: str) -> Iterator[None]:
    cluster.call(cluster.server.stop)
    try:
        yield
    finally:
        cluster.call(cluster.server.start)
    renewed = {n: f"speaker Lease openelb-speaker-{n} renewed again" for n in NODES}
    assert _wait(
        lambda: all(renewed[n] in p.log() for n, p in cluster.speakers.items()), timeout=30
    ), _logs(cluster)


def test_an_owner_cut_from_the_apiserver_alone_keeps_its_vip(testbed: Testbed) -> None:
    """Its Lease stops moving while it heartbeats: the others must not count it gone."""
    _owner_alone_through(testbed, _owner_cut_off, during=7.0, after=2.0)  # > 2 Leases (4 s)


def test_an_outage_longer_than_the_leases_drops_nobody_when_the_apiserver_returns(
    testbed: Testbed,
) -> None:
    """Every Lease looks expired when the apiserver comes back: no speaker may count the
    others gone before they had time to renew."""
    _owner_alone_through(testbed, _apiserver_down, during=6.0, after=3.0)


def test_a_speaker_cut_from_the_apiserver_yields_to_a_newcomer_it_only_hears(
    testbed: Testbed,
) -> None:
    """The backup lost the apiserver before the owner joined: the owner's Lease never reaches
    it, its heartbeats do. The start-up race of an outage, made deterministic: ranking without
    the newcomer, the backup would answer the newcomer's VIP too for the whole outage."""
    owner, backup = _placement(NODES)
    cluster = L2Cluster(testbed, nodes=3, dataplane=DATAPLANE)
    try:
        cluster.add_pool("pool", "10.250.0.200-10.250.0.210")
        cluster.add_service("web", [VIP])
        early = [n for n in NODES if n != owner]
        for name in early:
            cluster.start_speaker(name)
        for name in early:
            cluster.wait_serving(name)
        assert cluster.wait_answering(VIP, {backup}) == {backup}  # the best of those present
        cluster.cut_from_apiserver(backup)
        cluster.start_speaker(owner)
        cluster.wait_serving(owner)
        assert cluster.wait_stable(VIP, {owner}) == {owner}, _logs(cluster)
        _sample_alone(cluster, owner, seconds=3.0)
        assert "heartbeats from" in cluster.speakers[backup].log()
    finally:
        cluster.close()


def _wait(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _logs(cluster: L2Cluster) -> str:
    return "\n".join(
        f"--- {name}:\n{proc.log()[-2500:]}" for name, proc in cluster.speakers.items()
    )
