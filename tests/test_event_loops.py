"""The bridges on both event loops people run: asyncio's own and uvloop."""

import asyncio
import contextvars
import functools
import threading

import pytest

from asgiref_fast._lanes import LaneExecutor
from asgiref_fast.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a test dependency
    uvloop = None

LOOPS = [pytest.param(asyncio.new_event_loop, id="asyncio")]
LOOPS.append(pytest.param(
    uvloop.new_event_loop if uvloop else None, id="uvloop",
    marks=pytest.mark.skipif(uvloop is None, reason="uvloop not installed"),
))

var: "contextvars.ContextVar[int]" = contextvars.ContextVar("loops_var", default=0)


def run(loop_factory, coro_fn):
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(asyncio.wait_for(coro_fn(), 30))


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_hops_contexts_and_nesting(loop_factory):
    async def inner():
        return await sync_to_async(threading.get_ident)()

    def sync_middle():
        var.set(var.get() + 1)
        return threading.get_ident(), async_to_sync(inner)()

    async def main():
        async with ThreadSensitiveContext():
            outer, nested = await sync_to_async(sync_middle)()
            again = await sync_to_async(threading.get_ident)()
        return outer, nested, again, var.get()

    outer, nested, again, value = run(loop_factory, main)
    assert outer == nested == again != threading.get_ident()
    assert value == 1


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_many_gathered_hops_all_complete(loop_factory):
    async def main():
        hop = sync_to_async(lambda i: i * 2, thread_sensitive=False)
        return await asyncio.gather(*(hop(i) for i in range(2000)))

    assert run(loop_factory, main) == [i * 2 for i in range(2000)]


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_cancellation_on_either_loop(loop_factory):
    started = threading.Event()
    release = threading.Event()

    async def main():
        async with ThreadSensitiveContext():
            task = asyncio.create_task(sync_to_async(lambda: (started.set(), release.wait(10)))())
            await asyncio.to_thread(started.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
            return await sync_to_async(lambda: "still works")()

    assert run(loop_factory, main) == "still works"


@pytest.mark.skipif(uvloop is None, reason="uvloop not installed")
def test_async_to_sync_from_sync_code_under_uvloop_policy():
    async def which_loop():
        return type(asyncio.get_running_loop()).__module__

    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        assert async_to_sync(which_loop)().startswith("uvloop")
        assert async_to_sync(which_loop)().startswith("uvloop")
    finally:
        asyncio.set_event_loop_policy(old)


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_only_a_stock_run_in_executor_is_bypassed(loop_factory, monkeypatch):
    # asyncio's and uvloop's own run_in_executor is skipped (the hop goes
    # straight to the lane, no Executor.submit); one patched onto the loop
    # (instrumentation does that) gets the call, as upstream's loops do.
    submitted = []
    submit = LaneExecutor.submit

    def counting_submit(self, fn, /, *args, **kwargs):
        submitted.append(fn)
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(LaneExecutor, "submit", counting_submit)

    async def main():
        async with ThreadSensitiveContext():
            await sync_to_async(threading.get_ident)()
        await sync_to_async(threading.get_ident)()
        stock = len(submitted)
        loop = asyncio.get_running_loop()
        loop.run_in_executor = functools.partial(type(loop).run_in_executor, loop)
        async with ThreadSensitiveContext():
            await sync_to_async(threading.get_ident)()
        await sync_to_async(threading.get_ident)()
        return stock, len(submitted)

    assert run(loop_factory, main) == (0, 2)
