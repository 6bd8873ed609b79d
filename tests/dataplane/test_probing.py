"""Conflict probes for many addresses at once: one burst, one wait, only claimed ones blocked."""

from __future__ import annotations

import time

import pytest

from openelb.dataplane.announcing import AnnounceSender
from openelb.dataplane.probing import ProbeBatch, claimed
from openelb.lab.netns import Testbed, in_netns
from tests.dataplane import frame_cases as fc

FREE4 = [f"10.250.0.{n}" for n in range(200, 230)]
FREE6 = [f"fd0e:1b::{n:x}" for n in range(0x200, 0x210)]


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@pytest.mark.netns
def test_a_batch_blocks_only_the_addresses_another_host_holds(testbed: Testbed) -> None:
    node, holder = testbed.add_hosts("node", "holder")
    taken4, taken6 = str(holder.ipv4.ip), str(holder.ipv6.ip)
    with in_netns(node.netns), AnnounceSender() as sender:
        batch = ProbeBatch(sender, wait=0.3)
        try:
            started = time.monotonic()
            batch.start("eth0", [*FREE4[:15], taken4, *FREE4[15:], *FREE6, taken6], now=started)
            assert len(batch) == len(FREE4) + len(FREE6) + 2
            results = batch.wait_all(timeout=10)
        finally:
            batch.close()
    assert len(batch) == 0 and batch.sockets() == []
    claims = {r.ip: r.claimer for r in results if r.claimer is not None}
    assert claims == {taken4: _mac(holder.mac), taken6: _mac(holder.mac)}
    assert {r.ip for r in results if r.claimer is None} == set(FREE4) | set(FREE6)


@pytest.mark.netns
def test_poll_never_waits_and_decides_free_addresses_only_after_the_wait(
    testbed: Testbed,
) -> None:
    (node,) = testbed.add_hosts("node")
    with in_netns(node.netns), AnnounceSender() as sender:
        batch = ProbeBatch(sender, wait=0.2, count=2)
        try:
            now = time.monotonic()
            batch.start("eth0", FREE4[:3], now=now)
            assert batch.poll(now=now) == []  # nobody answered yet, and the wait is not over
            deadline = batch.next_deadline()
            assert deadline is not None and now < deadline <= now + 0.2
            batch.cancel(FREE4[0])  # lost meanwhile: never reported
            decided = batch.poll(now=now + 0.2)
        finally:
            batch.close()
    assert sorted(r.ip for r in decided) == FREE4[1:3]
    assert all(r.claimer is None for r in decided)


def test_claimed_names_the_address_and_the_claiming_host() -> None:
    own = fc.OWNER_MAC
    reply = fc.arp(op=2, sha=fc.OTHER_MAC, spa=fc.VIP4, tpa=fc.CLIENT4)
    assert claimed(reply, own) == (fc.VIP4, fc.OTHER_MAC)
    rival_probe = fc.arp(sha=fc.OTHER_MAC, spa=bytes(4), tpa=fc.VIP4)
    assert claimed(rival_probe, own) == (fc.VIP4, fc.OTHER_MAC)
    assert claimed(fc.arp(sha=own, spa=fc.VIP4), own) is None
    rival_dad = fc.ns(src=fc.ZERO6, slla=None)
    assert claimed(rival_dad, own) == (fc.VIP6, fc.CLIENT_MAC)
    assert claimed(fc.ns(), own) is None
    assert claimed(b"\x00" * 8, own) is None


def test_bad_settings_are_refused() -> None:
    with AnnounceSender() as sender:
        with pytest.raises(ValueError, match="wait > 0"):
            ProbeBatch(sender, wait=0)
        with pytest.raises(ValueError, match="count >= 1"):
            ProbeBatch(sender, count=0)
