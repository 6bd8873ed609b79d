"""The speaker's own Lease against the embedded apiserver: fail-static writes.

The control loop hands new Lease content over and never waits for the apiserver; an outage is
one warning, not one per renewal; renewals resume by themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openelb.kube.client import KubeApi, connect
from openelb.kube.resources import LEASES, NAMESPACES
from openelb.lab.apiserver.server import ApiServer
from openelb.speaker.lease import SpeakerLease
from openelb.speaker.records import ANNOTATION_INCARNATION, SpeakerRecord

NAMESPACE = "openelb-system"


@pytest.fixture
def api(apiserver: ApiServer, kubeconfig: Path) -> Iterator[KubeApi]:
    client = connect(str(kubeconfig), timeout=2.0)
    client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
    try:
        yield client
    finally:
        client.close()


def _record(incarnation: int) -> SpeakerRecord:
    return SpeakerRecord(node="n1", heartbeat=("10.0.0.1", 7947), incarnation=incarnation)


def _incarnation(api: KubeApi) -> str:
    lease = api.get(LEASES, "openelb-speaker-n1", namespace=NAMESPACE)
    return str(lease["metadata"]["annotations"][ANNOTATION_INCARNATION])


def _wait(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_an_update_never_waits_for_a_hanging_apiserver(apiserver: ApiServer, api: KubeApi) -> None:
    lease = SpeakerLease(api, namespace=NAMESPACE, record=_record(1), duration=30.0).start()
    try:
        # Every request for the Lease now stalls until released: an apiserver dropping packets.
        apiserver.faults.add("hang", 100, seconds=None, path_contains="openelb-speaker-n1")
        outcome: list[int] = []

        def call() -> None:
            lease.update(_record(2))
            outcome.append(lease.failures)  # the write's fate is not known yet if we did not wait

        caller = threading.Thread(target=call)
        caller.start()
        caller.join(30)
        apiserver.faults.clear()
        # A synchronous write would have returned only once the request timed out (a failure).
        assert outcome == [0], "update() waited for the apiserver"
        # Written by the renewal thread once the apiserver answers again, without another call.
        assert _wait(lambda: _incarnation(api) == "2")
    finally:
        apiserver.faults.clear()
        lease.stop(delete=True)


def test_an_outage_is_one_warning_and_renewals_resume_by_themselves(
    apiserver: ApiServer, api: KubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    lease = SpeakerLease(api, namespace=NAMESPACE, record=_record(1), duration=30.0).start()
    try:
        assert lease.healthy_since is not None
        apiserver.stop()
        caplog.set_level(logging.DEBUG, logger="openelb.speaker.lease")
        for _ in range(5):
            assert not lease.renew()
        warnings = [
            r
            for r in caplog.records
            if r.name == "openelb.speaker.lease" and r.levelno >= logging.WARNING
        ]
        assert len(warnings) == 1, warnings
        assert lease.failing == 5 and lease.healthy_since is None
        apiserver.start()
        assert _wait(lease.renew)
        assert lease.failing == 0 and lease.healthy_since is not None
        assert "renewed again after 5 failed attempts" in caplog.text
    finally:
        lease.stop(delete=True)
