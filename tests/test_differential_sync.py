"""Differential tests of sync.py (see differential.py): a ThreadSensitiveContext's
exit with work still pending, event loops with a run_in_executor of their
own, and what a failure's traceback shows. Each scenario runs under upstream
asgiref 3.13.0 and under this run's twin, in fresh interpreters."""


import pytest

import differential
from differential import upstream_available

pytestmark = [
    pytest.mark.skipif(not upstream_available(), reason="upstream asgiref is not installed"),
    pytest.mark.timeout(180),
]


compare = differential.compare_sound


# -- A ThreadSensitiveContext's exit waits for the work submitted in it ---------

# `exiting` is set as the block ends; the releaser lets the blocked sync work go
# only once the loop runs again, that is once the exit waits without blocking it.
EXIT = """
import asyncio, threading
from concurrent.futures import ThreadPoolExecutor
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

log = []
started, release = threading.Event(), threading.Event()

def blocked(name="work"):
    started.set()
    if not release.wait(10):
        log.append("timed out")
    log.append(name + " done")
    return thread_label()

def start_releaser():
    exiting = asyncio.Event()

    async def releaser():
        await exiting.wait()
        log.append("the loop runs during the exit")
        release.set()

    return exiting, asyncio.create_task(releaser())
"""


def test_exit_waits_for_running_work_without_blocking_the_loop():
    upstream, ours = compare(EXIT, """
        async def on_the_loop():
            log.append("async step on the loop")

        def work():
            blocked()
            async_to_sync(on_the_loop)()  # needs the loop the exit is on
            log.append("sync work done")
            return thread_label()

        async def main():
            exiting, releaser = start_releaser()
            async with ThreadSensitiveContext():
                record("context thread", await sync_to_async(thread_label)())
                task = asyncio.create_task(sync_to_async(work)())
                await asyncio.to_thread(started.wait, 10)
                exiting.set()
            log.append("context exited")
            record("work thread", await outcome(task))
            await releaser
            record("log", log)

        asyncio.run(main())
    """)
    assert ours == upstream
    assert upstream["log"][-2:] == ["sync work done", "context exited"]


def test_exit_waits_for_queued_work_and_the_body_error_comes_through():
    upstream, ours = compare(EXIT, """
        async def main():
            exiting, releaser = start_releaser()
            try:
                async with ThreadSensitiveContext():
                    first = asyncio.create_task(sync_to_async(blocked)("first"))
                    second = asyncio.create_task(sync_to_async(log.append)("second done"))
                    await asyncio.to_thread(started.wait, 10)
                    exiting.set()
                    raise KeyError("body")
            except KeyError as exc:
                log.append("context exited with " + repr(exc))
            record("threads", [await outcome(first), await outcome(second)])
            await releaser
            record("log", log)

        asyncio.run(main())
    """)
    assert ours == upstream
    assert upstream["log"][-3:] == ["first done", "second done", "context exited with KeyError('body')"]


def test_exit_waits_for_failing_work_and_skips_cancelled_calls():
    upstream, ours = compare(EXIT, """
        def fail():
            blocked("failing")
            raise ValueError("sync failure")

        async def main():
            exiting, releaser = start_releaser()
            async with ThreadSensitiveContext():
                failing = asyncio.create_task(sync_to_async(fail)())
                skipped = asyncio.create_task(sync_to_async(log.append)("cancelled call ran"))
                last = asyncio.create_task(sync_to_async(log.append)("last done"))
                await asyncio.to_thread(started.wait, 10)
                skipped.cancel()
                cancelled = await outcome(skipped)  # before the queue moves on
                exiting.set()
            log.append("context exited")
            record("outcomes", [await outcome(failing), cancelled, await outcome(last)])
            await releaser
            record("log", log)

        asyncio.run(main())
    """)
    assert ours == upstream
    assert upstream["log"][-3:] == ["failing done", "last done", "context exited"]


def test_exit_waits_for_work_whose_caller_was_cancelled():
    upstream, ours = compare(EXIT, """
        async def main():
            exiting, releaser = start_releaser()
            async with ThreadSensitiveContext():
                caller = asyncio.create_task(sync_to_async(blocked)())
                await asyncio.to_thread(started.wait, 10)
                caller.cancel()
                record("caller", await outcome(caller))
                exiting.set()
            log.append("context exited")
            await releaser
            record("log", log)

        asyncio.run(main())
    """)
    assert ours == upstream
    assert upstream["log"][-2:] == ["work done", "context exited"]


def test_only_the_outermost_context_waits_and_an_executor_context_never_does():
    upstream, ours = compare(EXIT, """
        async def main():
            exiting, releaser = start_releaser()
            with ThreadPoolExecutor(max_workers=1) as pool:
                async with ThreadSensitiveContext():
                    outer = await sync_to_async(thread_label)()
                    async with ThreadSensitiveContext():  # no context of its own
                        task = asyncio.create_task(sync_to_async(blocked)("inner"))
                        await asyncio.to_thread(started.wait, 10)
                    log.append("inner exited")
                    pool_gate = threading.Event()
                    async with ThreadSensitiveContext(executor=pool):
                        pooled = asyncio.create_task(sync_to_async(pool_gate.wait)(10))
                        await asyncio.sleep(0)
                    log.append("executor context exited")
                    pool_gate.set()
                    exiting.set()
                log.append("outer exited")
                record("threads", [outer, await outcome(task), await outcome(pooled)])
            await releaser
            record("log", log)

        asyncio.run(main())
    """)
    assert ours == upstream
    assert upstream["log"].index("inner done") < upstream["log"].index("outer exited")


def test_exit_waits_for_an_executor_put_in_the_registry_and_shuts_it_down():
    upstream, ours = compare(EXIT, """
        from asgiref.sync import SyncToAsync

        async def main():
            exiting, releaser = start_releaser()
            pool = ThreadPoolExecutor(max_workers=1)
            async with ThreadSensitiveContext() as context:
                SyncToAsync.context_to_thread_executor[context] = pool  # as some tests do
                task = asyncio.create_task(sync_to_async(blocked)())
                await asyncio.to_thread(started.wait, 10)
                exiting.set()
            log.append("context exited")
            record("work thread", await outcome(task))
            try:
                pool.submit(print)
            except RuntimeError as exc:
                record("pool afterwards", str(exc))
            await releaser
            record("log", log)

        asyncio.run(main())
    """)
    assert ours == upstream
    assert upstream["log"][-2:] == ["work done", "context exited"]


def test_cancelling_the_exit_leaves_the_work_running_on_its_own_thread():
    upstream, ours = compare(EXIT, """
        async def main():
            context = ThreadSensitiveContext()
            threads = {}

            async def leave():
                async with context:
                    threads["context"] = await sync_to_async(thread_label)()
                    threads["task"] = asyncio.create_task(sync_to_async(blocked)())
                    await asyncio.to_thread(started.wait, 10)

            leaving = asyncio.create_task(leave())
            for _ in range(10000):  # until the exit has begun
                if "task" in threads and context.token is None:
                    break
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)
            record("exit still waiting", not leaving.done())
            leaving.cancel()
            record("exit", await outcome(leaving))
            async with ThreadSensitiveContext():  # not on the busy thread
                threads["next context"] = await sync_to_async(thread_label)()
            release.set()
            threads["work"] = await outcome(threads.pop("task"))
            record("threads", threads)
            record("log", log)

        asyncio.run(main())
    """)
    assert ours == upstream
    assert upstream["exit"] == "CancelledError"


def test_exit_while_asyncio_run_cancels_the_task():
    upstream, ours = compare(EXIT, """
        import time
        context = ThreadSensitiveContext()

        async def background():
            try:
                async with context:
                    await sync_to_async(blocked)()
            finally:
                log.append("background ended")

        def releaser():  # once the cancelled task is in the exit
            deadline = time.monotonic() + 10
            while context.token is None and time.monotonic() < deadline:
                time.sleep(0.001)
            while context.token is not None and time.monotonic() < deadline:
                time.sleep(0.001)
            release.set()

        async def main():
            global task
            task = asyncio.create_task(background())
            await asyncio.to_thread(started.wait, 10)
            threading.Thread(target=releaser, daemon=True).start()
            # main returns; asyncio.run cancels the background task

        asyncio.run(main())
        record("log", log)
        record("task", "cancelled" if task.cancelled() else repr(task.exception()))
    """)
    assert ours == upstream
    assert upstream["log"] == ["work done", "background ended"]


def test_calls_made_after_the_exit_are_not_waited_for_and_run_elsewhere():
    upstream, ours = compare("""
        import asyncio
        from asgiref.sync import ThreadSensitiveContext, sync_to_async

        log = []

        async def main():
            gate = asyncio.Event()

            async def late():
                await gate.wait()
                return await sync_to_async(thread_label)()

            async with ThreadSensitiveContext():
                context_thread = await sync_to_async(thread_label)()
                task = asyncio.create_task(late())
            log.append("context exited")
            gate.set()
            record("threads", [context_thread, await asyncio.wait_for(task, 15)])
            record("log", log)

        asyncio.run(main())
    """)
    assert ours == upstream


def test_exit_of_an_idle_context_and_of_one_never_used():
    upstream, ours = compare("""
        import asyncio
        from asgiref.sync import ThreadSensitiveContext, sync_to_async

        async def main():
            async with ThreadSensitiveContext():
                pass
            seen = []
            for _ in range(3):
                async with ThreadSensitiveContext():
                    seen.append(await sync_to_async(thread_label)())
                    seen.append(await sync_to_async(thread_label)())
            record("pairs share a thread", [seen[i] == seen[i + 1] for i in range(0, 6, 2)])

        asyncio.run(main())
    """)
    assert ours == upstream


# -- A loop's own run_in_executor gets every call -----------------------------

CUSTOM = """
import asyncio, functools, threading
from concurrent.futures import ThreadPoolExecutor
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

seen = []

def note(executor, fn, args):
    # What instrumentation sees: which kind of executor, and what is run.
    partial = isinstance(fn, functools.partial)
    seen.append({
        "executor": "default" if executor is None else "an Executor" if hasattr(executor, "submit") else "other",
        "handler": getattr(getattr(fn, "func", None), "__name__", None),
        "loop first": partial and fn.args[0] is asyncio.get_running_loop(),
        "calls": partial and getattr(getattr(fn.args[-1], "func", None), "__name__", None),
        "extra args": len(args),
    })

class CountingLoop(asyncio.SelectorEventLoop):
    def run_in_executor(self, executor, fn, *args):
        note(executor, fn, args)
        return super().run_in_executor(executor, fn, *args)

def user_function(value):
    return [value, thread_label()]

def via_async_to_sync(value):
    async def inner():
        return await sync_to_async(user_function)(value)
    return async_to_sync(inner)() + [thread_label()]

def threads_by_call(results):
    # "Ran where call n ran", within one run: lanes outlive a run (by design,
    # as WSGI threads outlive a request), upstream's threads do not.
    first = {"T0": "on the loop"}
    return [[r[0]] + [first.setdefault(label, "where call %d ran" % r[0]) for label in r[1:]]
            for r in results]

async def every_kind_of_call():
    out = [await sync_to_async(user_function)(1)]
    out.append(await sync_to_async(user_function, thread_sensitive=False)(2))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mine") as pool:
        out.append(await sync_to_async(user_function, thread_sensitive=False, executor=pool)(3))
    async with ThreadSensitiveContext():
        out.append(await sync_to_async(user_function)(4))
        out.append(await sync_to_async(user_function)(5))
    out.append(await sync_to_async(via_async_to_sync)(6))
    return threads_by_call(out)

async def every_kind_of_call_with_run_in_executor_patched():
    # On the running loop instance, as instrumentation patches it.
    loop = asyncio.get_running_loop()
    stock = loop.run_in_executor

    def patched(executor, fn, *args):
        note(executor, fn, args)
        return stock(executor, fn, *args)

    loop.run_in_executor = patched
    return await every_kind_of_call()
"""


def test_a_loop_subclass_with_its_own_run_in_executor_gets_every_call():
    upstream, ours = compare(CUSTOM, """
        loop = CountingLoop()
        record("results", loop.run_until_complete(every_kind_of_call()))
        loop.close()
        record("seen", seen)
    """)
    assert ours == upstream
    assert len(upstream["seen"]) == 7


def test_an_instance_patched_run_in_executor_gets_every_call():
    upstream, ours = compare(CUSTOM, """
        record("results", asyncio.run(every_kind_of_call_with_run_in_executor_patched()))
        record("seen", seen)
    """)
    assert ours == upstream
    assert len(upstream["seen"]) == 7


def test_uvloop_stock_and_patched():
    pytest.importorskip("uvloop")
    upstream, ours = compare(CUSTOM, """
        import uvloop

        record("stock", uvloop.run(every_kind_of_call()))
        record("seen on stock uvloop", seen[:])
        record("patched", uvloop.run(every_kind_of_call_with_run_in_executor_patched()))
        record("seen", seen)
    """)
    assert ours == upstream
    assert len(upstream["seen"]) == 7


def test_a_run_in_executor_that_runs_calls_inline_on_the_loop():
    upstream, ours = compare(CUSTOM, """
        class InlineLoop(asyncio.SelectorEventLoop):
            def run_in_executor(self, executor, fn, *args):
                note(executor, fn, args)
                future = self.create_future()
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
                return future

        def fail():
            raise KeyError("inline")

        async def main():
            out = [await sync_to_async(user_function)(1)]
            out.append(await sync_to_async(user_function, thread_sensitive=False)(2))
            try:
                await sync_to_async(fail)()
            except KeyError as exc:
                out.append(repr(exc))
            return out

        loop = InlineLoop()
        record("results", loop.run_until_complete(main()))
        loop.close()
        record("seen", seen)
    """)
    assert ours == upstream


def test_a_custom_default_executor_and_a_refusing_run_in_executor():
    upstream, ours = compare(CUSTOM, """
        refusals = [True]

        class RefusingLoop(asyncio.SelectorEventLoop):
            def run_in_executor(self, executor, fn, *args):
                if refusals and refusals.pop():
                    raise RuntimeError("refused")
                return super().run_in_executor(executor, fn, *args)

        async def on_stock_loop():
            loop = asyncio.get_running_loop()
            loop.set_default_executor(ThreadPoolExecutor(max_workers=1, thread_name_prefix="custom-default"))
            name = lambda: threading.current_thread().name.startswith("custom-default")
            return [await sync_to_async(name, thread_sensitive=False)() for _ in range(2)]

        record("custom default executor", asyncio.run(on_stock_loop()))

        async def refused():
            out = []
            for i in range(2):  # the second call in this task, as upstream's, is refused too
                try:
                    out.append(await sync_to_async(user_function)(i))
                except RuntimeError as exc:
                    out.append(str(exc))
            try:  # a task made now inherits that mark
                out.append(await asyncio.create_task(sync_to_async(user_function)(9)))
            except RuntimeError as exc:
                out.append(str(exc))
            return out

        loop = RefusingLoop()
        record("refused", loop.run_until_complete(refused()))
        loop.close()
    """)
    assert ours == upstream


def test_cancelled_calls_through_a_custom_run_in_executor():
    upstream, ours = compare(CUSTOM, """
        started, release = threading.Event(), threading.Event()
        ran = []

        def blocker():
            started.set()
            release.wait(10)
            ran.append("blocker")
            return thread_label()

        async def main():
            async with ThreadSensitiveContext():
                first = asyncio.create_task(sync_to_async(blocker)())
                queued = asyncio.create_task(sync_to_async(ran.append)("queued"))
                kept = asyncio.create_task(sync_to_async(ran.append)("kept"))
                await asyncio.to_thread(started.wait, 10)
                queued.cancel()
                first.cancel()
                outcomes = [await outcome(first), await outcome(queued)]  # before the queue moves on
                release.set()
                outcomes.append(await outcome(kept))
            return outcomes

        loop = CountingLoop()
        record("outcomes", loop.run_until_complete(main()))
        loop.close()
        record("ran", ran)
        record("calls seen", len(seen))
    """)
    assert ours == upstream
    assert upstream["ran"] == ["blocker", "kept"]


# -- Tracebacks: no more library frames than upstream's -------------------------

# Library frames: asgiref's (upstream) or asgiref_fast's, compiled ones
# included. A frame is hidden from debug pages and Sentry when its locals
# hold a true __traceback_hide__.
TRACEBACK = """
import asyncio, os, sys, threading
import asgiref.sync
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

LIBRARY = os.path.dirname(asgiref.sync.__file__)

def is_library(frame):
    name = frame.f_globals.get("__name__") or ""
    return (
        name.split(".")[0] in ("asgiref", "asgiref_fast")
        or frame.f_code.co_filename.startswith(LIBRARY)
        or frame.f_code.co_filename.endswith(".pyx")
    )

def frames(exc):
    tb, out = exc.__traceback__, []
    while tb is not None:
        out.append(tb.tb_frame)
        tb = tb.tb_next
    return out

def observe(name, exc):
    shown = frames(exc)
    library = [f for f in shown if is_library(f)]
    record(name, {
        "error": [type(exc).__name__, [repr(a) for a in exc.args]],
        "cause": type(exc.__cause__).__name__,
        "context": type(exc.__context__).__name__,
        "user frames": [f.f_code.co_name for f in shown if f.f_globals.get("__name__") == "__main__"],
        "frames": len(shown),
        "library frames": len(library),
        "visible library frames": len([f for f in library if not f.f_locals.get("__traceback_hide__")]),
    })

def fail():
    raise KeyError("sync failure")

async def afail():
    raise KeyError("async failure")
"""


def assert_no_more_library_frames(upstream, ours):
    assert "crash" not in ours and "hang" not in ours, ours
    assert upstream.keys() == ours.keys()
    for name, expected in upstream.items():
        got = ours[name]
        for key in ("error", "cause", "context", "user frames"):
            assert got[key] == expected[key], (name, key)
        for key in ("frames", "library frames", "visible library frames"):
            assert got[key] <= expected[key], (name, key, got[key], expected[key])


def test_traceback_of_sync_to_async_failures():
    upstream, ours = compare(TRACEBACK, """
        from concurrent.futures import ThreadPoolExecutor

        async def call(name, fn, *args, **kwargs):
            try:
                await sync_to_async(fn, **kwargs)(*args)
            except Exception as exc:
                observe(name, exc)

        def handling():  # fails while the caller's exception is being handled
            raise KeyError("while handling")

        def chained():
            try:
                {}["missing"]
            except KeyError as exc:
                raise ValueError("chained") from exc

        async def main():
            await call("thread-sensitive", fail)
            await call("not thread-sensitive", fail, thread_sensitive=False)
            with ThreadPoolExecutor(max_workers=1) as pool:
                await call("own executor", fail, thread_sensitive=False, executor=pool)
            async with ThreadSensitiveContext():
                await call("in a context", fail)
            try:
                raise TypeError("being handled")
            except TypeError:
                await call("while handling", handling)
            await call("chained", chained)

        asyncio.run(main())
    """)
    assert_no_more_library_frames(upstream, ours)


def test_traceback_of_async_to_sync_failures():
    upstream, ours = compare(TRACEBACK, """
        def outer():
            return async_to_sync(afail)()

        def outer_of_sync():  # sync_to_async inside async_to_sync inside sync_to_async
            async def middle():
                return await sync_to_async(fail)()
            return async_to_sync(middle)()

        async def main():
            for name, fn in (("inside sync_to_async", outer), ("sync in async in sync", outer_of_sync)):
                try:
                    await sync_to_async(fn)()
                except Exception as exc:
                    observe(name, exc)

        asyncio.run(main())
        try:
            async_to_sync(afail)()
        except Exception as exc:
            observe("from sync code", exc)

        async def middle_from_sync():
            return await sync_to_async(fail)()

        try:
            async_to_sync(middle_from_sync)()  # the sync call runs back on this thread
        except Exception as exc:
            observe("sync_to_async inside async_to_sync", exc)
    """)
    assert_no_more_library_frames(upstream, ours)


def test_traceback_of_errors_raised_by_the_library_and_through_custom_loops():
    upstream, ours = compare(TRACEBACK, """
        from concurrent.futures import ThreadPoolExecutor

        class OwnLoop(asyncio.SelectorEventLoop):
            def run_in_executor(self, executor, fn, *args):
                return super().run_in_executor(executor, fn, *args)

        async def custom():
            cases = (("custom loop", {}), ("custom loop, not thread-sensitive", {"thread_sensitive": False}))
            for name, kwargs in cases:
                try:
                    await sync_to_async(fail, **kwargs)()
                except Exception as exc:
                    observe(name, exc)

        loop = OwnLoop()
        loop.run_until_complete(custom())
        loop.close()

        async def exited():
            with ThreadPoolExecutor(max_workers=1) as pool:
                async with ThreadSensitiveContext(executor=pool):
                    gate = asyncio.Event()

                    async def outliving():
                        await gate.wait()
                        await sync_to_async(fail)()

                    task = asyncio.create_task(outliving())
                gate.set()
                try:
                    await task
                except Exception as exc:
                    observe("context exited", exc)

        asyncio.run(exited())

        async def in_loop():
            try:
                async_to_sync(afail)()
            except Exception as exc:
                observe("async_to_sync on the loop's thread", exc)

        asyncio.run(in_loop())
    """)
    assert_no_more_library_frames(upstream, ours)
