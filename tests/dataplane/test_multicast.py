"""Solicited-node group membership is real (ip maddr shows it) and ref-counted per group."""

from __future__ import annotations

import pytest

from openelb.dataplane.multicast import SolicitedNodeGroups
from openelb.dataplane.responder import DataplaneError
from openelb.lab.netns import Host, Testbed, in_netns

pytestmark = pytest.mark.netns

# Two VIPs with the same last 24 bits share ff02::1:ff00:c8; a third has its own group.
VIP_A = "fd0e:1b::c8"
VIP_B = "fd0e:1b:0:1::c8"
VIP_C = "fd0e:1b::c9"


def _groups(host: Host) -> set[str]:
    out = host.run(["ip", "-6", "maddr", "show", "dev", "eth0"]).stdout
    return {line.split()[1] for line in out.splitlines() if line.strip().startswith("inet6")}


def _macs(host: Host) -> set[str]:
    out = host.run(["ip", "maddr", "show", "dev", "eth0"]).stdout
    return {line.split()[1] for line in out.splitlines() if line.strip().startswith("link")}


def test_groups_are_joined_once_and_left_with_their_last_vip(testbed: Testbed) -> None:
    (node,) = testbed.add_hosts("node")
    groups = SolicitedNodeGroups()
    try:
        with in_netns(node.netns):
            assert groups.join("eth0", VIP_A) is True
            assert groups.join("eth0", VIP_B) is False  # same group: one more reference
            assert groups.join("eth0", VIP_A) is False  # the same VIP twice counts once
            assert groups.join("eth0", VIP_C) is True
        assert {"ff02::1:ff00:c8", "ff02::1:ff00:c9"} <= _groups(node)
        assert "33:33:ff:00:00:c8" in _macs(node)
        assert sorted(groups.groups().values()) == [1, 2]
        with in_netns(node.netns):
            assert groups.leave("eth0", VIP_A) is False
            assert groups.leave("eth0", VIP_A) is False  # not held any more: no-op
        assert "ff02::1:ff00:c8" in _groups(node)
        with in_netns(node.netns):
            assert groups.leave("eth0", VIP_B) is True
        assert "ff02::1:ff00:c8" not in _groups(node)
        assert "ff02::1:ff00:c9" in _groups(node)
    finally:
        groups.close()
    assert "ff02::1:ff00:c9" not in _groups(node)  # closing drops every membership


def test_ipv4_addresses_and_missing_interfaces_are_refused(testbed: Testbed) -> None:
    (node,) = testbed.add_hosts("node")
    groups = SolicitedNodeGroups()
    try:
        with in_netns(node.netns):
            with pytest.raises(DataplaneError, match="not IPv6"):
                groups.join("eth0", "10.250.0.200")
            with pytest.raises(DataplaneError, match="nope0"):
                groups.join("nope0", VIP_A)
    finally:
        groups.close()


def test_many_groups_on_one_interface(testbed: Testbed) -> None:
    (node,) = testbed.add_hosts("node")
    groups = SolicitedNodeGroups()
    vips = [f"fd0e:1b::1:{i:x}" for i in range(600)]
    try:
        with in_netns(node.netns):
            for vip in vips:
                groups.join("eth0", vip)
        assert len(groups.groups()) == 600
        assert len(_groups(node)) >= 600
    finally:
        groups.close()
