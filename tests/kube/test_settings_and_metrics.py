"""KubeSettings / LeaderElectionSettings validation and the leader metric helper."""

from __future__ import annotations

import pytest

from openelb import metrics
from openelb.config import KubeSettings, LeaderElectionSettings


def test_defaults_are_valid() -> None:
    assert KubeSettings().request_timeout == 10.0
    le = LeaderElectionSettings()
    assert le.retry_period < le.renew_deadline < le.lease_duration


def test_leader_timings_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaderElectionSettings(lease_duration=5, renew_deadline=6)
    with pytest.raises(ValueError):
        KubeSettings(backoff_initial=5, backoff_max=1)


def test_leader_metric_follows_transitions() -> None:
    lease = "ns/test-leader-metric"
    metrics.kube_leader_changed(lease, leading=True, transition="acquired")
    assert metrics.registry.get_sample_value("openelb_kube_leader", {"lease": lease}) == 1
    metrics.kube_leader_changed(lease, leading=False, transition="renew-failed")
    assert metrics.registry.get_sample_value("openelb_kube_leader", {"lease": lease}) == 0
    assert (
        metrics.registry.get_sample_value(
            "openelb_kube_leader_transitions_total", {"lease": lease, "transition": "renew-failed"}
        )
        == 1
    )
