"""Lanes: pooled worker threads lent to one context at a time."""

import threading
import time
from concurrent.futures import CancelledError

import pytest

from asgiref_fast import _lanes
from asgiref_fast._lanes import LaneExecutor


@pytest.fixture
def pool(monkeypatch):
    pool = _lanes._LanePool(max_idle=2, idle_seconds=0.2)
    monkeypatch.setattr(_lanes, "_pool", pool)
    return pool


def wait_until(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def lane_threads():
    return {t for t in threading.enumerate() if t.name.startswith("asgiref_fast-lane")}


def test_runs_in_order_on_one_thread(pool):
    executor = LaneExecutor()
    futures = [executor.submit(lambda i=i: (i, threading.current_thread())) for i in range(100)]
    results = [f.result(timeout=10) for f in futures]
    assert [i for i, _ in results] == list(range(100))
    assert len({t for _, t in results}) == 1
    executor.shutdown()


def test_shutdown_waits_for_queued_work_then_refuses_more(pool):
    executor = LaneExecutor()
    gate = threading.Event()
    ran = []
    executor.submit(gate.wait, 10)
    executor.submit(ran.append, 1)
    threading.Timer(0.05, gate.set).start()
    executor.shutdown(wait=True)
    assert ran == [1]
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(print)


def test_shutdown_can_cancel_what_has_not_started(pool):
    executor = LaneExecutor()
    gate = threading.Event()
    running = executor.submit(gate.wait, 10)
    queued = executor.submit(print)
    assert wait_until(running.running)
    gate.set()
    executor.shutdown(wait=True, cancel_futures=True)
    with pytest.raises(CancelledError):
        queued.result(timeout=10)
    assert running.result(timeout=10) is True


def test_lane_returns_to_pool_only_when_free(pool):
    first = LaneExecutor()
    gate = threading.Event()
    thread = first.submit(threading.current_thread).result(timeout=10)
    blocked = first.submit(gate.wait, 10)
    first.shutdown(wait=False)
    second = LaneExecutor()
    assert second.submit(threading.current_thread).result(timeout=10) is not thread
    gate.set()
    assert blocked.result(timeout=10) is True
    second.shutdown()
    assert wait_until(lambda: pool.idle_count() == 2)
    third = LaneExecutor()
    assert third.submit(threading.current_thread).result(timeout=10) in lane_threads()
    third.shutdown()


def test_idle_lanes_are_bounded_and_retire(pool):
    before = lane_threads()
    executors = [LaneExecutor() for _ in range(5)]
    gate = threading.Event()
    for executor in executors:
        executor.submit(gate.wait, 10)
    assert len(lane_threads() - before) == 5
    gate.set()
    for executor in executors:
        executor.shutdown()
    assert wait_until(lambda: len(lane_threads() - before) <= 2)
    assert pool.idle_count() <= 2
    # after idle_seconds, the idle ones retire too
    assert wait_until(lambda: not (lane_threads() - before))
    assert pool.idle_count() == 0


def test_forgotten_executor_hands_its_lane_back(pool):
    import gc

    executor = LaneExecutor()
    thread = executor.submit(threading.current_thread).result(timeout=10)
    del executor
    gc.collect()
    assert wait_until(lambda: pool.idle_count() == 1)
    again = LaneExecutor()
    assert again.submit(threading.current_thread).result(timeout=10) is thread
    again.shutdown()
