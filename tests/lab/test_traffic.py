"""The traffic tool: wire format, gap analysis, a real stream on loopback and across a VIP move."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from openelb.lab.netns import Testbed
from openelb.lab.traffic import (
    DEFAULT_PORT,
    EchoServer,
    Probe,
    StreamResult,
    TrafficError,
    UdpStream,
    analyse,
    decode_reply,
    encode_reply,
    encode_request,
    parse_target,
    start_echo_server,
)


def _result(replies: list[tuple[float, float | None, str]], **events: float) -> StreamResult:
    probes = [
        Probe(seq=i, sent=sent, received=received, responder=who)
        for i, (sent, received, who) in enumerate(replies)
    ]
    return StreamResult(
        target="10.0.0.1:7", interval=0.001, started_at=0.0, probes=probes, events=events
    )


def _steady(start: float, end: float, who: str, step: float = 0.001) -> list[tuple]:
    n = round((end - start) / step)
    return [(start + i * step, start + i * step + 0.0002, who) for i in range(n)]


# --- wire format ---------------------------------------------------------------------------------


def test_reply_carries_sequence_send_time_and_responder() -> None:
    reply = encode_reply(encode_request(42, 123456789), b"node-a")
    assert reply is not None
    assert decode_reply(reply) == (42, 123456789, "node-a")


def test_foreign_datagrams_are_not_echoed_or_decoded() -> None:
    assert encode_reply(b"hello, world, not ours at all", b"a") is None
    assert encode_reply(b"OELB", b"a") is None
    assert decode_reply(b"XXXX" + bytes(16)) is None


def test_targets_parse_for_both_families_and_bad_ones_are_refused() -> None:
    assert parse_target("10.1.2.3:7007") == ("10.1.2.3", 7007)
    assert parse_target("[fd00::1]:9") == ("fd00::1", 9)
    for bad in ("10.1.2.3", "name:80", "10.1.2.3:0", "10.1.2.3:x", "[fd00::1]:70000"):
        with pytest.raises(TrafficError):
            parse_target(bad)


def test_stream_bounds_are_enforced() -> None:
    with pytest.raises(TrafficError, match="interval"):
        UdpStream(("127.0.0.1", 9), interval=0.0)
    with pytest.raises(TrafficError, match="duration"):
        UdpStream(("127.0.0.1", 9), duration=10_000)
    stream = UdpStream(("127.0.0.1", 9), interval=0.001, duration=0.05, count=10**9)
    assert stream.count == 51  # count capped by duration / interval


# --- analysis ------------------------------------------------------------------------------------


def test_gap_around_event_and_the_node_that_took_over() -> None:
    replies = [*_steady(0.0, 1.0, "a")]
    replies += [(1.0 + i * 0.001, None, "") for i in range(300)]  # 300 ms outage
    replies += _steady(1.3, 2.0, "b")
    report = analyse(_result(replies, cut=1.0))
    assert report.gap == pytest.approx(0.3, abs=0.002)
    assert report.recovery == pytest.approx(0.3, abs=0.002)
    assert report.lost == 300 and report.lost_in_gap == 300
    assert report.responder_before == "a" and report.responder_after == "b"
    assert report.moved
    assert report.responders_before == {"a": 1000}
    assert report.responders_after == {"b": 700}
    assert "gap 30" in report.summary()


def test_gaps_before_the_event_are_not_the_outage() -> None:
    replies = _steady(0.0, 0.2, "a")
    replies += [(0.2 + i * 0.001, None, "") for i in range(100)]  # an earlier hiccup
    replies += _steady(0.3, 1.0, "a")
    replies += [(1.0 + i * 0.001, None, "") for i in range(20)]
    replies += _steady(1.02, 1.5, "a")
    report = analyse(_result(replies, cut=0.9))
    assert report.gap == pytest.approx(0.02, abs=0.002)
    assert not report.moved
    assert analyse(_result(replies)).gap == pytest.approx(0.1, abs=0.002)  # no event: anywhere


def test_traffic_that_never_comes_back_is_a_gap_to_the_end() -> None:
    replies = _steady(0.0, 0.5, "a") + [(0.5 + i * 0.001, None, "") for i in range(500)]
    report = analyse(_result(replies, cut=0.5))
    assert report.gap == pytest.approx(0.5, abs=0.003)
    assert report.recovery is None and report.responder_after == ""


def test_unknown_event_is_a_clear_error() -> None:
    with pytest.raises(TrafficError, match="no event 'boom'"):
        analyse(_result(_steady(0, 0.01, "a"), cut=0.0), event="boom")


def test_results_survive_json() -> None:
    result = _result([*_steady(0.0, 0.01, "a"), (0.01, None, "")], cut=0.005)
    again = StreamResult.from_json(result.to_json())
    assert again == result
    assert analyse(again) == analyse(result)


# --- real sockets --------------------------------------------------------------------------------


def test_stream_to_a_loopback_echo_server_gets_every_reply() -> None:
    with EchoServer(name="lo-server", port=0, bind="127.0.0.1").start() as server:
        result = UdpStream(("127.0.0.1", server.port), interval=0.001, duration=0.2).run()
    report = analyse(result)
    assert report.sent >= 50 and report.lost == 0
    assert {p.responder for p in result.probes} == {"lo-server"}
    assert sum(report.responders_before.values()) + sum(report.responders_after.values()) == (
        report.received
    )
    assert server.served == report.received
    assert all(p.received is not None and p.received >= p.sent for p in result.probes)


def test_stream_stops_early_and_marks_events() -> None:
    with EchoServer(name="s", port=0, bind="::1").start() as server:
        stream = UdpStream(("::1", server.port), interval=0.001, duration=30.0).start()
        time.sleep(0.05)
        stream.mark("cut")
        stream.stop()
        result = stream.wait(timeout=5.0)
    assert "cut" in result.events and 0 < len(result.probes) < 30_000
    assert analyse(result, event="cut").responder_before == "s"


def test_command_line_stream_writes_json_and_analyse_reads_it(tmp_path) -> None:
    out = tmp_path / "stream.json"
    with EchoServer(name="cli", port=0, bind="127.0.0.1").start() as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "openelb.lab.traffic",
                "stream",
                "--target",
                f"127.0.0.1:{server.port}",
                "--interval-ms",
                "2",
                "--duration",
                "0.1",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    assert "lost 0/" in done.stdout
    report = subprocess.run(
        [sys.executable, "-m", "openelb.lab.traffic", "analyse", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(report.stdout)["lost"] == 0
    bad = subprocess.run(
        [sys.executable, "-m", "openelb.lab.traffic", "stream", "--target", "nowhere"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2 and "not IP:PORT" in bad.stderr


@pytest.mark.netns
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_client_sees_the_vip_move_between_nodes(testbed: Testbed, family: str) -> None:
    client, a, b = testbed.add_hosts("client", "a", "b")
    if family == "ipv4":
        vip, plen = str(testbed.subnet4[200]), 24
    else:
        vip, plen = str(testbed.subnet6[0x200]), 64
    servers = [start_echo_server(a), start_echo_server(b)]
    try:
        a.run(["ip", "addr", "add", f"{vip}/{plen}", "dev", "eth0", "nodad"])
        stream = UdpStream(
            (vip, DEFAULT_PORT), interval=0.001, duration=3.0, netns=client.netns
        ).start()
        deadline = time.monotonic() + 5.0
        while stream.replies_seen() < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.last_responder() == "a"
        stream.mark("move")
        a.link_down()
        a.run(["ip", "addr", "del", f"{vip}/{plen}", "dev", "eth0"])
        b.run(["ip", "addr", "add", f"{vip}/{plen}", "dev", "eth0", "nodad"])
        # Announcing is not this tool's business: make the client resolve the VIP afresh.
        client.run(["ip", "neigh", "flush", "to", vip, "dev", "eth0"])
        while stream.last_responder() != "b" and time.monotonic() < deadline + 3.0:
            time.sleep(0.01)
        stream.stop()
        result = stream.wait(timeout=10.0)
    finally:
        for server in servers:
            server.stop()
    report = analyse(result, event="move")
    assert report.responder_before == "a"
    assert report.responder_after == "b" and report.moved
    assert report.received > 50 and report.gap > 0


@pytest.mark.netns
def test_command_line_server_answers_inside_a_node_namespace(testbed: Testbed) -> None:
    client, node = testbed.add_hosts("client", "node")
    server = node.spawn(
        [sys.executable, "-m", "openelb.lab.traffic", "serve", "--port", "7100", "--name", "n1"]
    )
    deadline = time.monotonic() + 15.0
    while "listening on port 7100" not in server.log() and time.monotonic() < deadline:
        assert server.alive(), server.log()
        time.sleep(0.02)
    result = UdpStream(
        (str(node.ipv6.ip), 7100), interval=0.002, duration=0.2, netns=client.netns
    ).run()
    assert {p.responder for p in result.probes} == {"n1"}
    assert server.stop() == 0
