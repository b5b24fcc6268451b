"""sync_to_async / async_to_sync: where code runs, what it sees, and how
failures and cancellations travel."""

import asyncio
import contextvars
import functools
import gc
import inspect
import os
import sys
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

from asgiref_fast.sync import (
    AsyncSingleThreadContext,
    SyncToAsync,
    ThreadSensitiveContext,
    async_to_sync,
    iscoroutinefunction,
    sync_to_async,
)

current = threading.current_thread
var: "contextvars.ContextVar[str]" = contextvars.ContextVar("test_sync_var")


@pytest.mark.asyncio
async def test_result_and_exception_cross_the_hop():
    def add(a, b=0):
        return a + b

    assert await sync_to_async(add)(1, b=2) == 3

    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await sync_to_async(fail)()


@pytest.mark.asyncio
async def test_sync_code_runs_off_the_loop_thread():
    assert await sync_to_async(current)() is not current()
    assert await sync_to_async(current, thread_sensitive=False)() is not current()


@pytest.mark.asyncio
async def test_thread_sensitive_calls_share_the_process_thread():
    threads = {await sync_to_async(current)() for _ in range(5)}
    assert threads == {await sync_to_async(current)()}
    assert threads == {SyncToAsync.single_thread_executor.submit(current).result(timeout=10)}


@pytest.mark.asyncio
async def test_each_context_has_one_thread_of_its_own():
    async def request():
        async with ThreadSensitiveContext():
            first, second = await asyncio.gather(
                sync_to_async(current)(), sync_to_async(current)()
            )
            assert first is second
            return first

    a, b = await asyncio.gather(request(), request())
    assert a is not b
    assert current() not in (a, b)
    assert await sync_to_async(current)() not in (a, b)


@pytest.mark.asyncio
async def test_nested_contexts_share_the_outer_thread():
    async with ThreadSensitiveContext():
        outer = await sync_to_async(current)()
        async with ThreadSensitiveContext():
            assert await sync_to_async(current)() is outer


@pytest.mark.asyncio
async def test_contexts_reuse_warm_lanes():
    async def request():
        async with ThreadSensitiveContext():
            return await sync_to_async(current)()

    await request()  # warm a lane
    before = threading.active_count()
    seen = {await request() for _ in range(20)}
    assert threading.active_count() <= before
    assert len(seen) <= 2


@pytest.mark.asyncio
async def test_busy_lane_is_not_lent_to_the_next_context():
    release = threading.Event()
    started = threading.Event()

    def block():
        started.set()
        assert release.wait(10)
        return current()

    context = ThreadSensitiveContext()
    left = {}

    async def leave_work_behind():
        async with context:
            left["thread"] = await sync_to_async(current)()
            left["task"] = asyncio.create_task(sync_to_async(block)())
            await asyncio.wait_for(asyncio.to_thread(started.wait, 10), 15)

    # The exit waits for the context's work; cancelling that wait leaves the
    # lane busy with it.
    leaving = asyncio.create_task(leave_work_behind())
    try:
        async with asyncio.timeout(10):
            while "task" not in left or context.token is not None or not started.is_set():
                await asyncio.sleep(0.001)
        assert not leaving.done()  # waiting in the exit
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        async with ThreadSensitiveContext():
            assert await asyncio.wait_for(sync_to_async(current)(), 10) is not left["thread"]
    finally:
        release.set()
    assert await asyncio.wait_for(left["task"], 10) is left["thread"]


@pytest.mark.asyncio
async def test_context_with_executor():
    with ThreadPoolExecutor(max_workers=1) as executor:
        worker = executor.submit(current).result(timeout=10)
        context = ThreadSensitiveContext(executor=executor)
        async with context:
            assert await sync_to_async(current)() is worker
            with pytest.raises(RuntimeError, match="already entered"):
                await context.__aenter__()
        with pytest.raises(RuntimeError, match="cannot be entered again"):
            async with context:
                pass


@pytest.mark.asyncio
async def test_task_outliving_executor_context_is_refused():
    exited = asyncio.Event()

    async def late():
        await exited.wait()
        return await sync_to_async(current)()

    with ThreadPoolExecutor(max_workers=1) as executor:
        async with ThreadSensitiveContext(executor=executor):
            task = asyncio.create_task(late())
        exited.set()
        with pytest.raises(RuntimeError, match="has exited"):
            await asyncio.wait_for(task, 10)


@pytest.mark.asyncio
async def test_non_thread_sensitive_uses_given_or_default_executor():
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="given") as given:
        name = await sync_to_async(lambda: current().name, thread_sensitive=False, executor=given)()
        assert name.startswith("given")
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="default") as default:
        loop.set_default_executor(default)
        name = await sync_to_async(lambda: current().name, thread_sensitive=False)()
        assert name.startswith("default")


@pytest.mark.asyncio
async def test_context_variables_flow_both_ways_across_sync_to_async():
    var.set("caller")

    def work():
        seen = var.get()
        var.set("callee")
        return seen

    assert await sync_to_async(work)() == "caller"
    assert var.get() == "callee"


def test_context_variables_flow_both_ways_across_async_to_sync():
    token = var.set("caller")
    try:

        async def work():
            seen = var.get()
            var.set("callee")
            return seen

        assert async_to_sync(work)() == "caller"
        assert var.get() == "callee"
    finally:
        var.reset(token)


@pytest.mark.asyncio
async def test_many_unchanged_variables_and_one_change_come_back():
    many = [contextvars.ContextVar(f"v{i}") for i in range(100)]
    for i, v in enumerate(many):
        v.set(i)

    def work():
        many[42].set("changed")

    await sync_to_async(work)()
    assert [v.get() for v in many[40:44]] == [40, 41, "changed", 43]


@pytest.mark.asyncio
async def test_explicit_context_is_used_and_not_restored():
    context = contextvars.copy_context()
    var.set("caller")

    def work():
        var.set("inside")

    await sync_to_async(work, context=context)()
    assert var.get() == "caller"
    assert context[var] == "inside"


@pytest.mark.asyncio
async def test_exc_info_visible_inside_sync_call():
    def inspect_exc():
        return sys.exc_info()[1]

    try:
        raise ValueError("outer")
    except ValueError as exc:
        assert await sync_to_async(inspect_exc)() is exc


def test_exc_info_visible_inside_async_call():
    async def inspect_exc():
        return sys.exc_info()[1]

    try:
        raise ValueError("outer")
    except ValueError as exc:
        assert async_to_sync(inspect_exc)() is exc


@pytest.mark.asyncio
async def test_cancellation_reaches_the_child_task():
    inner_started = threading.Event()
    inner_cancelled = threading.Event()

    async def inner():
        inner_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            inner_cancelled.set()
            raise

    def sync_middle():
        async_to_sync(inner)()

    async with ThreadSensitiveContext():
        task = asyncio.create_task(sync_to_async(sync_middle)())
        await asyncio.wait_for(asyncio.to_thread(inner_started.wait, 10), 15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    assert inner_cancelled.is_set()


@pytest.mark.asyncio
async def test_cancelled_before_start_never_runs():
    ran = []
    gate = threading.Event()

    async with ThreadSensitiveContext():
        blocker = asyncio.create_task(sync_to_async(gate.wait)(10))
        victim = asyncio.create_task(sync_to_async(ran.append)(1))
        await asyncio.sleep(0)
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim  # it gives up at once, without waiting for the lane
        gate.set()
        await asyncio.wait_for(blocker, 10)
        # the context's thread is still usable, and in order
        assert await asyncio.wait_for(sync_to_async(lambda: 7)(), 10) == 7
    assert ran == []


@pytest.mark.asyncio
async def test_deadlock_is_detected():
    token = SyncToAsync.deadlock_context.set(True)
    try:
        with pytest.raises(RuntimeError, match="would deadlock"):
            await sync_to_async(current)()
    finally:
        SyncToAsync.deadlock_context.reset(token)


@pytest.mark.asyncio
async def test_sync_to_async_inside_async_to_sync_runs_on_the_outer_thread():
    async def inner():
        return await sync_to_async(current)()

    def outer():
        return current(), async_to_sync(inner)()

    outer_thread, inner_thread = await sync_to_async(outer)()
    assert outer_thread is inner_thread


def test_sync_to_async_inside_async_to_sync_from_plain_sync_code():
    async def inner():
        return await sync_to_async(current)()

    assert async_to_sync(inner)() is current()


def test_async_to_sync_refuses_a_thread_with_a_running_loop():
    async def main():
        async def noop():
            pass

        with pytest.raises(RuntimeError, match="same thread as an async event loop"):
            async_to_sync(noop)()

    asyncio.run(main())


def test_async_to_sync_needs_no_new_thread_per_call():
    async def where():
        return threading.get_ident()

    # A lane returns to the pool just after its caller sees the result, so a
    # quick next call may start a second one; never more than that.
    warm = {async_to_sync(where)() for _ in range(10)}
    before = threading.active_count()
    idents = {async_to_sync(where)() for _ in range(50)}
    assert threading.active_count() <= before
    assert len(warm | idents) <= 2


def test_async_to_sync_calls_do_not_leak_tasks_into_each_other():
    outcome = []

    async def leave_a_task_behind():
        async def background():
            try:
                await asyncio.sleep(30)
                outcome.append("survived")
            except asyncio.CancelledError:
                outcome.append("cancelled")
                raise

        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)

    async def count_tasks():
        return len(asyncio.all_tasks())

    async_to_sync(leave_a_task_behind)()
    assert outcome == ["cancelled"]
    assert async_to_sync(count_tasks)() == 1


def test_async_single_thread_context_keeps_one_thread():
    async def where():
        return current()

    with AsyncSingleThreadContext():
        first = async_to_sync(where)()
        with AsyncSingleThreadContext():
            second = async_to_sync(where)()
    assert first is second is not current()


class Counter:
    def __init__(self):
        self.count = 0

    @sync_to_async
    def bump(self, by):
        """Bump it."""
        self.count += by
        return self.count

    @async_to_sync
    async def bump_sync(self, by):
        self.count += by
        return self.count


@pytest.mark.asyncio
async def test_methods_bind():
    counter = Counter()
    assert await counter.bump(2) == 2
    assert counter.bump.__name__ == "bump"
    assert await sync_to_async(lambda: counter.bump_sync(3))() == 5


def test_wrappers_keep_metadata_and_are_marked():
    def original(x):
        """Doc."""
        return x

    wrapped = sync_to_async(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Doc."
    assert wrapped.__wrapped__ is original
    assert iscoroutinefunction(wrapped)
    assert sync_to_async(thread_sensitive=False)(original).__wrapped__ is original


def test_bad_arguments():
    async def coro():
        pass

    with pytest.raises(TypeError, match="only be applied to sync functions"):
        sync_to_async(coro)
    with pytest.raises(TypeError, match="only be applied to sync functions"):
        sync_to_async(1)
    with pytest.raises(TypeError, match="executor must not be set"):
        sync_to_async(len, executor=ThreadPoolExecutor(1))
    with pytest.warns(UserWarning, match="non-async-marked"):
        async_to_sync(len)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async_to_sync(coro)


def test_async_callables_are_told_apart_as_upstream_does():
    # Marked functions, async methods and objects with an async __call__ are
    # async; sync functions, their methods and partials of them are not.
    async def coro():
        pass

    def marked():
        pass

    if hasattr(inspect, "markcoroutinefunction"):
        inspect.markcoroutinefunction(marked)
    else:
        marked._is_coroutine = asyncio.coroutines._is_coroutine

    class Handler:
        def sync_method(self):
            pass

        async def async_method(self):
            pass

    class AsyncCallable:
        async def __call__(self):
            pass

    def decorated():
        pass

    decorated.csrf_exempt = True  # a function with attributes takes the long way

    handler = Handler()
    for func in (coro, marked, handler.async_method, AsyncCallable()):
        with pytest.raises(TypeError, match="only be applied to sync functions"):
            sync_to_async(func)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            async_to_sync(func)
    for func in (lambda: None, handler.sync_method, decorated, functools.partial(len, ""), print):
        sync_to_async(func)
        with pytest.warns(UserWarning, match="non-async-marked"):
            async_to_sync(func)


@pytest.mark.asyncio
async def test_thread_handler_override_sees_partial_child():
    seen = {}

    class Traced(SyncToAsync):
        def thread_handler(self, loop, exc_info, task_context, func, *args):
            seen["child"] = args[0]
            return super().thread_handler(loop, exc_info, task_context, func, *args)

    def work(a, b):
        return a * b

    assert await Traced(work)(6, b=7) == 42
    assert isinstance(seen["child"], functools.partial)
    assert seen["child"].func is work
    assert seen["child"].keywords == {"b": 7}


@pytest.mark.asyncio
async def test_lane_executor_behaves_as_an_executor():
    async with ThreadSensitiveContext() as context:
        thread = await sync_to_async(current)()
        executor = SyncToAsync.context_to_thread_executor[context]
        assert executor.submit(current).result(timeout=10) is thread
        future = executor.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            future.result(timeout=10)


def _fork_child_checks():
    async def inner():
        return await sync_to_async(lambda: 41)() + 1

    async def main():
        async with ThreadSensitiveContext():
            return await sync_to_async(async_to_sync(inner))()

    return asyncio.run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.asyncio
async def test_child_process_can_hop_after_fork():
    # The parent has warm lanes and a used default thread.
    assert await sync_to_async(current)() is not current()
    async with ThreadSensitiveContext():
        await sync_to_async(current)()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report and leave without running any cleanup
        try:
            ok = _fork_child_checks() == 42 and async_to_sync(asyncio.sleep)(0, "x") == "x"
            os.write(write, b"ok" if ok else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    try:
        data = await asyncio.wait_for(asyncio.to_thread(os.read, read, 16), 30)
    finally:
        os.close(read)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    assert data == b"ok"
    assert await sync_to_async(lambda: 5)() == 5


@pytest.mark.asyncio
async def test_stop_iteration_arrives_as_runtime_error_and_loses_nothing():
    # A future cannot carry StopIteration (upstream's caller waits forever
    # before 3.13); it comes back as 3.13's asyncio raises it. Calls whose
    # outcomes arrive in the same batch still get theirs.
    def stop():
        raise StopIteration("done")

    results = await asyncio.wait_for(
        asyncio.gather(
            *(sync_to_async(stop if i % 2 else (lambda i=i: i), thread_sensitive=False)() for i in range(40)),
            return_exceptions=True,
        ),
        10,
    )
    for i, result in enumerate(results):
        if i % 2:
            assert type(result) is RuntimeError
            assert type(result.__cause__) is StopIteration
            assert result.__context__ is result.__cause__
        else:
            assert result == i


def test_loops_keep_no_request_context_alive():
    # The loop's inbox is made during some request; neither its bell nor
    # the tasks async_to_sync starts through it may hold that request's
    # context.
    leak: "contextvars.ContextVar[object]" = contextvars.ContextVar("leak")

    class Payload:
        pass

    async def main():
        async def first_request():
            payload = Payload()
            leak.set(payload)
            await sync_to_async(lambda: None)()  # the loop's inbox is made here
            return weakref.ref(payload)

        ref = await asyncio.create_task(first_request())

        async def look():
            return leak.get("unset")

        def sync_part():
            return async_to_sync(look)()

        seen = await asyncio.create_task(sync_to_async(sync_part)())
        gc.collect()
        return ref() is None, seen  # checked while the loop is alive

    freed, seen = asyncio.run(asyncio.wait_for(main(), 10))
    assert seen == "unset"
    assert freed


@pytest.mark.asyncio
async def test_async_to_sync_inside_sync_to_async_honours_the_task_factory():
    # Its task starts through the loop's inbox: eagerly where Python can
    # and no factory is set, through the factory where one is.
    loop = asyncio.get_running_loop()
    made = []

    def factory(loop, coro, **kwargs):
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def where():
        return asyncio.current_task() is not None, var.get("unset")

    def sync_part():
        return async_to_sync(where)()

    var.set("caller")
    assert await sync_to_async(sync_part)() == (True, "caller")
    assert made == []
    loop.set_task_factory(factory)
    try:
        assert await sync_to_async(sync_part)() == (True, "caller")
    finally:
        loop.set_task_factory(None)
    assert len(made) == 1


def test_async_to_sync_inside_sync_to_async_takes_one_loop_pass_per_call():
    # The task starts in the pass of the loop that receives it (eagerly on
    # 3.12+, by running its first step at once on 3.11), and its outcome
    # wakes the sync thread from that same pass.
    loop = asyncio.new_event_loop()
    select = loop._selector.select
    passes = [0]

    def counting_select(timeout=None):
        passes[0] += 1
        return select(timeout)

    loop._selector.select = counting_select

    async def nothing():
        return 1

    def sync_part():
        call = async_to_sync(nothing)
        call()  # the first may find the loop busy finishing the hop's start
        before = passes[0]
        assert sum(call() for _ in range(20)) == 20
        return passes[0] - before

    async def main():
        return await asyncio.wait_for(sync_to_async(sync_part)(), 10)

    try:
        assert loop.run_until_complete(main()) <= 22
    finally:
        loop.close()
