"""Leaks: a long steady loop of requests (contexts, hops, nested bridges,
Local churn) keeps memory flat, and calls leave nothing for the cyclic GC.

Memory is read three ways: allocated Python blocks (exact, catches one object
per call), RSS from /proc/self/statm (catches C-level leaks), and the cyclic
GC's haul under DEBUG_SAVEALL. The compiled twins also run under valgrind:
see .ci/valgrind.
"""

import asyncio
import contextvars
import gc
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from asgiref_fast.local import Local
from asgiref_fast.sync import SyncToAsync, ThreadSensitiveContext, async_to_sync, sync_to_async
from asgiref_fast.wsgi import WsgiToAsgi

from _reliability import Garbage, eventually, rss_bytes

SHARED = Local()
CRITICAL = Local(thread_critical=True)


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode()]


APP = WsgiToAsgi(hello)
SCOPE = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/x",
         "query_string": b"", "headers": [(b"host", b"example.com")]}


async def one_request(i, pool):
    """Roughly what a Django request does, plus Local churn."""
    churn = Local()  # made and dropped per request
    churn.value = i
    SHARED.request = i
    CRITICAL.request = i

    async def back_on_the_loop():
        return SHARED.request

    def view():
        assert SHARED.request == i and churn.value == i
        SHARED.seen = i
        return async_to_sync(back_on_the_loop)()

    async with ThreadSensitiveContext():
        assert await sync_to_async(view)() == i
        assert await sync_to_async(lambda: SHARED.seen)() == i
    assert await sync_to_async(abs, thread_sensitive=False)(-i) == i
    del churn.value
    if i % 10 == 0:
        sent = []

        async def receive():
            return {"type": "http.request"}

        async def send(message):
            sent.append(message)

        await APP(SCOPE, receive, send)
        assert sent[1]["body"] == b"/x"

        async def from_a_plain_thread():
            return await sync_to_async(lambda: i)()

        caller = async_to_sync(from_a_plain_thread)
        assert await asyncio.get_running_loop().run_in_executor(pool, caller) == i


async def requests(n, pool):
    for i in range(n):
        # Each request is a task of its own, as under an ASGI server (since
        # Python 3.12, wait_for no longer makes one).
        await asyncio.wait_for(asyncio.create_task(one_request(i, pool)), 10)


def settled_memory():
    gc.collect()
    return sys.getallocatedblocks(), rss_bytes()


@pytest.mark.asyncio
async def test_steady_request_loop_keeps_memory_flat(stress):
    per_round = 20_000 if stress else 600
    # One thread per pool: pools that grow on demand would look like a leak.
    pool = ThreadPoolExecutor(1)
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
    try:
        await requests(per_round, pool)  # warm up: caches, pools, lanes
        threads = threading.active_count()
        samples = [settled_memory()]
        for _ in range(4):
            await requests(per_round, pool)
            samples.append(settled_memory())
    finally:
        pool.shutdown(wait=False)
    print(f"\nblocks {[b for b, _ in samples]}, RSS KiB {[r >> 10 for _, r in samples]}")
    blocks = [b2 - b1 for (b1, _), (b2, _) in zip(samples, samples[1:])]
    rss = [r2 - r1 for (_, r1), (_, r2) in zip(samples, samples[1:])]
    # A leak grows every round; a one-off step (a lane started because the
    # last one was still parking) does not. Less than one object per ten
    # requests, and less than 64 bytes a request.
    assert min(blocks) < per_round // 10, samples
    assert min(rss) < per_round * 64, samples
    assert samples[-1][0] - samples[0][0] < per_round, samples
    # A lane handed back while finishing its last delivery parks a moment
    # later; a request starting in that moment takes a fresh one, which then
    # waits idle in the pool. Two of those at most, never one per request.
    assert await eventually(lambda: threading.active_count() <= threads + 2)


# --- no garbage for the cyclic GC -----------------------------------------------


async def hop():
    await sync_to_async(int)()


async def hop_in_a_context():
    async with ThreadSensitiveContext():
        await sync_to_async(int)()
        await sync_to_async(int)()


async def non_thread_sensitive_hop():
    await sync_to_async(int, thread_sensitive=False)()


async def async_inside_sync():
    async def inner():
        return 1

    await sync_to_async(lambda: async_to_sync(inner)())()


async def sync_inside_async_from_a_thread():
    async def inner():
        return await sync_to_async(int)()

    await asyncio.get_running_loop().run_in_executor(None, async_to_sync(inner))


async def local_use():
    SHARED.x = 1
    assert SHARED.x == 1
    del SHARED.x
    CRITICAL.x = 1
    del CRITICAL.x


async def local_made_and_dropped():
    await asyncio.create_task(_use_a_new_local())


async def _use_a_new_local():
    local = Local()
    local.x = 1
    await sync_to_async(lambda: local.x)()


async def executor_interface():
    SyncToAsync.single_thread_executor.submit(int).result(timeout=10)


async def wsgi_request():
    async def receive():
        return {"type": "http.request"}

    async def send(message):
        pass

    await APP(SCOPE, receive, send)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "call",
    [hop, hop_in_a_context, non_thread_sensitive_hop, async_inside_sync,
     sync_inside_async_from_a_thread, local_use, local_made_and_dropped,
     executor_interface, wsgi_request],
)
async def test_calls_leave_no_garbage(call):
    await call()  # warm up
    with Garbage() as garbage:
        for _ in range(100):
            await asyncio.wait_for(call(), 10)
    assert garbage.count == 0, garbage.sample


def fail():
    raise KeyError("failed")


async def failing_hop():
    with pytest.raises(KeyError):
        await sync_to_async(fail)()


async def failing_non_thread_sensitive_hop():
    # Through the loop's default executor, a thread pool: its work item must
    # not keep the failure in a cycle.
    with pytest.raises(KeyError):
        await sync_to_async(fail, thread_sensitive=False)()


class _OwnSubmit(ThreadPoolExecutor):
    def submit(self, fn, *args, **kwargs):  # gets what run_in_executor would give
        return super().submit(fn, *args, **kwargs)


_POOLS = {"plain": ThreadPoolExecutor(1), "own submit": _OwnSubmit(1)}


async def failing_hop_on_a_thread_pool():
    with pytest.raises(KeyError):
        await sync_to_async(fail, thread_sensitive=False, executor=_POOLS["plain"])()


async def failing_hop_on_an_executor_with_its_own_submit():
    with pytest.raises(KeyError):
        await sync_to_async(fail, thread_sensitive=False, executor=_POOLS["own submit"])()


async def failing_async_inside_sync():
    async def inner():
        raise KeyError("failed")

    def sync_side():
        with pytest.raises(KeyError):
            async_to_sync(inner)()

    await sync_to_async(sync_side)()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "call",
    [failing_hop, failing_non_thread_sensitive_hop, failing_hop_on_a_thread_pool,
     failing_hop_on_an_executor_with_its_own_submit, failing_async_inside_sync],
)
async def test_failed_calls_leave_no_garbage(call):
    await call()
    with Garbage() as garbage:
        for _ in range(20):
            await asyncio.wait_for(call(), 10)
    assert garbage.count == 0, garbage.sample


# --- Local churn in one long-lived context ---------------------------------------


@pytest.mark.asyncio
@pytest.mark.xfail(
    strict=True,
    reason="core: each Local keeps a ContextVar; once used in a context, that "
    "context holds the variable and its last storage forever, even after "
    "the Local is gone and its attributes deleted. Same in asgiref 3.13.0. "
    "Harmless for per-request contexts, but a long-lived one (the main "
    "thread's, a long task) grows with every Local made in it.",
)
async def test_locals_made_in_a_long_lived_context_do_not_accumulate():
    def churn(n):
        for _ in range(n):
            local = Local()
            local.x = 1
            del local.x

    churn(1000)
    before = settled_memory()[0]
    churn(5000)
    assert settled_memory()[0] - before < 500


@pytest.mark.asyncio
@pytest.mark.xfail(
    strict=True,
    reason="core: restoring the context after a hop walks every variable of "
    "it when the sync code changed anything, so a hop costs O(variables in "
    "the context): ~25 ms with 30000 of them. DESIGN.md: 'Its cost should "
    "not grow with the number of variables ... the sync code did not change.'",
)
async def test_hop_cost_does_not_grow_with_unrelated_context_variables():
    changed = contextvars.ContextVar("changed")

    def change():
        changed.set(object())

    async def cost():
        for _ in range(5):
            await sync_to_async(change)()
        started = time.perf_counter()
        for _ in range(50):
            await sync_to_async(change)()
        return time.perf_counter() - started

    async def in_a_crowded_context():
        for n in range(30_000):
            contextvars.ContextVar(f"unrelated {n}").set(n)
        return await cost()

    plain = await cost()
    crowded = await asyncio.create_task(in_a_crowded_context())
    assert crowded < plain * 5, (plain, crowded)


def test_the_garbage_probe_counts_cycles_and_only_cycles():
    # The probe the tests above rely on can fail: a cycle counts, on every
    # build. Objects dropped by another thread than the one that made them
    # count only where there is a GIL (elsewhere, see _reliability.FREE_THREADED).
    class Node:
        pass

    made, ready, done = [], threading.Event(), threading.Event()

    def maker():
        made.extend(Node() for _ in range(10))
        ready.set()
        done.wait(10)

    with Garbage() as garbage:
        node = Node()
        node.me = node
        del node
    assert garbage.count == 1, garbage.sample
    thread = threading.Thread(target=maker)
    with Garbage() as garbage:
        thread.start()
        assert ready.wait(10)
        del made[:]  # here, by this thread, while their maker lives on
    done.set()
    thread.join(10)
    assert garbage.count == 0, garbage.sample
