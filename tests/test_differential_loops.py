"""Differential tests (see differential.py) for the event loop that
``async_to_sync`` runs a coroutine on when it is called from plain sync code.

Upstream runs each such call through ``asyncio.run`` on a new thread: a new
loop made by the event loop policy, closed at the end. We reuse warm loops;
nothing one call does to its loop may show in the next, and a loop that a
call let escape must be closed as upstream's would be. Every scenario runs
once with plain calls (a lane lent per call) and once inside an
``AsyncSingleThreadContext`` (one thread for all calls), where a warm loop
would most surely come back.
"""

import sys
import textwrap

import pytest

from differential import compare, upstream_available

pytestmark = [
    pytest.mark.skipif(not upstream_available(), reason="upstream asgiref is not installed"),
    pytest.mark.timeout(180),
]

MODES = ("plain", "single_thread")

# Prepended to each scenario: ``calls()`` is the block every scenario makes
# its async_to_sync calls in, per mode; ``a2s(f)`` runs f once from sync code.
_SETUP = """
import asyncio, contextlib, gc, sys, threading, warnings, weakref
from asgiref.sync import AsyncSingleThreadContext, async_to_sync

def calls():
    return AsyncSingleThreadContext() if MODE == "single_thread" else contextlib.nullcontext()

def a2s(f, *args):
    return async_to_sync(f)(*args)
"""


def run(scenario: str, mode: str) -> "tuple[dict, dict]":
    return compare(f"MODE = {mode!r}\n" + _SETUP + textwrap.dedent(scenario))


@pytest.mark.parametrize("mode", MODES)
def test_attributes_set_on_a_loop_are_gone_in_the_next_call(mode):
    upstream, ours = run("""
        async def tag():
            loop = asyncio.get_running_loop()
            loop.some_attr = "set by the first call"
            loop._private_attr = 1

        async def look():
            loop = asyncio.get_running_loop()
            return [hasattr(loop, "some_attr"), hasattr(loop, "_private_attr")]

        with calls():
            a2s(tag)
            record("second call sees", a2s(look))
    """, mode)
    assert ours == upstream == {"second call sees": [False, False]}


@pytest.mark.parametrize("mode", MODES)
def test_debug_and_slow_callback_duration_start_as_new(mode):
    upstream, ours = run("""
        import os

        async def tune():
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = 5.0

        async def settings():
            loop = asyncio.get_running_loop()
            return [loop.get_debug(), loop.slow_callback_duration]

        with calls():
            record("fresh", a2s(settings))
            a2s(tune)
            record("after tuning", a2s(settings))
            # asyncio.run's new loop reads the environment each time.
            os.environ["PYTHONASYNCIODEBUG"] = "1"
            record("debug from the environment", a2s(settings))
            del os.environ["PYTHONASYNCIODEBUG"]
            record("and back", a2s(settings))
    """, mode)
    assert ours == upstream
    assert upstream["after tuning"] == upstream["fresh"] == [False, 0.1]
    assert upstream["debug from the environment"] == [True, 0.1]


@pytest.mark.parametrize("mode", MODES)
def test_exception_handler_and_task_factory_start_as_new(mode):
    upstream, ours = run("""
        seen = []

        def handler(loop, context):
            seen.append(context["message"])

        async def install():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(handler)
            loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
            loop.call_exception_handler({"message": "during the call"})

        async def settings():
            loop = asyncio.get_running_loop()
            return [loop.get_exception_handler() is None, loop.get_task_factory() is None]

        with calls():
            a2s(install)
            record("second call", a2s(settings))
        record("handled", seen)
    """, mode)
    assert ours == upstream
    assert upstream["second call"] == [True, True]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks came with Python 3.12")
@pytest.mark.parametrize("mode", MODES)
def test_an_eager_task_factory_does_not_carry_over(mode):
    # Python 3.12+: a task factory that runs tasks' first steps at once.
    upstream, ours = run("""
        async def step(started):
            started.append(True)

        async def eager_here(install):
            loop = asyncio.get_running_loop()
            if install:
                loop.set_task_factory(asyncio.eager_task_factory)
            started = []
            task = asyncio.ensure_future(step(started))
            ran_at_once = bool(started)
            await task
            return ran_at_once

        with calls():
            record("installing call", a2s(eager_here, True))
            record("next call", a2s(eager_here, False))
    """, mode)
    assert ours == upstream
    assert upstream == {"installing call": True, "next call": False}


@pytest.mark.parametrize("mode", MODES)
def test_the_default_executor_is_shut_down_and_not_inherited(mode):
    upstream, ours = run("""
        from concurrent.futures import ThreadPoolExecutor

        made = {}
        mine = ThreadPoolExecutor(max_workers=1)

        async def use_default():
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: None)
            made["executor"] = loop._default_executor

        async def set_mine():
            loop = asyncio.get_running_loop()
            loop.set_default_executor(mine)
            return await loop.run_in_executor(None, lambda: thread_label() != thread_label(threading.main_thread()))

        async def next_call():
            loop = asyncio.get_running_loop()
            before = loop._default_executor is None
            ok = await loop.run_in_executor(None, lambda: True)
            return [before, ok, loop._default_executor is not mine, loop._default_executor is not made["executor"]]

        with calls():
            a2s(use_default)
            record("made executor shut down", made["executor"]._shutdown)
            record("next call after a made one", a2s(next_call))
            record("ran on my executor", a2s(set_mine))
            record("my executor shut down", mine._shutdown)
            record("next call after mine", a2s(next_call))
    """, mode)
    assert ours == upstream
    assert upstream["my executor shut down"] is True
    assert upstream["next call after mine"] == [True, True, True, True]


@pytest.mark.parametrize("mode", MODES)
def test_a_loop_a_call_let_escape_is_closed_and_never_runs_again(mode):
    upstream, ours = run("""
        kept = {}

        async def keep_loop():
            kept["loop"] = asyncio.get_running_loop()

        async def keep_weakly():
            kept["ref"] = weakref.ref(asyncio.get_running_loop())

        async def is_kept_loop():
            loop = asyncio.get_running_loop()
            return [loop is kept["loop"], loop.is_closed()]

        with calls():
            a2s(keep_loop)
            record("kept loop closed after the call", kept["loop"].is_closed())
            record("next call's loop", a2s(is_kept_loop))
            a2s(keep_weakly)
            gc.collect()
            loop = kept["ref"]()
            record("weakly kept loop gone or closed", loop is None or loop.is_closed())
    """, mode)
    assert ours == upstream
    assert upstream["kept loop closed after the call"] is True
    assert upstream["next call's loop"] == [False, False]
    assert upstream["weakly kept loop gone or closed"] is True


@pytest.mark.parametrize("mode", MODES)
def test_a_lock_bound_in_one_call_fails_in_the_next(mode):
    upstream, ours = run("""
        lock = asyncio.Lock()

        async def contend():
            # Waiting binds the lock to the running loop.
            async with lock:
                waiter = asyncio.ensure_future(lock.acquire())
                await asyncio.sleep(0)
            await waiter
            lock.release()

        def attempt():
            try:
                a2s(contend)
                return "ok"
            except RuntimeError as exc:
                return ["RuntimeError", "different event loop" in str(exc)]

        with calls():
            record("first", attempt())
            record("second", attempt())
    """, mode)
    assert ours == upstream
    assert upstream["second"] == ["RuntimeError", True]


@pytest.mark.parametrize("mode", MODES)
def test_handles_and_futures_kept_from_a_call(mode):
    upstream, ours = run("""
        kept = {}

        async def leave_things():
            loop = asyncio.get_running_loop()
            kept["timer"] = loop.call_later(3600, print, "never")
            kept["future"] = loop.create_future()

        async def next_call():
            loop = asyncio.get_running_loop()
            return [kept["future"].get_loop() is loop, len(loop._scheduled)]

        with calls():
            a2s(leave_things)
            record("timer cancelled", kept["timer"].cancelled())
            record("future's loop closed", kept["future"].get_loop().is_closed())
            record("future done", kept["future"].done())
            record("next call", a2s(next_call))
    """, mode)
    assert ours == upstream
    assert upstream["future's loop closed"] is True


@pytest.mark.parametrize("mode", MODES)
def test_tasks_left_pending_are_cancelled_as_asyncio_run_does(mode):
    upstream, ours = run("""
        events = []
        handled = []
        kept = {}

        async def sleeper(name):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                events.append(name + " cancelled")
                raise

        async def stubborn():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise LookupError("refused to stop")

        async def leave_tasks():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda loop, context: handled.append(
                [context["message"], type(context.get("exception")).__name__]))
            kept["task"] = asyncio.ensure_future(sleeper("kept"))
            asyncio.ensure_future(sleeper("dropped"))
            asyncio.ensure_future(stubborn())
            await asyncio.sleep(0)
            events.append("call returns")

        async def count_tasks():
            return len(asyncio.all_tasks())

        with calls():
            a2s(leave_tasks)
            record("kept task cancelled", kept["task"].cancelled())
            record("tasks in the next call", a2s(count_tasks))
        record("events", sorted(events))
        record("handled", handled)
    """, mode)
    assert ours == upstream
    assert upstream["handled"] == [["unhandled exception during asyncio.run() shutdown", "LookupError"]]


@pytest.mark.parametrize("mode", MODES)
def test_async_generators_left_open_are_finalised(mode):
    upstream, ours = run("""
        events = []
        kept = {}

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                events.append("finalised")

        async def start():
            kept["gen"] = agen()
            await kept["gen"].__anext__()
            kept["hooks"] = sys.get_asyncgen_hooks().firstiter.__self__ is asyncio.get_running_loop()

        async def resume():
            try:
                return await kept["gen"].__anext__()
            except StopAsyncIteration:
                return "exhausted"

        with calls():
            a2s(start)
            record("after the call", list(events))
            record("resumed in the next call", a2s(resume))
        record("hooks were the loop's", kept["hooks"])
        record("hooks in the caller", list(sys.get_asyncgen_hooks()) == [None, None])
    """, mode)
    assert ours == upstream
    assert upstream["after the call"] == ["finalised"]


@pytest.mark.parametrize("mode", MODES)
def test_signal_handlers_cannot_be_added_off_the_main_thread(mode):
    upstream, ours = run("""
        import signal

        async def add():
            loop = asyncio.get_running_loop()
            try:
                loop.add_signal_handler(signal.SIGUSR1, lambda: None)
            except Exception as exc:
                return [type(exc).__name__, str(exc)]
            return "added"

        with calls():
            record("first", a2s(add))
            record("second", a2s(add))
    """, mode)
    assert ours == upstream
    assert upstream["first"][0] == "RuntimeError"


@pytest.mark.parametrize("mode", MODES)
def test_current_loop_inside_and_after_the_call(mode):
    upstream, ours = run("""
        async def inside():
            loop = asyncio.get_running_loop()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                current = asyncio.get_event_loop()
            return [current is loop, thread_label() != "T0"]

        def after():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    loop = asyncio.get_event_loop()
                except RuntimeError as exc:
                    return ["RuntimeError", str(exc)]
                try:
                    return [type(loop).__name__, loop.is_running(), loop.is_closed()]
                finally:
                    loop.close()
                    asyncio.set_event_loop(None)

        with calls():
            record("inside", a2s(inside))
            record("running after", asyncio._get_running_loop() is None)
            record("after", after())
    """, mode)
    assert ours == upstream
    assert upstream["inside"] == [True, True]


@pytest.mark.parametrize("mode", MODES)
def test_context_variables_cross_but_do_not_linger_on_the_loop(mode):
    upstream, ours = run("""
        import contextvars

        var = contextvars.ContextVar("var", default="unset")
        other = contextvars.ContextVar("other", default="unset")

        async def set_var(value):
            seen = var.get()
            var.set(value)
            # Set in a callback's own context copy: must not reach anyone.
            asyncio.get_running_loop().call_soon(other.set, "from a callback")
            await asyncio.sleep(0)
            return seen

        async def read():
            return [var.get(), other.get()]

        with calls():
            record("first sees", a2s(set_var, "one"))
            record("caller after", var.get())
            var.set("caller's")
            record("second sees", a2s(set_var, "two"))
            record("caller after second", [var.get(), other.get()])
            record("third reads", a2s(read))
    """, mode)
    assert ours == upstream
    assert upstream["first sees"] == "unset" and upstream["second sees"] == "caller's"


_POLICY = """
loops = []
set_calls = []

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # 3.14 deprecates the policy API
    DefaultEventLoopPolicy = asyncio.DefaultEventLoopPolicy

class Policy(DefaultEventLoopPolicy):
    def new_event_loop(self):
        loop = super().new_event_loop()
        loops.append(type(loop).__name__)
        return loop

    def set_event_loop(self, loop):
        set_calls.append(None if loop is None else "a loop")
        super().set_event_loop(loop)

async def loop_class():
    return [type(asyncio.get_running_loop()).__name__, asyncio.get_running_loop().is_closed()]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    asyncio.set_event_loop_policy(Policy())
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_users_event_loop_policy_makes_each_calls_loop(mode):
    upstream, ours = run(_POLICY + """
with calls():
    record("classes", [a2s(loop_class) for _ in range(3)])
record("loops made", loops)
record("set_event_loop calls", [c for c in set_calls])
    """, mode)
    assert ours == upstream
    assert len(upstream["loops made"]) == 3


@pytest.mark.parametrize("mode", MODES)
def test_a_policy_set_between_calls_takes_over(mode):
    upstream, ours = run(_POLICY.replace("asyncio.set_event_loop_policy(Policy())", "pass") + """
with calls():
    first = a2s(loop_class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(Policy())
    second = a2s(loop_class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(None)
    third = a2s(loop_class)
record("classes", [first, second, third])
record("loops made by the policy", len(loops))
    """, mode)
    assert ours == upstream
    assert upstream["loops made by the policy"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_uvloops_policy(mode):
    pytest.importorskip("uvloop")
    upstream, ours = run("""
        import uvloop

        kept = []

        async def tell():
            loop = asyncio.get_running_loop()
            kept.append(loop)
            return type(loop).__module__.split(".")[0]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        with calls():
            record("modules", [a2s(tell), a2s(tell)])
        record("distinct loops", len({id(loop) for loop in kept}))
        record("all closed", all(loop.is_closed() for loop in kept))
    """, mode)
    assert ours == upstream
    assert upstream["modules"] == ["uvloop", "uvloop"]


@pytest.mark.parametrize("mode", MODES)
def test_no_deprecated_asyncio_api_is_used(mode):
    # Python 3.14 deprecates the event loop policy API (3.16 removes it):
    # under -W error::DeprecationWarning, as upstream's own tests run, a plain
    # call must still work.
    upstream, ours = run("""
        async def answer():
            await asyncio.sleep(0)
            return 42

        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            with calls():
                try:
                    record("result", [a2s(answer), a2s(answer)])
                except Exception as exc:
                    record("result", [type(exc).__name__, str(exc)])
    """, mode)
    assert ours == upstream == {"result": [42, 42]}
