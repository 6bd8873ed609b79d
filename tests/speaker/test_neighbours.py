"""NeighbourUnsticker: stuck (INCOMPLETE/FAILED) entries of dead peers go, usable ones stay."""

from __future__ import annotations

import socket
import time

import pytest

from openelb.lab.netns import Host, Testbed, in_netns
from openelb.speaker.neighbours import NeighbourUnsticker

pytestmark = [pytest.mark.netns]

ABSENT = "10.250.0.99"
STATIC = "10.250.0.98"


def _state(host: Host, address: str) -> str:
    return host.run(["ip", "neigh", "show", "to", address, "dev", "eth0"]).stdout.strip()


def test_stuck_entries_are_deleted_and_usable_ones_kept(testbed: Testbed) -> None:
    host = testbed.add_host("a")
    host.run(["ip", "neigh", "replace", STATIC, "lladdr", "02:00:00:00:00:98", "dev", "eth0"])
    with in_netns(host.netns):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"x", (ABSENT, 9))  # nobody has it: the entry stays unresolved
        assert _state(host, ABSENT), "an unresolved entry exists"
        unsticker = NeighbourUnsticker(period=0.1)
        try:
            now = time.monotonic()
            assert unsticker.unstick([ABSENT, STATIC], now=now) == 1
            assert unsticker.unstick([ABSENT], now=now) == 0  # rate-limited per address
        finally:
            unsticker.close()
    assert _state(host, ABSENT) == ""
    assert "02:00:00:00:00:98" in _state(host, STATIC)
