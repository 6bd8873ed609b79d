"""LeaseElector with two or three candidates: never two leaders at once (hooks and a 1 ms
monitor), takeover after a crash within lease duration + retry, after a release within a retry
period, and a partitioned leader (refused, black-holed, 500s, server down) steps down first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from openelb import metrics
from openelb.kube.leases import LeaseElector, LeaseObserver
from openelb.kube.resources import LEASES
from openelb.lab.election_rig import ElectionRig, Timings
from tests.kube.conftest import KubeLab, wait_until

T = Timings()
CRASH_BOUND = T.lease_duration + T.retry_period * 1.2 + 2.0
"""Generous: a correctness bound (takeover happens), not a latency measurement."""


@pytest.fixture
def rig3(kube_lab: KubeLab) -> Iterator[ElectionRig]:
    with ElectionRig(server_url=kube_lab.server.url, n=3, name="mgr", namespace="ns1") as rig:
        yield rig
    assert rig.log.double_leader_observations == 0


def test_exactly_one_of_three_leads_and_the_lease_names_it(
    rig3: ElectionRig, kube_lab: KubeLab
) -> None:
    leader = rig3.wait_leader(5)
    assert leader is not None
    time.sleep(4 * T.retry_period)
    assert rig3.log.current() == {leader}
    lease = kube_lab.api.get(LEASES, "mgr", namespace="ns1")
    assert lease["spec"]["holderIdentity"] == leader
    assert rig3.electors[rig3.index(leader)].is_leader
    assert sum(e.is_leader for e in rig3.electors) == 1
    assert metrics.registry.get_sample_value("openelb_kube_leader", {"lease": "ns1/mgr"}) == 1


def test_crash_takeover_within_lease_duration_plus_retry(rig3: ElectionRig) -> None:
    leader = rig3.wait_leader(5)
    assert leader is not None
    rig3.crash(leader)
    assert rig3.wait_leader(CRASH_BOUND, other_than=leader) is not None


def test_graceful_release_hands_over_within_a_retry_period(rig3: ElectionRig) -> None:
    leader = rig3.wait_leader(5)
    assert leader is not None
    rig3.stop_gracefully(leader)
    released_at = time.monotonic()
    successor = rig3.wait_leader(T.retry_period * 1.2 + 1.0, other_than=leader)
    assert successor is not None
    # far below the lease duration a crash would cost
    assert rig3.log.starts[-1][0] - released_at < T.lease_duration


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_partitioned_leader_steps_down_before_another_takes_over(
    rig3: ElectionRig, mode: str
) -> None:
    leader = rig3.wait_leader(5)
    assert leader is not None
    rig3.partition(leader, mode)
    successor = rig3.wait_leader(CRASH_BOUND, other_than=leader)
    assert successor is not None
    stop_of_old = [t for t, who in rig3.log.stops if who == leader]
    start_of_new = [t for t, who in rig3.log.starts if who == successor]
    assert stop_of_old and start_of_new and stop_of_old[-1] < start_of_new[-1]
    rig3.heal(leader)
    time.sleep(4 * T.retry_period)
    assert rig3.log.current() == {successor}


def test_injected_500s_make_the_leader_step_down_never_two(
    rig3: ElectionRig, kube_lab: KubeLab
) -> None:
    leader = rig3.wait_leader(5)
    assert leader is not None
    kube_lab.server.fail_requests(6, status=500, path_contains="/leases/", methods=["PUT"])
    assert wait_until(lambda: leader not in rig3.log.current(), timeout=5)
    assert rig3.wait_leader(CRASH_BOUND) is not None


def test_apiserver_down_then_back_one_leader_again(rig3: ElectionRig, kube_lab: KubeLab) -> None:
    assert rig3.wait_leader(5) is not None
    kube_lab.server.stop()
    assert rig3.wait_no_leader(T.renew_deadline + 2.0)
    time.sleep(T.lease_duration)
    kube_lab.server.start()
    assert rig3.wait_leader(CRASH_BOUND) is not None


def test_hung_apiserver_is_a_renew_failure(rig3: ElectionRig, kube_lab: KubeLab) -> None:
    leader = rig3.wait_leader(5)
    assert leader is not None
    kube_lab.server.hang_requests(50, seconds=3, path_contains="/leases/")
    assert wait_until(lambda: not rig3.log.current(), timeout=T.renew_deadline + 2.0)
    kube_lab.server.clear_faults()
    assert rig3.wait_leader(CRASH_BOUND) is not None


def test_two_electors_tolerant_policy_rides_out_one_failed_renewal(kube_lab: KubeLab) -> None:
    with ElectionRig(
        server_url=kube_lab.server.url,
        n=2,
        name="tolerant",
        namespace="ns1",
        step_down_on_first_failure=False,
    ) as rig:
        leader = rig.wait_leader(5)
        assert leader is not None
        kube_lab.server.fail_requests(1, status=500, path_contains="/leases/", methods=["PUT"])
        time.sleep(6 * T.retry_period)
        assert rig.log.current() == {leader}
        assert len(rig.log.starts) == 1
    assert rig.log.double_leader_observations == 0


def test_elector_settings_are_checked(kube_lab: KubeLab) -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaseElector(kube_lab.api, name="x", namespace="ns1", identity="a", renew_deadline=20)
    with pytest.raises(ValueError, match="identity"):
        LeaseElector(kube_lab.api, name="x", namespace="ns1", identity="")


def test_observer_reports_alive_and_expired_holders(kube_lab: KubeLab) -> None:
    observer = LeaseObserver(
        kube_lab.api, namespace="ns1", prefix="openelb-speaker-", watch_timeout=5
    )
    stops = {node: threading.Event() for node in ("n1", "n2")}
    electors = {
        node: LeaseElector(
            kube_lab.connect(0.5),
            name=f"openelb-speaker-{node}",
            namespace="ns1",
            identity=node,
            lease_duration=T.lease_duration,
            renew_deadline=T.renew_deadline,
            retry_period=T.retry_period,
            release_on_stop=False,
        )
        for node in stops
    }
    threads = [
        threading.Thread(target=electors[n].run, args=(stops[n],), daemon=True) for n in stops
    ]
    observer.start()
    for thread in threads:
        thread.start()
    try:
        assert observer.wait_synced(5)
        assert wait_until(
            lambda: observer.alive() == {"openelb-speaker-n1", "openelb-speaker-n2"}, timeout=5
        )
        assert observer.holders()["openelb-speaker-n1"].holder == "n1"
        stops["n2"].set()  # n2 dies without releasing: expires after the lease duration
        assert wait_until(lambda: observer.alive() == {"openelb-speaker-n1"}, timeout=5)
        assert not observer.holders()["openelb-speaker-n2"].alive
        expiry = observer.next_expiry()
        assert expiry is not None and expiry <= T.lease_duration
    finally:
        for stop in stops.values():
            stop.set()
        for thread in threads:
            thread.join(5)
        observer.stop()


def test_observer_sees_a_released_lease_as_not_alive(kube_lab: KubeLab) -> None:
    observer = LeaseObserver(
        kube_lab.api, namespace="ns1", prefix="openelb-speaker-", watch_timeout=5
    )
    stop = threading.Event()
    elector = LeaseElector(
        kube_lab.connect(0.5),
        name="openelb-speaker-n3",
        namespace="ns1",
        identity="n3",
        lease_duration=T.lease_duration,
        renew_deadline=T.renew_deadline,
        retry_period=T.retry_period,
    )
    kube_lab.api.create(LEASES, {"metadata": {"name": "unrelated", "namespace": "ns1"}, "spec": {}})
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    observer.start()
    thread.start()
    try:
        assert wait_until(lambda: observer.alive() == {"openelb-speaker-n3"}, timeout=5)
        stop.set()  # graceful: released at once, no waiting for expiry
        thread.join(5)
        # released (empty holder), not merely expired: the holder field proves which
        assert wait_until(lambda: observer.holders()["openelb-speaker-n3"].holder == "", timeout=5)
        assert observer.alive() == set()
        assert "unrelated" not in observer.holders()
    finally:
        stop.set()
        observer.stop()
