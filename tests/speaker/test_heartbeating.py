"""HeartbeatTransport over loopback, against both pacers (native thread and Python twin)."""

from __future__ import annotations

import ctypes
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from openelb.speaker import _heartbeat_py, heartbeating, wire
from openelb.speaker.detector import FailureDetector
from openelb.speaker.heartbeating import Gate, HeartbeatTransport, Received

IMPLS = ["python"]
try:
    from openelb.speaker import _heartbeat  # noqa: F401

    IMPLS.insert(0, "compiled")
except ImportError:  # pragma: no cover - the compiled module is optional
    pass


@pytest.fixture(params=IMPLS, ids=[f"{i}-pacer" for i in IMPLS])
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair(impl: str) -> Iterator[tuple[HeartbeatTransport, HeartbeatTransport]]:
    a = HeartbeatTransport(
        node="a", incarnation=1, bind=("127.0.0.1", 0), interval=0.005, implementation=impl
    )
    b = HeartbeatTransport(
        node="b", incarnation=1, bind=("127.0.0.1", 0), interval=0.005, implementation=impl
    )
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _collect(t: HeartbeatTransport, count: int, timeout: float = 10.0) -> list[Received]:
    out: list[Received] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        try:
            out.append(t.inbox.get(timeout=0.1))
        except queue.Empty:
            continue
    return out


def test_heartbeats_arrive_in_sequence(pair: tuple[HeartbeatTransport, HeartbeatTransport]) -> None:
    a, b = pair
    a.set_targets([b.address])
    a.start()
    b.start()
    got = _collect(b, 20)
    assert len(got) == 20
    msgs = [r.message for r in got]
    assert all(m.kind is wire.Kind.HEARTBEAT and m.sender == "a" for m in msgs)
    seqs = [m.sequence for m in msgs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    assert a.stats()["sent"] >= 20


def test_a_hung_control_loop_stops_heartbeating(impl: str) -> None:
    with (
        HeartbeatTransport(
            node="a",
            incarnation=1,
            bind=("127.0.0.1", 0),
            interval=0.002,
            hung_after=0.02,
            implementation=impl,
        ) as a,
        HeartbeatTransport(node="b", incarnation=1, bind=("127.0.0.1", 0)) as b,
    ):
        a.set_targets([b.address])
        a.start()  # fills the ring once; nobody calls tick() again
        b.start()
        deadline = time.monotonic() + 10
        while a.stats()["starved"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert a.stats()["starved"] >= 3
        got = _collect(b, 100, timeout=0.3)
        assert len(got) == 10  # exactly the ring's capacity: hung_after / interval


def test_a_silent_peer_is_declared_dead_over_real_sockets(
    pair: tuple[HeartbeatTransport, HeartbeatTransport],
) -> None:
    a, b = pair
    det = FailureDetector(interval=a.interval, misses=5)
    a.set_targets([b.address])
    a.start()
    b.start()
    for r in _collect(b, 10):
        det.heard("a", incarnation=1, sequence=r.message.sequence, now=r.arrived)
    assert det.poll(time.monotonic()) == []
    a.pause()
    deaths = []
    deadline = time.monotonic() + 10
    while not deaths and time.monotonic() < deadline:
        try:
            r = b.inbox.get(timeout=0.005)
            det.heard("a", incarnation=1, sequence=r.message.sequence, now=r.arrived)
        except queue.Empty:
            pass
        deaths = det.poll(time.monotonic())
    assert [d.peer for d in deaths] == ["a"]


def test_garbage_and_wrong_keys_are_counted_not_queued(impl: str) -> None:
    with HeartbeatTransport(
        node="b", incarnation=1, bind=("127.0.0.1", 0), key=b"k1", implementation=impl
    ) as b:
        b.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"GET / HTTP/1.1 and then some more bytes", b.address)
            s.sendto(wire.heartbeat(sender="x", incarnation=1, sequence=1, key=b"k2"), b.address)
            s.sendto(wire.heartbeat(sender="x", incarnation=1, sequence=2, key=b"k1"), b.address)
        (good,) = _collect(b, 1)
        assert good.message.sequence == 2
        assert b.rejected == {"magic": 1, "bad-mac": 1}


def test_one_shot_messages_and_refutation_incarnation(
    pair: tuple[HeartbeatTransport, HeartbeatTransport],
) -> None:
    a, b = pair
    b.start()
    msg = wire.Message(wire.Kind.GOODBYE, "a", 1, 99)
    assert a.send(msg, [b.address]) == 1
    (got,) = _collect(b, 1)
    assert got.message == msg
    a.set_targets([b.address])
    a.set_incarnation(7)
    a.start()
    assert all(r.message.incarnation == 7 for r in _collect(b, 5))


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="interval"):
        HeartbeatTransport(node="a", incarnation=1, bind=("127.0.0.1", 0), interval=0)
    with pytest.raises(ValueError, match="hung_after"):
        HeartbeatTransport(
            node="a", incarnation=1, bind=("127.0.0.1", 0), interval=0.1, hung_after=0.1
        )
    with pytest.raises(ValueError, match="unknown"):
        heartbeating.pacer_module("fortran")


# --- the liveness gate: a real BPF array map ----------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = 321


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 128)
    return int(_libc.syscall(_SYS_BPF, cmd, buf, 128))


def _array_map() -> int:
    fd = _bpf(0, struct.pack("=IIIII", 2, 4, 8, 1, 0))  # BPF_MAP_CREATE, ARRAY, u32 -> u64
    if fd < 0:
        pytest.skip(f"cannot create a BPF map: {os.strerror(ctypes.get_errno())}")
    return fd


def _lookup(fd: int) -> int:
    key, value = ctypes.c_uint32(0), ctypes.c_uint64(0)
    attr = struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(value), 0)
    assert _bpf(1, attr) == 0
    return int(value.value)


@pytest.mark.bpf
def test_the_sender_stamps_the_liveness_gate_and_stops_when_hung(impl: str) -> None:
    fd = _array_map()
    try:
        with HeartbeatTransport(
            node="a",
            incarnation=1,
            bind=("127.0.0.1", 0),
            interval=0.002,
            hung_after=0.02,
            gate=Gate(map_fd=fd, key=0, window=0.1),
            implementation=impl,
        ) as a:
            a.set_targets([("127.0.0.1", 9)])
            a.start()
            deadline = time.monotonic() + 10
            while a.stats()["starved"] < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            stamped = _lookup(fd)
            assert stamped > 0 and a.stats()["gate_errors"] == 0
            # Ring dry: no further stamps, so the gate expires on its own.
            time.sleep(0.02)
            assert _lookup(fd) == stamped
            assert stamped <= time.monotonic_ns() + 100_000_000
    finally:
        os.close(fd)


def test_drain_now_reads_what_the_kernel_holds_without_the_receiver_thread() -> None:
    with HeartbeatTransport(node="b", incarnation=1, bind=("127.0.0.1", 0)) as b:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for seq in range(1, 6):
                s.sendto(wire.heartbeat(sender="x", incarnation=1, sequence=seq), b.address)
        deadline = time.monotonic() + 5
        got = 0
        while got < 5 and time.monotonic() < deadline:
            got += b.drain_now()
        assert got == 5
        assert [b.inbox.get_nowait().message.sequence for _ in range(5)] == [1, 2, 3, 4, 5]
        assert b.drain_now() == 0


def test_datagrams_the_kernel_drops_for_a_full_buffer_are_counted() -> None:
    with HeartbeatTransport(node="b", incarnation=1, bind=("127.0.0.1", 0)) as b:
        assert b._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 20
        # A starved receiver: shrink the buffer so a few hundred datagrams overflow it.
        b._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for seq in range(1, 301):
                s.sendto(wire.heartbeat(sender="x", incarnation=1, sequence=seq), b.address)
        got = b.drain_now()
        assert 0 < got < 300
        assert b.take_overflowed() == 300 - got
        assert b.take_overflowed() == 0


@pytest.mark.parametrize("implementation", ["compiled", "python"])
def test_the_pacer_thread_alone_runs_real_time_so_load_cannot_delay_heartbeats(
    implementation: str,
) -> None:
    if implementation == "compiled":
        module: Any = pytest.importorskip("openelb.speaker._heartbeat")
    else:
        module = _heartbeat_py
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        pacer = module.Pacer(sock.fileno(), 20_000_000, 4)
        pacer.start()
        try:
            deadline = time.monotonic() + 10
            while pacer.realtime_error == "not started" and time.monotonic() < deadline:
                time.sleep(0.01)
            assert pacer.realtime_error is None  # root here, as in the DaemonSet
            (thread,) = [t for t in threading.enumerate() if t.name == "openelb-heartbeat"]
            assert thread.native_id is not None
            assert os.sched_getscheduler(thread.native_id) == os.SCHED_RR
            assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller is untouched
        finally:
            pacer.stop()
