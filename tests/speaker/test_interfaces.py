"""Eip interface resolution on a node (a testbed namespace): names, can_reach:, subnet warning."""

from __future__ import annotations

import logging

import pytest

from openelb.kube.views import Eip
from openelb.lab.netns import Testbed, in_netns
from openelb.speaker.interfaces import (
    EipInterfaces,
    InterfaceError,
    resolve_interface,
    subnet_warning,
)


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


def test_eip_interfaces_warns_once_per_eip_and_error(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.eip_interfaces")
    resolver = EipInterfaces(node="n1", what="Eip", log=log)

    def eip(name: str, interface: str) -> Eip:
        return Eip.from_raw({"metadata": {"name": name}, "spec": {"interface": interface}})

    eips = [eip("good", "lo"), eip("bad", "nope0")]
    with caplog.at_level(logging.WARNING, logger="test.eip_interfaces"):
        assert resolver.resolve(eips) == {"good": "lo"}
        assert resolver.resolve(eips) == {"good": "lo"}
        assert resolver.resolve([eip("good", "lo"), eip("bad", "")]) == {"good": "lo"}
        resolver.resolve([eip("good", "lo")])  # fixed, then broken again: warned again
        resolver.resolve([eip("bad", "")])
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "Eip bad not served from node n1: no interface named 'nope0' on this node",
        "Eip bad not served from node n1: the Eip has no interface "
        "(set spec.interface for layer2 mode)",
        "Eip bad not served from node n1: the Eip has no interface "
        "(set spec.interface for layer2 mode)",
    ]
