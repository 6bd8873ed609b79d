"""KeyQueue: dedup, one worker per key, delayed adds, retry backoff."""

from __future__ import annotations

import threading

import pytest

from openelb.kube.backoff import Backoff
from openelb.kube.queueing import KeyQueue, ShutDown
from tests.kube.conftest import wait_until


def test_repeated_adds_are_processed_once() -> None:
    q = KeyQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(0) == "a"
    assert q.get(0) == "b"
    assert q.get(0) is None


def test_key_added_while_processing_is_requeued_after_done_not_before() -> None:
    q = KeyQueue()
    q.add("a")
    key = q.get(0)
    assert key == "a"
    q.add("a")
    assert q.get(0) is None  # no second worker may take it
    q.done("a")
    assert q.get(0) == "a"
    q.done("a")
    assert q.get(0) is None


def test_add_after_and_retry_backoff_grows_then_forget_resets() -> None:
    q = KeyQueue(retry_initial=0.01, retry_maximum=0.04, jitter=0.0)
    q.add_after("a", 0.05)
    assert q.get(0) is None
    assert q.pending_delayed == 1
    assert q.get(2.0) == "a"
    q.done("a")
    delays = [q.retry("b") for _ in range(4)]
    assert delays == [0.01, 0.02, 0.04, 0.04]
    assert q.retries("b") == 4
    q.forget("b")
    assert q.retries("b") == 0
    assert q.get(2.0) == "b"  # the four delayed adds collapse into one


def test_shutdown_wakes_waiting_workers() -> None:
    q = KeyQueue()
    raised = threading.Event()

    def worker() -> None:
        try:
            q.get()
        except ShutDown:
            raised.set()

    thread = threading.Thread(target=worker)
    thread.start()
    q.shutdown()
    thread.join(5)
    assert raised.is_set()
    with pytest.raises(ShutDown):
        q.get(0)


def test_backoff_is_capped_and_jittered_within_bounds() -> None:
    b = Backoff(initial=0.1, maximum=1.0, jitter=0.2)
    delays = [b.next() for _ in range(10)]
    assert all(0.08 <= d <= 1.0 for d in delays)
    assert delays[-1] >= 0.8
    b.reset()
    assert b.next() <= 0.12
    with pytest.raises(ValueError):
        Backoff(initial=0)


def test_concurrent_workers_never_hold_the_same_key_and_lose_no_add() -> None:
    q = KeyQueue()
    keys = [f"k{i}" for i in range(8)]
    lock = threading.Lock()
    holding: set[str] = set()
    overlaps: list[str] = []
    processed_after_last_add: dict[str, bool] = {}
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                key = q.get(0.05)
            except ShutDown:
                return
            if key is None:
                continue
            with lock:
                if key in holding:
                    overlaps.append(key)
                holding.add(key)
                processed_after_last_add[key] = True
            with lock:
                holding.discard(key)
            q.done(key)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(4000):
            key = keys[i % len(keys)]
            with lock:
                processed_after_last_add[key] = False
            q.add(key)
        assert wait_until(lambda: all(processed_after_last_add.values()), timeout=5)
    finally:
        stop.set()
        q.shutdown()
        for thread in threads:
            thread.join(5)
    assert overlaps == []


def test_a_key_waits_for_one_delayed_add_and_taking_it_cancels_the_retry() -> None:
    q = KeyQueue(retry_initial=30.0, retry_maximum=60.0, jitter=0.0)
    q.retry("a")
    q.add_after("a", 0.01)  # earlier: replaces the 30 s retry
    q.add_after("a", 45.0)  # later: covered by the pending one
    assert q.pending_delayed == 1
    assert q.get(2.0) == "a"
    q.done("a")
    q.retry("b")
    q.add("b")
    assert q.get(0) == "b"  # taken before its retry was due: the retry is moot
    q.done("b")
    q.forget("b")
    snapshot = q.snapshot()
    assert snapshot.empty and q.pending_delayed == 0
    q.add_after("c", 10.0)
    q.add("d")
    snapshot = q.snapshot()
    assert snapshot.queued == ("d",)
    assert [key for key, _ in snapshot.delayed] == ["c"]
    assert 0 < snapshot.delayed[0][1] <= 10.0
