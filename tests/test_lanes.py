"""Lanes: pooled worker threads lent to one context at a time."""

import threading
import time
from concurrent.futures import CancelledError

import pytest

from asgiref_fast import _lanes
from asgiref_fast._lanes import LaneExecutor

from _reliability import lane_threads, wait_until


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


def test_runs_in_order_on_one_thread(pool):
    executor = LaneExecutor()
    futures = [executor.submit(lambda i=i: (i, threading.current_thread())) for i in range(100)]
    results = [f.result(timeout=10) for f in futures]
    assert [i for i, _ in results] == list(range(100))
    assert len({t for _, t in results}) == 1
    executor.shutdown()


def test_pushed_calls_run_in_order_with_submitted_work(pool):
    # push(): the call reports its own outcome (what sync_to_async sends).
    executor = LaneExecutor()
    seen = []
    for i in range(10):
        executor.push(lambda i=i: seen.append((i, threading.current_thread())))
    last = executor.submit(threading.current_thread)
    assert last.result(timeout=10) is not threading.current_thread()
    assert [i for i, _ in seen] == list(range(10))
    assert {t for _, t in seen} == {last.result()}
    executor.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.push(print)


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
    # The running call is let go only once the queued one is cancelled: let
    # go first, the lane could start the queued one before shutdown cancels
    # it (seen on free-threaded 3.13).
    stopping = threading.Thread(target=executor.shutdown, kwargs={"wait": True, "cancel_futures": True})
    stopping.start()
    try:
        assert wait_until(queued.cancelled)
        assert stopping.is_alive()  # waiting for the running call
    finally:
        gate.set()
        stopping.join(10)
    assert not stopping.is_alive()
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


# Not strict: whether a run shows the bug depends on how often contexts
# overlap, which timing decides (on free-threaded 3.13 some runs pass by
# luck, and a strict XPASS failed the suite). Once fixed, drop the mark.
@pytest.mark.xfail(strict=False, reason="issue 19 item 2, not fixed yet: a client's next context takes a new "
                   "lane while its last one still runs its final hop")
@pytest.mark.timeout(120)
def test_lanes_track_the_concurrency_of_clients(monkeypatch):
    # C clients, each sending its next request as soon as it has the
    # response to the last, as an HTTP client does. Like Django's, each
    # request sends its response before its last hop (response.close()),
    # so a client's next context starts while its last one still holds its
    # lane: lanes must still track the C clients, not the 2C contexts that
    # overlap, or the pool grows (and with it what lanes hold: database
    # connections).
    import asyncio

    from asgiref_fast.sync import ThreadSensitiveContext, sync_to_async

    pool = _lanes._LanePool(max_idle=64, idle_seconds=600)
    monkeypatch.setattr(_lanes, "_pool", pool)
    clients, requests = 8, 200
    seen = set()

    def step():
        seen.add(threading.get_ident())

    async def request(responded):
        async with ThreadSensitiveContext():
            for _ in range(3):
                await sync_to_async(step)()
            responded.set_result(None)
            await sync_to_async(step)()

    async def client():
        loop = asyncio.get_running_loop()
        tasks = []
        for _ in range(requests):
            responded = loop.create_future()
            tasks.append(loop.create_task(request(responded)))
            await responded
        await asyncio.gather(*tasks)

    async def main():
        await asyncio.gather(*(client() for _ in range(clients)))

    try:
        asyncio.run(main())
        assert len(seen) <= clients + 2, f"{len(seen)} lanes for {clients} clients"
    finally:
        assert wait_until(lambda: pool.idle_count() == len(seen))
        pool.retire_idle(30)


def test_exit_hooks_run_on_the_lane_thread_as_it_retires(short_lived_pool, monkeypatch):
    ran = []
    unraisable = []
    monkeypatch.setattr(_lanes, "_exit_hooks", [])
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)

    @_lanes.at_lane_exit
    def first():
        ran.append(("first", threading.current_thread()))

    @_lanes.at_lane_exit
    def failing():
        ran.append(("failing", threading.current_thread()))
        raise ValueError("boom")

    executor = LaneExecutor()
    thread = executor.submit(threading.current_thread).result(timeout=10)
    executor.shutdown()
    assert wait_until(lambda: not thread.is_alive(), 30)
    # Last registered first; one failing does not stop the others. (Lanes
    # of earlier tests may be retiring too: only this one's count.)
    assert [name for name, t in ran if t is thread] == ["failing", "first"]
    assert unraisable and all(u.object is failing and type(u.exc_value) is ValueError for u in unraisable)


def test_exit_hooks_run_for_a_lane_beyond_the_idle_bound(pool, monkeypatch):
    ran = []
    monkeypatch.setattr(_lanes, "_exit_hooks", [])
    _lanes.at_lane_exit(lambda: ran.append(threading.current_thread()))
    executors = [LaneExecutor() for _ in range(3)]
    gate = threading.Event()
    threads = [e.submit(lambda: (gate.wait(10), threading.current_thread())[1]) for e in executors]
    gate.set()
    threads = [f.result(timeout=10) for f in threads]
    for executor in executors:
        executor.shutdown()
    ours = lambda: [t for t in ran if t in threads]  # lanes of earlier tests may retire too
    # max_idle is 2: the third lane handed back retires at once.
    assert wait_until(lambda: len(ours()) == 1)
    assert pool.idle_count() == 2
    pool.retire_idle(30)
    assert sorted(map(id, ours())) == sorted(map(id, threads))
    assert not any(t.is_alive() for t in threads)


@pytest.mark.timeout(120)
def test_exit_hooks_run_on_idle_lanes_as_the_interpreter_exits():
    import subprocess
    import sys

    code = (
        "import threading\n"
        "from asgiref_fast import _lanes\n"
        "from asgiref_fast._lanes import LaneExecutor\n"
        "_lanes.at_lane_exit(lambda: print('hook', threading.current_thread().name, flush=True))\n"
        "e = LaneExecutor()\n"
        "print('lane', e.submit(lambda: threading.current_thread().name).result(10), flush=True)\n"
        "e.shutdown()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == "lane" and lines[2:] == ["hook", lines[1]], out.stdout
