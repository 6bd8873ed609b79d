"""The namespace testbed: connectivity, captures, link cuts and leaving nothing behind."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from openelb.lab import janitor
from openelb.lab.netns import Testbed, TestbedError, in_netns, list_netns, process_start_time

pytestmark = pytest.mark.netns


def _wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_hosts_reach_each_other_over_ipv4_and_ipv6(testbed: Testbed) -> None:
    a, b = testbed.add_hosts("a", "b")
    a.run(["ping", "-c", "1", "-W", "2", str(b.ipv4.ip)])
    a.run(["ping", "-6", "-c", "1", "-W", "2", str(b.ipv6.ip)])
    assert a.neighbour(str(b.ipv4.ip))[0] == b.mac


def test_hosts_have_distinct_private_addresses_and_macs(testbed: Testbed) -> None:
    hosts = testbed.add_hosts("a", "b", "c")
    assert len({h.ipv4 for h in hosts}) == 3
    assert len({h.mac for h in hosts}) == 3
    assert all(h.ipv4.ip.is_private and h.ipv6.ip.is_private for h in hosts)


def test_duplicate_or_bad_host_names_are_refused(testbed: Testbed) -> None:
    testbed.add_host("a")
    with pytest.raises(TestbedError, match="already exists"):
        testbed.add_host("a")
    with pytest.raises(TestbedError, match="alphanumeric"):
        testbed.add_host("bad-name")


def test_capture_records_real_arp_frames(testbed: Testbed) -> None:
    a, b = testbed.add_hosts("a", "b")
    cap = b.capture("arp")
    a.run(["arping", "-c", "1", "-w", "2", "-I", "eth0", str(b.ipv4.ip)])
    frames = cap.stop()
    requests = [f.arp for f in frames if f.arp and f.arp.op == 1]
    replies = [f.arp for f in frames if f.arp and f.arp.op == 2]
    assert requests and requests[0].sha == a.mac and requests[0].tpa == str(b.ipv4.ip)
    assert replies and replies[0].sha == b.mac
    assert frames[0].ts > 1e9  # real wall-clock timestamps


def test_link_down_cuts_the_host_off_and_link_up_restores_it(testbed: Testbed) -> None:
    a, b = testbed.add_hosts("a", "b")
    b.link_down()
    assert a.run(["ping", "-c", "1", "-W", "1", str(b.ipv4.ip)], check=False).returncode != 0
    b.link_up()
    assert _wait_until(
        lambda: a.run(["ping", "-c", "1", "-W", "1", str(b.ipv4.ip)], check=False).returncode == 0
    )


def test_in_netns_opens_sockets_inside_the_host(testbed: Testbed) -> None:
    a, b = testbed.add_hosts("a", "b")
    server = b.spawn(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 9999))
        for _ in range(3):
            data, peer = s.recvfrom(100)
            s.sendto(data.upper(), peer)
    """),
        ]
    )
    with in_netns(a.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.2)
    answer = b""
    for _ in range(25):  # the server may not be bound yet: bounded retries
        sock.sendto(b"hello", (str(b.ipv4.ip), 9999))
        try:
            answer = sock.recv(100)
            break
        except TimeoutError:
            continue
    sock.close()
    assert answer == b"HELLO"
    server.kill()


def test_wait_for_output_returns_on_the_line_and_fails_clearly_otherwise(
    testbed: Testbed,
) -> None:
    (host,) = testbed.add_hosts("a")
    ready = host.spawn(["sh", "-c", "sleep 0.2; echo ready; sleep 300"], name="ready")
    ready.wait_for_output("ready", timeout=30)
    ready.kill()
    quitter = host.spawn(["sh", "-c", "echo bye; exit 3"], name="quitter")
    with pytest.raises(TestbedError, match=r"(?s)quitter exited before printing 'ready'.*bye"):
        quitter.wait_for_output("ready", timeout=30)
    silent = host.spawn(["sleep", "300"], name="silent")
    with pytest.raises(TestbedError, match="silent did not print 'ready' within 0 s"):
        silent.wait_for_output("ready", timeout=0.1)
    silent.kill()


def test_teardown_leaves_no_namespaces_or_processes() -> None:
    with Testbed() as tb:
        host = tb.add_host("a")
        proc = host.spawn(["sleep", "300"])
        run_id = tb.run_id
        assert len(tb.namespaces()) == 2
    assert not [ns for ns in list_netns() if ns.startswith(run_id)]
    assert not proc.alive()
    assert not tb.dir.exists()


def test_teardown_happens_when_the_test_body_fails() -> None:
    with pytest.raises(RuntimeError), Testbed() as tb:
        tb.add_host("a")
        raise RuntimeError("test failed")
    assert not tb.namespaces()


_OWNER_SCRIPT = """
import sys, time
from openelb.lab.netns import Testbed
tb = Testbed(reaper={reaper})
host = tb.add_host("a")
tb.add_host("b")
proc = host.spawn(["sleep", "300"])
print(tb.run_id, proc.pid, flush=True)
time.sleep(300)
"""


def _start_owner(reaper: bool) -> tuple[subprocess.Popen[str], str, int]:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT.format(reaper=reaper)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    run_id, pid = owner.stdout.readline().split()
    return owner, run_id, int(pid)


def _run_gone(run_id: str, pid: int, start: int | None) -> bool:
    no_ns = not [ns for ns in list_netns() if ns.startswith(run_id)]
    return no_ns and (process_start_time(pid) is None or process_start_time(pid) != start)


def test_a_sigkilled_owner_is_cleaned_up_by_its_reaper() -> None:
    owner, run_id, pid = _start_owner(reaper=True)
    start = process_start_time(pid)
    try:
        assert [ns for ns in list_netns() if ns.startswith(run_id)]
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert _wait_until(lambda: _run_gone(run_id, pid, start), timeout=15)
    finally:
        owner.kill()
        owner.wait()
        assert owner.stdout is not None
        owner.stdout.close()
        janitor.remove_run(run_id)


def test_janitor_collects_runs_whose_owner_and_reaper_died() -> None:
    owner, run_id, pid = _start_owner(reaper=False)
    start = process_start_time(pid)
    try:
        # While the owner lives, the janitor leaves the run alone.
        janitor.collect_leftovers()
        assert [ns for ns in list_netns() if ns.startswith(run_id)]
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        removed = janitor.collect_leftovers()
        assert {ns for ns in removed if ns.startswith(run_id)} == {
            f"{run_id}-sw",
            f"{run_id}-a",
            f"{run_id}-b",
        }
        assert _wait_until(lambda: _run_gone(run_id, pid, start))
    finally:
        owner.kill()
        owner.wait()
        assert owner.stdout is not None
        owner.stdout.close()
        janitor.remove_run(run_id)


def test_janitor_only_touches_its_own_prefix() -> None:
    foreign = "notours-janitortest"
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        janitor.collect_leftovers()
        assert foreign in list_netns()
    finally:
        subprocess.run(["ip", "netns", "delete", foreign], check=False)
