"""Eip interface resolution on a node (a testbed namespace): names, can_reach:, subnet warning."""

from __future__ import annotations

import pytest

from openelb.lab.netns import Testbed, in_netns
from openelb.speaker.interfaces import InterfaceError, resolve_interface, subnet_warning


@pytest.mark.netns
def test_names_and_can_reach_resolve_and_unknowns_say_why(testbed: Testbed) -> None:
    host = testbed.add_host("n1")
    host.run(["ip", "link", "add", "dummy7", "type", "veth", "peer", "name", "dummy7p"])
    host.run(["ip", "link", "set", "dummy7", "up"])
    host.run(["ip", "addr", "add", "192.0.2.1/24", "dev", "dummy7"])
    with in_netns(host.netns):
        assert resolve_interface("eth0") == "eth0"
        assert resolve_interface("can_reach:10.250.0.99") == "eth0"
        assert resolve_interface("can_reach:192.0.2.50") == "dummy7"
        with pytest.raises(InterfaceError, match="no interface named"):
            resolve_interface("nope0")
        with pytest.raises(InterfaceError, match="not an IP"):
            resolve_interface("can_reach:banana")
        with pytest.raises(InterfaceError, match="no route"):
            resolve_interface("can_reach:198.51.100.1")
        with pytest.raises(InterfaceError, match="no interface"):
            resolve_interface("")
        assert subnet_warning("eth0", "10.250.0.200") is None
        assert subnet_warning("eth0", str(host.ipv6.ip).replace("::", "::f")) is None
        warning = subnet_warning("eth0", "203.0.113.7")
        assert warning is not None and "outside every subnet" in warning
