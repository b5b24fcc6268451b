"""Stress: thousands of concurrent hops over many live ThreadSensitiveContexts.

The normal run is small; ``pytest --stress`` runs the long one by hand. Every
wait is bounded, so a deadlock fails the test instead of hanging it.
"""

import asyncio
import itertools
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from asgiref_fast import _lanes
from asgiref_fast.sync import SyncToAsync, ThreadSensitiveContext, async_to_sync, sync_to_async

import _reliability
from _reliability import eventually, lane_threads, pool_lanes_settle

current = threading.current_thread


@pytest.fixture
def small_pool(monkeypatch):
    pool = _reliability.small_pool(monkeypatch)
    yield pool
    _reliability.retire_idle_lanes(pool)


@pytest.mark.asyncio
async def test_live_contexts_each_keep_one_thread_of_their_own(small_pool, stress):
    contexts, hops = (1000, 20) if stress else (48, 40)
    before = lane_threads()
    seen = [set() for _ in range(contexts)]
    all_live = asyncio.Barrier(contexts)

    def where(i):
        seen[i].add(current())
        return i

    async def back_on_the_loop(i):
        return await sync_to_async(where)(i)

    def hop_and_nest(i):
        # sync -> async -> sync: the inner call must come back to this thread.
        where(i)
        return async_to_sync(back_on_the_loop)(i)

    async def one_context(i):
        async with ThreadSensitiveContext():
            assert await sync_to_async(where)(i) == i
            await all_live.wait()  # every context is live and holds a lane
            calls = [
                sync_to_async(hop_and_nest if k % 5 == 0 else where)(i) for k in range(hops)
            ]
            assert await asyncio.gather(*calls) == [i] * hops

    async with asyncio.timeout(90 if stress else 30):
        await asyncio.gather(*(one_context(i) for i in range(contexts)))

    assert [len(threads) for threads in seen] == [1] * contexts
    # All were live at once, so no two may share a thread.
    assert len(set().union(*seen)) == contexts
    # Back to a bounded idle set, and none lost...
    assert await pool_lanes_settle(small_pool, before)
    # ...then the idle ones retire.
    assert await eventually(lambda: not (lane_threads() - before))


@pytest.mark.asyncio
async def test_a_burst_beyond_the_idle_bound_settles_to_it():
    # The real pool and its MAX_IDLE_LANES, not a test-sized one.
    pool = _lanes.pool()
    assert pool.max_idle == _lanes.MAX_IDLE_LANES
    await sync_to_async(int)()  # the process-wide lane, lent for good
    lent_for_good = len(lane_threads()) - pool.idle_count()
    contexts = pool.max_idle + 16
    all_live = asyncio.Barrier(contexts)

    async def one_context():
        async with ThreadSensitiveContext():
            thread = await sync_to_async(current)()
            await all_live.wait()
            return thread

    async with asyncio.timeout(30):
        threads = await asyncio.gather(*(one_context() for _ in range(contexts)))
    assert len(set(threads)) == contexts
    assert await eventually(
        lambda: pool.idle_count() == pool.max_idle
        and len(lane_threads()) <= pool.max_idle + lent_for_good
    ), (pool.idle_count(), len(lane_threads()), lent_for_good)


@pytest.mark.asyncio
async def test_context_churn_never_shares_a_live_thread(small_pool, stress):
    total, live, hops = (20_000, 128, 8) if stress else (400, 16, 6)
    before = lane_threads()
    clock = itertools.count()  # next() is atomic: orders events across threads
    hops_of = defaultdict(list)  # context -> [(tick, thread)]
    exits = {}
    default_threads = set()
    limit = asyncio.Semaphore(live)

    def where(i):
        hops_of[i].append((next(clock), current()))
        return i

    def on_default_lane(i):
        default_threads.add(current())
        return i

    async def one_context(i):
        async with limit:
            async with ThreadSensitiveContext():
                calls = [sync_to_async(where)(i) for _ in range(hops)]
                # Hops outside any context, and non-thread-sensitive ones, mixed in.
                calls.append(asyncio.create_task(_outside_context(on_default_lane, i)))
                calls.append(sync_to_async(abs, thread_sensitive=False)(-i))
                assert await asyncio.gather(*calls) == [i] * (hops + 1) + [i]
            exits[i] = next(clock)

    # Plain threads calling async_to_sync meanwhile: their nested sync calls
    # must run back on the calling thread.
    def sync_caller(n):
        async def inner():
            return await sync_to_async(current)()

        for _ in range(n):
            assert async_to_sync(inner)() is current()
        return n

    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(4)
    try:
        callers = [loop.run_in_executor(pool, sync_caller, 50 if stress else 15) for _ in range(4)]
        async with asyncio.timeout(180 if stress else 40):
            await asyncio.gather(*(one_context(i) for i in range(total)), *callers)
    finally:
        pool.shutdown(wait=False)  # never block the loop on a stuck thread

    spans = defaultdict(list)  # thread -> [(first hop, exit)] of its contexts
    for i, events in hops_of.items():
        threads = {thread for _, thread in events}
        assert len(threads) == 1, f"context {i} ran on {len(threads)} threads"
        spans[threads.pop()].append((min(tick for tick, _ in events), exits[i]))
    assert len(hops_of) == total
    for thread, intervals in spans.items():
        intervals.sort()
        for (_, exited), (started, _) in zip(intervals, intervals[1:]):
            assert exited < started, f"{thread.name} served two live contexts"
    assert len(spans) < total  # lanes were reused, so the check above had teeth
    assert len(default_threads) == 1 and not default_threads & set(spans)
    assert await pool_lanes_settle(small_pool, before)
    assert await eventually(lambda: not (lane_threads() - before))


async def _outside_context(func, *args):
    # A task of its own, out of any ThreadSensitiveContext: the process-wide lane.
    SyncToAsync.thread_sensitive_context.set(None)
    return await sync_to_async(func)(*args)
