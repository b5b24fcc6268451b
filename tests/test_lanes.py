"""Lanes: pooled worker threads lent to one context at a time."""

import threading
import time
from concurrent.futures import CancelledError

import pytest

from asgiref_fast import _lanes
from asgiref_fast._lanes import LaneExecutor


def install_pool(monkeypatch, idle_seconds):
    pool = _lanes._LanePool(max_idle=2, idle_seconds=idle_seconds)
    monkeypatch.setattr(_lanes, "_pool", pool)
    return pool


@pytest.fixture
def pool(monkeypatch):
    # Its lanes do not retire during a test: what a test waits to see in the
    # pool stays there, however late (on a busy machine) it looks.
    pool = install_pool(monkeypatch, idle_seconds=600)
    yield pool
    while pool.idle_count():
        pool._idle.pop().queue.close()


@pytest.fixture
def short_lived_pool(monkeypatch):
    # Lanes retire once idle in the pool for 0.2 s.
    return install_pool(monkeypatch, idle_seconds=0.2)


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


def test_idle_lanes_are_bounded_and_retire(short_lived_pool):
    pool = short_lived_pool
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


@pytest.mark.timeout(60)
def test_idle_time_counts_from_when_the_lane_is_parked(monkeypatch):
    parked, retired = [], []

    class Pool(_lanes._LanePool):
        def park(self, lane):
            parked.append(time.monotonic())
            super().park(lane)

        def retire(self, lane):
            left = super().retire(lane)
            if not left:
                retired.append(time.monotonic())
            return left

    pool = Pool(max_idle=2, idle_seconds=0.5)
    monkeypatch.setattr(_lanes, "_pool", pool)
    executor = LaneExecutor()
    thread = executor.submit(threading.current_thread).result(timeout=10)
    # Lent, with nothing to do, for most of idle_seconds; then parked.
    time.sleep(0.45)
    executor.shutdown()
    assert wait_until(lambda: not thread.is_alive(), 30)
    # A lower bound only: however late anything runs, it holds.
    assert retired[0] - parked[0] >= pool.idle_seconds
