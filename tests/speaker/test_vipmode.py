"""The speaker's VIP-mode component: when it starts keepalived, what it applies, what it reports.

keepalived itself is replaced by a recording announcer here (no root needed); the real one runs
in ``tests/keepalived/test_speaker_end_to_end.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from openelb import metrics
from openelb.config import KeepalivedSettings
from openelb.keepalived.announcer import AnnounceOutcome
from openelb.keepalived.model import DesiredState, PlanIssue, plan
from openelb.keepalived.notify import VrrpState
from openelb.keepalived.states import VipStateChange
from openelb.keepalived.supervisor import ApplyResult, KeepalivedError
from openelb.kube.views import Eip, Service
from openelb.speaker.records import SpeakerRecord
from openelb.speaker.vipmode import VipInputs, VipMode
from tests.keepalived.test_desired import node, svc


def eip(
    name: str,
    address: str,
    ids: dict[str, int],
    *,
    protocol: str = "vip",
    interface: str = "lo",
) -> Eip:
    return Eip.from_raw(
        {
            "metadata": {"name": name},
            "spec": {"address": address, "protocol": protocol, "interface": interface},
            "status": {"virtualRouterIDs": ids},
        }
    )


class FakeAnnouncer:
    """Records what it is asked to apply; rejects when told to."""

    def __init__(
        self,
        *,
        node: str,
        settings: KeepalivedSettings,
        on_change: Callable[[VipStateChange], None],
        on_issue: Callable[[PlanIssue], None],
    ) -> None:
        self.node = node
        self.settings = settings
        self.on_change = on_change
        self.on_issue = on_issue
        self.applied: list[DesiredState] = []
        self.reject = ""
        self.started = False
        self.closed = False

    def start(self) -> FakeAnnouncer:
        self.started = True
        return self

    def apply(self, desired: DesiredState) -> AnnounceOutcome:
        self.applied.append(desired)
        new_plan = plan(desired, self.settings)
        for issue in new_plan.issues:
            self.on_issue(issue)
        if self.reject:
            return AnnounceOutcome(new_plan, ApplyResult(False, "rejected", self.reject))
        return AnnounceOutcome(new_plan, ApplyResult(True, "started"))

    def close(self) -> None:
        self.closed = True


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str, str]] = []

    def event(self, obj: Any, type: str, reason: str, message: str) -> bool:
        self.recorded.append((obj.key, type, reason, message))
        return True

    def reasons(self) -> list[str]:
        return [reason for _key, _type, reason, _message in self.recorded]


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.events = Events()
        self.services: dict[str, Service] = {}
        self.fakes: list[FakeAnnouncer] = []
        settings = KeepalivedSettings(runtime_dir=str(tmp_path / "keepalived"))
        self.vip = VipMode(
            node="a",
            settings=settings,
            events=self.events,
            service=self.services.get,
            announcer_factory=self._make,
        )

    def _make(self, **kwargs: Any) -> FakeAnnouncer:
        fake = FakeAnnouncer(**kwargs)
        self.fakes.append(fake)
        return fake  # type: ignore[return-value]

    def update(self, *, services: list[Service], eips: list[Eip]) -> None:
        for s in services:
            self.services[s.key] = s
        self.vip.resolve(eips)
        records = {
            n: SpeakerRecord(n, ("10.0.0.9", 7947), 1, {e.name: "lo" for e in eips})
            for n in ("a", "b")
        }
        nodes = [node("a", "10.250.0.11"), node("b", "10.250.0.12")]
        self.vip.update(
            VipInputs(services=services, eips=eips, slices=[], nodes=nodes, records=records)
        )
        assert self.vip.wait_idle()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.vip.close()


def test_layer2_only_clusters_never_touch_keepalived(rig: Rig) -> None:
    rig.update(
        services=[svc("web", ["10.9.0.1"])],
        eips=[eip("l2", "10.9.0.0/28", {}, protocol="layer2")],
    )
    assert rig.fakes == []
    assert rig.vip.interfaces() == {}


def test_a_vip_eip_starts_keepalived_with_the_vip_on_the_resolved_nic(rig: Rig) -> None:
    pool = eip("vips", "10.9.0.0/28", {"10.9.0.1": 5})
    rig.update(services=[svc("web", ["10.9.0.1"])], eips=[pool])
    assert rig.vip.interfaces() == {"vips": "lo"}
    (fake,) = rig.fakes
    assert fake.started
    (vip,) = fake.applied[-1].vips
    assert (vip.address, vip.router_id, vip.interface, vip.eligible) == (
        "10.9.0.1",
        5,
        "lo",
        frozenset({"a", "b"}),
    )
    rig.vip.close()
    assert fake.closed


def test_becoming_master_is_an_event_on_the_service_naming_this_node(rig: Rig) -> None:
    rig.update(
        services=[svc("web", ["10.9.0.1"])], eips=[eip("vips", "10.9.0.0/28", {"10.9.0.1": 5})]
    )
    rig.fakes[0].on_change(
        VipStateChange(
            vip="10.9.0.1",
            eip="vips",
            instance="oelb_vips_v4_5",
            node="a",
            state=VrrpState.MASTER,
            previous=VrrpState.BACKUP,
            at=time.time(),
        )
    )
    ((key, type_, reason, message),) = rig.events.recorded
    assert (key, type_, reason) == ("default/web", "Normal", "VIPHeld")
    assert "held by node a" in message


def test_a_vip_without_router_id_waits_and_is_reported_once(rig: Rig) -> None:
    for _ in range(3):
        rig.update(services=[svc("web", ["10.9.0.1"])], eips=[eip("vips", "10.9.0.0/28", {})])
    assert rig.events.reasons() == ["VIPWaiting"]
    assert metrics.registry.get_sample_value(
        "openelb_vrrp_vips_waiting", {"reason": "NoRouterID"}
    ) == pytest.approx(1)
    rig.update(
        services=[svc("web", ["10.9.0.1"])], eips=[eip("vips", "10.9.0.0/28", {"10.9.0.1": 5})]
    )
    assert metrics.registry.get_sample_value(
        "openelb_vrrp_vips_waiting", {"reason": "NoRouterID"}
    ) == pytest.approx(0)


def test_a_refused_config_is_a_warning_once_per_distinct_error(rig: Rig) -> None:
    pool = eip("vips", "10.9.0.0/28", {"10.9.0.1": 5})
    rig.update(services=[svc("web", ["10.9.0.1"])], eips=[pool])
    rig.fakes[0].reject = "keepalived -t refused the config (1): bad"
    for _ in range(3):
        rig.update(services=[svc("web", ["10.9.0.1"])], eips=[pool])
    assert rig.events.reasons() == ["KeepalivedConfigRejected"]
    assert "previous one stays in use" in rig.events.recorded[0][3]


def test_keepalived_that_cannot_run_is_a_warning_once_and_retried(rig: Rig) -> None:
    def broken(**kwargs: Any) -> FakeAnnouncer:
        raise KeepalivedError("cannot start /no/keepalived: No such file or directory")

    rig.vip._factory = broken
    pool = eip("vips", "10.9.0.0/28", {"10.9.0.1": 5})
    for _ in range(3):
        rig.update(services=[svc("web", ["10.9.0.1"])], eips=[pool])
    assert rig.events.reasons() == ["KeepalivedFailed"]
    assert "/no/keepalived" in rig.events.recorded[0][3]
    rig.vip._factory = rig._make  # installed meanwhile: the next change starts it
    rig.update(services=[svc("web", ["10.9.0.1"])], eips=[pool])
    assert rig.fakes and rig.fakes[0].applied


def test_an_eip_whose_nic_is_missing_leaves_this_node_out(rig: Rig) -> None:
    assert not rig.vip.resolve([eip("vips", "10.9.0.0/28", {}, interface="no-such-nic0")])
    assert rig.vip.interfaces() == {}
