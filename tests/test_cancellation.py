"""Cancellation under load: cancelling in-flight hops, and whole contexts,
never loses a lane, never hands a cancelled call's result to anyone else,
never leaves a context's thread blocked, and later calls still work."""

import asyncio
import random
import threading

import pytest

from asgiref_fast.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

import _reliability
from _reliability import lane_threads, pool_lanes_settle

current = threading.current_thread
GATE_SECONDS = 10  # a gate that is never opened fails the test, not hangs it


@pytest.fixture
def small_pool(monkeypatch):
    pool = _reliability.small_pool(monkeypatch)
    yield pool
    _reliability.retire_idle_lanes(pool)


async def until(predicate, seconds=10):
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.001)


@pytest.mark.asyncio
async def test_cancelled_hops_never_run_or_leak_their_result(small_pool, stress):
    contexts, queued = (200, 40) if stress else (24, 30)
    rng = random.Random(7)
    before = lane_threads()

    async def one_context(c):
        gate, started = threading.Event(), threading.Event()
        ran = []

        def blocker():
            started.set()
            assert gate.wait(GATE_SECONDS)
            ran.append("blocker")
            return "blocker"

        def work(token):
            ran.append(token)
            return token

        async with ThreadSensitiveContext():
            thread = await sync_to_async(current)()
            tasks = {"blocker": asyncio.create_task(sync_to_async(blocker)())}
            tasks.update(
                ((c, k), asyncio.create_task(sync_to_async(work)((c, k)))) for k in range(queued)
            )
            await until(started.is_set)  # the lane is busy; every other call is queued
            cancelled = {token for token in tasks if rng.random() < 0.5}
            for token in cancelled:
                tasks[token].cancel()
            await asyncio.sleep(0)
            gate.set()
            async with asyncio.timeout(GATE_SECONDS):
                outcomes = await asyncio.gather(*tasks.values(), return_exceptions=True)
            for token, outcome in zip(tasks, outcomes):
                if token in cancelled:
                    assert isinstance(outcome, asyncio.CancelledError)
                else:
                    assert outcome == token  # its own result, nobody else's
            # Only the call already running when cancelled may have run.
            kept = [t for t in tasks if t not in cancelled and t != "blocker"]
            assert [t for t in ran if t != "blocker"] == kept
            assert ran[0] == "blocker"
            # The context's thread is free, and still its thread.
            assert await asyncio.wait_for(sync_to_async(current)(), GATE_SECONDS) is thread
            return len(cancelled)

    async with asyncio.timeout(60):
        counts = await asyncio.gather(*(one_context(c) for c in range(contexts)))
    assert sum(counts) > contexts * queued // 4  # plenty were cancelled
    assert await pool_lanes_settle(small_pool, before)


@pytest.mark.asyncio
async def test_cancelled_contexts_return_their_lanes_once_free(small_pool, stress):
    contexts = 100 if stress else 12
    before = lane_threads()
    gate = threading.Event()
    started, ran_after_cancel = [], []
    lanes = {}

    def blocker(c):
        started.append(c)
        assert gate.wait(GATE_SECONDS)

    entered = {}

    async def doomed(c):
        async with ThreadSensitiveContext() as entered[c]:
            lanes[c] = await sync_to_async(current)()
            queued = [sync_to_async(ran_after_cancel.append)(c) for _ in range(5)]
            await asyncio.gather(sync_to_async(blocker)(c), *queued)

    async def fresh():
        async with ThreadSensitiveContext():
            return await sync_to_async(current)()

    tasks = [asyncio.create_task(doomed(c)) for c in range(contexts)]
    try:
        await until(lambda: len(started) == contexts)
        for task in tasks:
            task.cancel()
        # Each exit waits for its context's blocked sync code, as upstream's
        # does; cancelling that wait too ends the task...
        await until(lambda: all(context.token is None for context in entered.values()))
        for task in tasks:
            task.cancel()
        async with asyncio.timeout(5):
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
        # ...and a lane still running an exited context's call is not lent out.
        async with asyncio.timeout(GATE_SECONDS):
            newcomers = await asyncio.gather(*(fresh() for _ in range(contexts)))
        assert not set(newcomers) & set(lanes.values())
    finally:
        gate.set()
    assert ran_after_cancel == []  # queued calls of cancelled contexts never ran
    assert await pool_lanes_settle(small_pool, before)
    # Parked lanes serve new contexts again.
    async with asyncio.timeout(GATE_SECONDS):
        reused = await asyncio.gather(*(fresh() for _ in range(small_pool.max_idle)))
    assert set(reused) <= lane_threads()
    assert await pool_lanes_settle(small_pool, before)


@pytest.mark.asyncio
async def test_cancellation_reaches_async_code_called_from_the_hop(small_pool, stress):
    contexts = 100 if stress else 16
    before = lane_threads()
    waiting, outcomes_in_sync = [], []

    async def wait_forever(c):
        waiting.append(c)
        await asyncio.sleep(GATE_SECONDS)  # cancelled long before

    def sync_then_async(c):
        try:
            async_to_sync(wait_forever)(c)
        except asyncio.CancelledError:
            outcomes_in_sync.append(c)
            raise

    async def one_context(c):
        async with ThreadSensitiveContext():
            thread = await sync_to_async(current)()
            task = asyncio.create_task(sync_to_async(sync_then_async)(c))
            await until(lambda: c in waiting)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
            # The sync code saw the cancellation and let go of the thread.
            assert await asyncio.wait_for(sync_to_async(current)(), 5) is thread

    async with asyncio.timeout(30):
        await asyncio.gather(*(one_context(c) for c in range(contexts)))
    assert sorted(outcomes_in_sync) == list(range(contexts))
    assert await pool_lanes_settle(small_pool, before)


@pytest.mark.asyncio
async def test_cancellation_at_random_points_of_the_hop(small_pool, stress):
    # Cancel at every stage: queued, running, finished but not yet delivered,
    # delivered. Each task gets its own result or CancelledError, nothing else.
    contexts, hops = (200, 50) if stress else (20, 40)
    rng = random.Random(11)
    before = lane_threads()
    totals = {"cancelled": 0, "completed": 0}

    def work(token):
        return token

    async def cancel_later(task, ticks):
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()

    async def one_context(c):
        async with ThreadSensitiveContext():
            thread = await sync_to_async(current)()
            tokens = [(c, k) for k in range(hops)]
            tasks = [
                asyncio.create_task(
                    sync_to_async(work, thread_sensitive=k % 4 != 0)((c, k))
                )
                for k in range(hops)
            ]
            killers = [cancel_later(t, rng.randrange(6)) for t in tasks if rng.random() < 0.6]
            async with asyncio.timeout(10):
                await asyncio.gather(*killers)
                outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            for token, outcome in zip(tokens, outcomes):
                if isinstance(outcome, asyncio.CancelledError):
                    totals["cancelled"] += 1
                else:
                    assert outcome == token
                    totals["completed"] += 1
            assert await asyncio.wait_for(sync_to_async(current)(), 5) is thread

    async with asyncio.timeout(60):
        await asyncio.gather(*(one_context(c) for c in range(contexts)))
    assert totals["cancelled"] and totals["completed"]
    assert await pool_lanes_settle(small_pool, before)
