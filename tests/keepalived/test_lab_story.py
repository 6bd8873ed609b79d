"""`openelb lab --mode vip`: the story in VIP mode, with keepalived run by the real speakers."""

from __future__ import annotations

import pytest

from openelb.lab.netns import list_netns
from openelb.lab.scenario import LabOptions, run_lab

pytestmark = [pytest.mark.keepalived, pytest.mark.netns, pytest.mark.slow]


def test_the_vip_mode_story_elects_a_master_answers_and_fails_over_when_a_cable_is_cut() -> None:
    # A hard failure: a graceful VRRP handover (kill/graceful: keepalived leaves with priority
    # 0) can be so short that the client's largest gap is scheduling noise, not the failover.
    lines: list[str] = []
    code = run_lab(LabOptions(nodes=2, mode="vip", failure="link"), out=lines.append)
    text = "\n".join(lines)
    assert code == 0, text
    assert "(vip, interface eth0)" in text
    assert "is VRRP master (router ID" in text
    assert "datagrams answered" in text
    assert "took over" in text
    run_id = text.split("namespaces ", 1)[1].split("-*", 1)[0]
    assert not [ns for ns in list_netns() if ns.startswith(run_id)]  # nothing left behind


def test_an_unknown_mode_is_refused_before_anything_is_built() -> None:
    from openelb.lab.cluster import LabError

    with pytest.raises(LabError, match="mode must be one of layer2, vip"):
        run_lab(LabOptions(mode="bgp"), out=lambda _line: None)
