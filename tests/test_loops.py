"""async_to_sync from plain sync code reuses warm loops, yet every call starts
as a fresh asyncio.run would: nothing of one call survives into the next."""

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

from asgiref_fast.sync import AsyncSingleThreadContext, async_to_sync


def test_callbacks_and_timers_do_not_survive():
    fired = []

    async def schedule():
        # Run before the call ends: the loop's own clean-up turns are fair game
        # for asyncio.run too, so only what outlives the call is checked.
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, fired.append, "later")
        loop.call_later(3600, fired.append, "much later")

    async def wait_a_bit():
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        return len(loop._scheduled) if hasattr(loop, "_scheduled") else 0

    with AsyncSingleThreadContext():  # same thread, so the same warm loop
        async_to_sync(schedule)()
        assert async_to_sync(wait_a_bit)() == 0
    assert fired == []


def test_async_generators_are_finalised():
    finalised = threading.Event()

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            finalised.set()

    async def start_and_abandon():
        gen = agen()
        await gen.__anext__()
        start_and_abandon.keep = gen  # keep it alive past the call

    async_to_sync(start_and_abandon)()
    assert finalised.is_set()


def test_loop_settings_reset_between_calls():
    async def tamper():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)
        loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
        await loop.run_in_executor(None, lambda: None)
        return id(loop)

    async def inspect_loop():
        loop = asyncio.get_running_loop()
        executor_ok = await loop.run_in_executor(None, lambda: True)
        return id(loop), loop.get_exception_handler(), loop.get_task_factory(), executor_ok

    with AsyncSingleThreadContext():
        first = async_to_sync(tamper)()
        loop_id, handler, factory, executor_ok = async_to_sync(inspect_loop)()
    assert (handler, factory, executor_ok) == (None, None, True)
    assert loop_id == first  # it was the warm loop, scrubbed


def test_a_loop_with_registered_descriptors_is_replaced():
    left, right = socket.socketpair()
    try:
        async def register():
            loop = asyncio.get_running_loop()
            loop.add_reader(left.fileno(), lambda: None)
            return id(loop)

        async def loop_id():
            return id(asyncio.get_running_loop()), left.fileno() in asyncio.get_running_loop()._selector.get_map()

        with AsyncSingleThreadContext():
            async_to_sync(register)()
            _, registered = async_to_sync(loop_id)()
        assert not registered  # a new loop, watching only its own descriptors
    finally:
        left.close()
        right.close()


def test_exceptions_and_results_still_cross():
    async def fail():
        raise LookupError("x")

    try:
        async_to_sync(fail)()
    except LookupError as exc:
        assert exc.args == ("x",)
    else:
        raise AssertionError("no exception")


def test_a_new_event_loop_policy_gets_a_loop_of_its_own():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the policy API, on 3.14+
        base = asyncio.DefaultEventLoopPolicy

    class Policy(base):  # type: ignore[misc, valid-type]
        def new_event_loop(self):
            loop = super().new_event_loop()
            loop.made_by_policy = True
            return loop

    async def made_by_policy():
        return getattr(asyncio.get_running_loop(), "made_by_policy", False)

    def set_policy(policy):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(policy)

    with AsyncSingleThreadContext():  # same thread, so the warm loop is at hand
        assert async_to_sync(made_by_policy)() is False
        set_policy(Policy())
        try:
            assert async_to_sync(made_by_policy)() is True
        finally:
            set_policy(None)
        assert async_to_sync(made_by_policy)() is False


def test_a_loop_that_served_hops_stays_warm():
    # A hop leaves the loop watching its inbox's doorbell: that is the
    # loop's own, not the call's, and must not cost the warm loop.
    from asgiref_fast.sync import sync_to_async

    async def hop_and_tell():
        await sync_to_async(lambda: None)()
        await sync_to_async(lambda: None, thread_sensitive=False)()
        return id(asyncio.get_running_loop())

    with AsyncSingleThreadContext():
        first = async_to_sync(hop_and_tell)()
        second = async_to_sync(hop_and_tell)()
    assert first == second


def test_callbacks_scheduled_as_the_call_ends_still_run():
    # As under asyncio.run: what the coroutine scheduled just before it
    # returned runs before the call is over.
    ran = []

    async def schedule_then_return():
        loop = asyncio.get_running_loop()
        loop.call_soon(ran.append, "soon")
        loop.call_soon(lambda: loop.call_soon(ran.append, "soon after"))
        return "done"

    with AsyncSingleThreadContext():
        assert async_to_sync(schedule_then_return)() == "done"
        assert ran == ["soon", "soon after"]
        assert async_to_sync(schedule_then_return)() == "done"
    assert ran == ["soon", "soon after"] * 2


def test_stopping_the_loop_early_fails_as_asyncio_run_does():
    async def stop_early():
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def fine():
        return 42

    with AsyncSingleThreadContext():
        try:
            async_to_sync(stop_early)()
        except RuntimeError as exc:
            assert "stopped before" in str(exc)
        else:
            raise AssertionError("no RuntimeError")
        assert async_to_sync(fine)() == 42  # the warm loop still serves


def _count_new_loops(monkeypatch):
    made = []
    new_event_loop = asyncio.events.new_event_loop

    def counting():
        made.append(1)
        return new_event_loop()

    monkeypatch.setattr(asyncio.events, "new_event_loop", counting)
    return made


def test_a_loop_whose_settings_were_changed_is_reset_and_stays_warm(monkeypatch):
    made = _count_new_loops(monkeypatch)

    async def tune():
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 3.0
        loop.set_exception_handler(lambda loop, context: None)
        loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
        loop.call_later(3600, print)
        await loop.run_in_executor(None, lambda: None)

    async def settings():
        loop = asyncio.get_running_loop()
        return loop.get_debug(), loop.slow_callback_duration, loop.get_exception_handler(), loop.get_task_factory()

    with AsyncSingleThreadContext():
        async_to_sync(settings)()  # the context's thread gets its loop
        made.clear()
        for _ in range(3):
            async_to_sync(tune)()
            assert async_to_sync(settings)() == (False, 0.1, None, None)
    assert made == []  # every call found the warm loop as new again


def test_a_loop_someone_still_holds_is_closed_and_replaced(monkeypatch):
    made = _count_new_loops(monkeypatch)
    kept = []

    async def keep():
        kept.append(asyncio.get_running_loop())

    with AsyncSingleThreadContext():
        async_to_sync(keep)()
        assert kept[0].is_closed()  # as asyncio.run leaves it
        made.clear()
        async_to_sync(keep)()
    assert made == [1] and kept[1] is not kept[0]


@pytest.mark.timeout(120)
def test_warm_loops_are_closed_at_exit(tmp_path):
    # A lane's warm loop left open at exit was freed during the interpreter's
    # finalization on free-threaded 3.13, after its self-pipe's sockets:
    # "Exception ignored in BaseEventLoop.__del__ ... Invalid file
    # descriptor: -1" (measured in a pytest run like this one's, every time).
    script = tmp_path / "test_exit.py"
    script.write_text(textwrap.dedent("""
        import sys
        import pytest
        from asgiref_fast.sync import async_to_sync

        async def inner():
            return 1

        def test_warm_loop():
            assert async_to_sync(inner)() == 1

        if __name__ == "__main__":
            sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", __file__]))
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
