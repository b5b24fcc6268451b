"""The compiled twins behave as the pure ones.

Every test here imports both twin modules directly (``asgiref_fast._pure.X``
and ``asgiref_fast._cy.X``), whichever set the process selected, and runs
against each. The compiled half is skipped only when it is not built; a run
that requires it (``ASGIREF_FAST_REQUIRE_COMPILED=1``) fails instead.
"""

import ast
import asyncio
import contextlib
import contextvars
import gc
import importlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import asgiref_fast
from asgiref_fast import _env

from _reliability import Garbage

MODULES = ("context", "hop", "local", "workqueue")
WAIT = 10.0  # seconds; every wait in this file has a bound


def _load(package: str) -> "types.SimpleNamespace | None":
    try:
        return types.SimpleNamespace(
            name=package, **{m: importlib.import_module(f"asgiref_fast.{package}.{m}") for m in MODULES}
        )
    except ImportError:
        return None


PURE = _load("_pure")
COMPILED = _load("_cy")
REQUIRED = _env.switch("ASGIREF_FAST_REQUIRE_COMPILED")


def _compiled():
    if COMPILED is None:
        (pytest.fail if REQUIRED else pytest.skip)("the compiled twins are not built")
    return COMPILED


@pytest.fixture(params=["_pure", "_cy"])
def twin(request):
    return PURE if request.param == "_pure" else _compiled()


def both():
    """Both twins, for tests that compare them side by side."""
    return PURE, _compiled()


def test_one_owner_for_both_twins():
    pure, compiled = both()
    assert compiled.context.OWNER is pure.context.OWNER


def start(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join(*threads: threading.Thread) -> None:
    deadline = time.monotonic() + WAIT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), f"{thread.name} hung"


def outcome(fn, *args):
    """("ok", value) or (exception type name, message) of fn(*args)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


# -- WorkQueue ---------------------------------------------------------------


def test_workqueue_producers_and_consumer(twin):
    producers, per_producer = 4, 20000
    queue = twin.workqueue.WorkQueue()
    received = []
    timeouts = []
    go = threading.Barrier(producers + 1, timeout=WAIT)

    def produce(p):
        go.wait()
        for i in range(per_producer):
            assert queue.push((p, i))
            if i % 997 == 0:
                os.sched_yield()  # let the consumer drain and park now and then

    def consume():
        go.wait()
        while True:
            item = queue.pop(0.001)  # timed waits: the wake-up/timeout race, often
            if item is None:
                if queue.closed:
                    item = queue.pop(0)
                    if item is None:
                        return
                else:
                    timeouts.append(1)
                    continue
            received.append(item)

    threads = [start(produce, p) for p in range(producers)]
    consumer = start(consume)
    join(*threads)
    queue.close()
    join(consumer)
    assert len(received) == producers * per_producer
    assert len(set(received)) == len(received)
    for p in range(producers):
        assert [i for q, i in received if q == p] == list(range(per_producer))
    # Balanced: no stray wake-up signal survives the run.
    assert queue.pop(0.01) is None


@pytest.mark.parametrize("handoff", [False, True], ids=["push", "push handing off"])
def test_workqueue_wakes_a_parked_consumer(twin, handoff):
    # Handing off (the compiled twin lets go of the GIL to wake the consumer)
    # changes only who runs first, never what is delivered.
    for _ in range(300):
        queue = twin.workqueue.WorkQueue()
        got = []
        consumer = start(lambda: got.extend([queue.pop(WAIT), queue.pop(WAIT)]))
        assert queue.push("item", handoff) is True
        assert queue.push("next", handoff=handoff) is True
        join(consumer)
        assert got == ["item", "next"]
    queue.close()
    assert queue.push("late", handoff) is False


def test_workqueue_close_wakes_a_parked_consumer(twin):
    for _ in range(300):
        queue = twin.workqueue.WorkQueue()
        got = []
        consumer = start(lambda: got.append(queue.pop()))  # no timeout: only close() ends it
        queue.close()
        join(consumer)
        assert got == [None]


def test_workqueue_idle(twin):
    # Idle: nothing queued, and the consumer is not running what it took
    # (it counts as done with an item once it asks for the next).
    queue = twin.workqueue.WorkQueue()
    assert queue.idle() is True
    queue.push("item")
    assert queue.idle() is False
    assert queue.pop(0) == "item"
    assert queue.idle() is False
    assert queue.pop(0) is None
    assert queue.idle() is True
    got = []
    consumer = start(lambda: got.append(queue.pop(WAIT)))
    queue.push("next")
    join(consumer)
    assert got == ["next"] and queue.idle() is False


def test_workqueue_timeouts(twin):
    queue = twin.workqueue.WorkQueue()
    assert queue.pop(0) is None
    started = time.monotonic()
    assert queue.pop(0.05) is None
    assert 0.04 <= time.monotonic() - started < WAIT
    queue.push(1)
    assert queue.pop(0) == 1
    # A wait that times out leaves nothing behind: the next one waits again.
    started = time.monotonic()
    assert queue.pop(0.02) is None
    assert time.monotonic() - started >= 0.015


def test_workqueue_close_drain_take_all(twin):
    queue = twin.workqueue.WorkQueue()
    assert queue.closed is False
    for item in "abcd":
        assert queue.push(item) is True
    assert queue.pop() == "a"
    assert queue.take_all() == ["b", "c", "d"]
    assert queue.take_all() == []
    assert queue.pop(0) is None
    queue.push("e")
    queue.push("f")
    queue.close()
    assert queue.closed is True
    assert queue.push("g") is False
    assert [queue.pop(), queue.pop(), queue.pop(), queue.pop(WAIT)] == ["e", "f", None, None]
    queue.close()  # again: harmless


def test_workqueue_long_run_keeps_order(twin):
    # Long enough for the compiled twin to compact its list several times.
    queue = twin.workqueue.WorkQueue()
    popped = []
    for i in range(10000):
        queue.push(2 * i)
        queue.push(2 * i + 1)
        popped.append(queue.pop())
    assert popped == list(range(10000))
    assert queue.take_all() == list(range(10000, 20000))


@pytest.mark.parametrize(
    "timeout", [-5, -1.5, float("nan"), float("inf"), 1e20, "1", None, 2**70]
)
def test_workqueue_bad_timeouts_match(timeout):
    pure, compiled = both()
    results = []
    for twin in (pure, compiled):
        queue = twin.workqueue.WorkQueue()
        queue.push("ready")
        ready = outcome(queue.pop, timeout)  # not waiting: the timeout is not looked at
        empty = outcome(queue.pop, timeout)
        results.append((ready, empty))
    assert results[0] == results[1]
    assert results[0][0] == ("ok", "ready")
    assert results[0][1][0] != "ok"


def test_workqueue_odd_valid_timeouts_match():
    pure, compiled = both()
    for timeout in (True, False, 0, 0.0, -1, -1.0):
        results = []
        for twin in (pure, compiled):
            queue = twin.workqueue.WorkQueue()
            if timeout in (-1,):
                queue.close()  # would wait forever otherwise
            results.append(outcome(queue.pop, timeout))
        assert results[0] == results[1] == ("ok", None), timeout


def test_workqueue_frees_queued_items(twin):
    class Item:
        pass

    queue = twin.workqueue.WorkQueue()
    import weakref

    item = Item()
    ref = weakref.ref(item)
    queue.push(item)
    # A cycle through the queue: the collector must see the queued item.
    item.queue = queue
    del item, queue
    gc.collect()
    assert ref() is None


# -- Call and Inbox ----------------------------------------------------------


@contextlib.contextmanager
def own_loop():
    # A fresh event loop for one test thread. Not a fixture: the threads
    # pytest-run-parallel runs a test in share its fixtures, and a loop runs
    # in one thread at a time.
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def test_call_run_versus_cancel_race(twin):
    with own_loop() as loop:
        for _ in range(2000):
            runs = []
            call = twin.hop.Call(lambda: runs.append(1), loop)
            go = threading.Barrier(2, timeout=WAIT)
            cancelled = []

            def run():
                go.wait()
                call()

            def cancel():
                go.wait()
                cancelled.append(call.cancel())

            join(start(run), start(cancel))
            assert len(runs) + cancelled.count(True) == 1
            assert call.cancel() is False  # the ticket is gone either way


def test_the_loop_counts_only_calls_still_to_come():
    with own_loop() as loop:
        # The compiled loop spins before sleeping while its inbox expects an
        # outcome: every way a call ends must stop it expecting one, or the loop
        # would spin for nothing from then on.
        compiled = _compiled()
        inbox = compiled.hop.inbox_for(loop)
        assert inbox.outstanding == 0

        async def main():
            ran = compiled.hop.Call(lambda: 7, loop)
            failed = compiled.hop.Call(lambda: 1 / 0, loop)
            cancelled = compiled.hop.Call(lambda: pytest.fail("ran after cancel"), loop)
            dropped = compiled.hop.Call(lambda: pytest.fail("never sent"), loop)
            assert inbox.outstanding == 4
            assert cancelled.cancel() is True
            assert cancelled.cancel() is False  # counted off once only
            assert inbox.outstanding == 3
            del dropped
            gc.collect()
            assert inbox.outstanding == 2
            # Dropped in a cycle (its function holds it): the collector frees it.
            held = []
            cyclic = compiled.hop.Call(lambda: held, loop)  # noqa: F821 (never run)
            held.append(cyclic)
            assert inbox.outstanding == 3
            del cyclic, held
            gc.collect()
            assert inbox.outstanding == 2
            join(start(ran), start(failed))
            assert await asyncio.wait_for(ran.future, WAIT) == 7
            with pytest.raises(ZeroDivisionError):
                await asyncio.wait_for(failed.future, WAIT)
            assert inbox.outstanding == 0
            # Its future cancelled by the awaiting task, a call that then runs
            # still settles, and is counted off then.
            late = compiled.hop.Call(lambda: 8, loop)
            late.future.cancel()
            join(start(late))
            while not late.settled:
                await asyncio.sleep(0.001)
            assert inbox.outstanding == 0

        loop.run_until_complete(asyncio.wait_for(main(), WAIT))


def test_call_runs_once_when_two_threads_race(twin):
    with own_loop() as loop:
        for _ in range(2000):
            runs = []
            call = twin.hop.Call(lambda: runs.append(1), loop)
            go = threading.Barrier(2, timeout=WAIT)

            def run():
                go.wait()
                call()

            join(start(run), start(run))
            assert runs == [1]


def test_call_outcomes(twin):
    with own_loop() as loop:
        async def main():
            ok = twin.hop.Call(lambda: 42, loop)
            boom = twin.hop.Call(lambda: 1 / 0, loop)
            interrupt = twin.hop.Call(_raise_keyboard_interrupt, loop)
            cancelled = twin.hop.Call(lambda: pytest.fail("ran after cancel"), loop)
            assert cancelled.cancel() is True
            with ThreadPoolExecutor(1) as pool:
                for call in (ok, boom, interrupt, cancelled):
                    pool.submit(call).result(WAIT)
            assert await asyncio.wait_for(ok.future, WAIT) == 42
            with pytest.raises(ZeroDivisionError):
                await asyncio.wait_for(boom.future, WAIT)
            with pytest.raises(KeyboardInterrupt):
                await asyncio.wait_for(interrupt.future, WAIT)
            assert ok.settled and boom.settled and interrupt.settled
            assert not cancelled.settled and not cancelled.future.done()
            assert ok.outcome() == 42
            with pytest.raises(ZeroDivisionError):
                boom.outcome()

        loop.run_until_complete(main())


def _raise_keyboard_interrupt():
    raise KeyboardInterrupt


def test_call_outcome_kept_after_future_was_replaced(twin):
    with own_loop() as loop:
        # sync.py swaps in a fresh future when the awaiting task absorbed a
        # cancellation: the outcome must still reach it through outcome().
        async def main():
            call = twin.hop.Call(lambda: "late", loop)
            call.future.cancel()
            with ThreadPoolExecutor(1) as pool:
                pool.submit(call).result(WAIT)
            for _ in range(100):
                if call.settled:
                    break
                await asyncio.sleep(0)
            assert call.settled
            assert call.outcome() == "late"

        loop.run_until_complete(main())


def _counting_wakeups(loop):
    # An inbox wakes its loop through a doorbell the loop watches, or, with
    # none, through call_soon_threadsafe: count the callbacks either runs.
    wakeups = []

    def counted(callback):
        def count(*args):
            wakeups.append(1)
            return callback(*args)
        return count

    add_reader, call_soon_threadsafe = loop.add_reader, loop.call_soon_threadsafe
    loop.add_reader = lambda fd, callback, *args: add_reader(fd, counted(callback), *args)
    loop.call_soon_threadsafe = lambda callback, *args, **kw: call_soon_threadsafe(counted(callback), *args, **kw)
    return wakeups


def test_inbox_batches_outcomes_that_pile_up(twin):
    with own_loop() as loop:
        n = 200
        wakeups = _counting_wakeups(loop)

        async def main():
            calls = [twin.hop.Call(lambda i=i: i * i, loop) for i in range(n)]
            worker = start(lambda: [call() for call in calls])
            join(worker)  # the loop is blocked meanwhile: every outcome piles up
            results = await asyncio.wait_for(asyncio.gather(*(c.future for c in calls)), WAIT)
            assert results == [i * i for i in range(n)]

        loop.run_until_complete(main())
        assert len(wakeups) == 1


def test_inbox_delivers_everything_from_many_threads(twin):
    with own_loop() as loop:
        n, workers = 4000, 4
        wakeups = _counting_wakeups(loop)

        async def main():
            calls = [twin.hop.Call(lambda i=i: i, loop) for i in range(n)]
            with ThreadPoolExecutor(workers) as pool:
                for call in calls:
                    pool.submit(call)
                results = await asyncio.wait_for(asyncio.gather(*(c.future for c in calls)), WAIT)
            assert results == list(range(n))
            assert all(c.settled for c in calls)

        loop.run_until_complete(main())
        assert 1 <= len(wakeups) <= n


def test_inbox_of_a_closed_loop_swallows_delivery(twin):
    loop = asyncio.new_event_loop()
    call = twin.hop.Call(lambda: 1, loop)
    loop.close()
    call()  # no RuntimeError: nobody awaits it any more
    assert not call.settled


def test_inbox_for_is_per_loop(twin):
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert twin.hop.inbox_for(first) is twin.hop.inbox_for(first)
        assert twin.hop.inbox_for(first) is not twin.hop.inbox_for(second)
        assert isinstance(twin.hop.inbox_for(first), twin.hop.Inbox)
    finally:
        first.close()
        second.close()


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_bells_of_closed_loops_are_freed(twin):
    # Each loop's inbox watches a bell (a descriptor); it must not outlive
    # the loop's use, whether the loop object lingers after close() or not.
    async def hop_once(loop):
        call = twin.hop.Call(lambda: 7, loop)
        worker = start(call)
        assert await asyncio.wait_for(call.future, WAIT) == 7
        join(worker)

    kept = []
    gc.collect()
    before = _open_fds()
    for i in range(40):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(hop_once(loop))
        loop.close()
        if i % 2:
            kept.append(loop)  # closed, but still held
        del loop
    gc.collect()
    # Only the last loop made may still hold its bell (until the next loop
    # comes, or it goes); a fresh loop's own self-pipe is closed with it.
    assert _open_fds() - before <= 1
    fresh = asyncio.new_event_loop()
    try:
        twin.hop.inbox_for(fresh)
        assert _open_fds() - before <= 1 + 3  # the fresh loop: self-pipe, epoll, bell
    finally:
        fresh.close()


_FREED_WITH_A_SIGNAL_PENDING = """
import asyncio, ctypes, functools, importlib, operator, os, signal, sys

hop = importlib.import_module(sys.argv[1])
loop = asyncio.new_event_loop()
inbox = hop.Inbox(loop)
if inbox.bell is None:
    print("no bell")
    sys.exit(0)
# Now only *held* holds the inbox: not the loop's reader, nor its selector
# (the compiled twin's spinning select).
loop.remove_reader(inbox.bell.read_fd)
held = [inbox, vars(loop._selector).pop("select", None)]
del inbox


def stop(signum, frame):
    raise SystemExit(7)


signal.signal(signal.SIGUSR1, stop)
try:
    # From C alone, no Python frame between: the signal arrives, then the
    # inbox is freed, with the handler still to run (libc's kill, as
    # os.kill runs the handler before it returns).
    kill = functools.partial(ctypes.CDLL(None).kill, os.getpid(), signal.SIGUSR1)
    list(map(operator.call, [kill, held.clear]))
    for _ in range(3):  # a check for pending signals, in case none ran yet
        pass
except SystemExit:
    pass
print("went on")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1") or sys.version_info < (3, 11), reason="POSIX signals")
def test_a_signal_pending_as_an_inbox_is_freed_does_not_end_the_process_there(twin):
    # Ctrl-C or SIGTERM while the collector frees an inbox: the compiled
    # twin's __dealloc__ once ran Python code, where the handler raised, and
    # Cython prints such an error with PyErr_PrintEx, which exits on a
    # SystemExit, mid-collection (a bench stopped so hung at exit).
    proc = subprocess.run(
        [sys.executable, "-c", _FREED_WITH_A_SIGNAL_PENDING, twin.hop.__name__],
        capture_output=True, text=True, timeout=60,
    )
    assert (proc.returncode, proc.stdout.split()[-1:]) in ((0, ["on"]), (0, ["bell"])), proc.stderr


def test_a_bell_wakes_the_loop_for_many_deliveries(twin):
    with own_loop() as loop:
        # The loop sleeps in select(); only the bell can wake it.
        inbox = twin.hop.inbox_for(loop)
        if inbox.bell is None:
            pytest.skip("this loop cannot watch a descriptor")

        class Item:
            def __init__(self, future):
                self.future = future

            def settle(self):
                self.future.set_result(threading.get_ident())

        async def main():
            for _ in range(200):
                item = Item(loop.create_future())
                worker = start(lambda: inbox.deliver(item))
                assert await asyncio.wait_for(item.future, WAIT) == threading.get_ident()
                join(worker)

        loop.run_until_complete(main())


def test_prompt_future_wakes_its_task_in_the_same_loop_pass(twin):
    with own_loop() as loop:
        # A plain future would only schedule the task's wake-up, behind the
        # callback that the item delivered just before it schedules.
        order = []

        class Marker:
            def settle(self):
                loop.call_soon(order.append, "callback scheduled first")

        async def waiter(call):
            await call.future
            order.append("task resumed")

        async def main():
            call = twin.hop.Call(lambda: None, loop)
            task = loop.create_task(waiter(call))
            await asyncio.sleep(0)  # the task now awaits the call's future
            inbox = twin.hop.inbox_for(loop)
            join(start(lambda: (inbox.deliver(Marker()), call())))  # one batch
            await asyncio.wait_for(task, WAIT)
            await asyncio.sleep(0)

        loop.run_until_complete(main())
        assert order == ["task resumed", "callback scheduled first"]


def test_prompt_future_cancel_and_callbacks_behave_as_a_future(twin):
    with own_loop() as loop:
        async def main():
            call = twin.hop.Call(lambda: None, loop)
            seen = []
            call.future.add_done_callback(lambda f: seen.append("first"))
            call.future.add_done_callback(lambda f: seen.append("second"))
            removed = call.future.remove_done_callback(print)
            assert removed == 0
            assert call.future.cancel() is True
            assert call.future.cancelled()
            await asyncio.sleep(0)
            assert sorted(seen) == ["first", "second"]  # soon, not at once
            assert call.cancel() is True

            other = twin.hop.Call(lambda: 5, loop)
            hook = lambda f: seen.append("never")
            other.future.add_done_callback(hook)
            assert other.future.remove_done_callback(hook) == 1
            join(start(other))
            assert await asyncio.wait_for(other.future, WAIT) == 5
            assert "never" not in seen

            task = loop.create_task(asyncio.wait_for(twin.hop.Call(lambda: 1, loop).future, 0.01))
            with pytest.raises(asyncio.TimeoutError):
                await task

        loop.run_until_complete(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.thread_unsafe(reason="forks")
def test_inboxes_are_forgotten_in_a_forked_child(twin):
    with own_loop() as loop:
        _forked_child_forgets_inboxes(twin, loop)


def _forked_child_forgets_inboxes(twin, loop):
    inbox = twin.hop.inbox_for(loop)
    pid = os.fork()
    if pid == 0:  # the child: exit at once, whatever happens
        try:
            code = 0 if twin.hop.inbox_for(loop) is not inbox else 1
        except BaseException:
            code = 2
        os._exit(code)
    deadline = time.monotonic() + WAIT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "forked child hung"
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    assert twin.hop.inbox_for(loop) is inbox


# -- context -----------------------------------------------------------------

var = contextvars.ContextVar("test_twins.var")
other = contextvars.ContextVar("test_twins.other")


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


class EqualityBomb:
    def __eq__(self, other):
        raise AssertionError("__eq__ must never run")

    __ne__ = __eq__
    __hash__ = object.__hash__


def _in_fresh_context(fn):
    return contextvars.Context().run(fn)


@pytest.mark.parametrize("cls", [AlwaysEqual, EqualityBomb])
def test_restore_context_compares_identity_only(twin, cls):
    def scenario():
        before, after = cls(), cls()
        var.set(before)
        context = contextvars.copy_context()
        context.run(var.set, after)
        twin.context.restore_context(context)
        assert var.get() is after
        # The same object on both sides: nothing to copy, nothing compared.
        twin.context.restore_context(contextvars.copy_context())
        assert var.get() is after

    _in_fresh_context(scenario)


def test_restore_context_walk(twin):
    def scenario():
        owner = twin.context.OWNER
        var.set("mine")
        other.set("kept")
        context = contextvars.Context()
        context.run(var.set, "theirs")
        context.run(owner.set, -12345)  # another thread's adoption: never copied
        twin.context.restore_context(context)
        assert var.get() == "theirs"
        assert other.get() == "kept"  # only what the context holds is copied
        assert owner.get() == threading.get_ident()

    _in_fresh_context(scenario)


def test_adopt_context(twin):
    def scenario():
        owner = twin.context.OWNER
        assert owner.get(None) is None
        twin.context.adopt_context()
        assert owner.get() == threading.get_ident()
        token_value = owner.get()
        twin.context.adopt_context()
        assert owner.get() is token_value  # already adopted: left alone
        owner.set("not an id")
        twin.context.adopt_context()
        assert owner.get() == threading.get_ident()

    _in_fresh_context(scenario)


def _hop(carrier, child):
    """carrier(child) on another thread, as a hop does it."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(carrier, child).result(WAIT)


def test_carrier_brings_changes_back(twin):
    def scenario():
        var.set("before")
        other.set("untouched")
        carrier = twin.context.ContextCarrier(contextvars.copy_context())

        def child():
            assert var.get() == "before"
            assert twin.context.OWNER.get() == threading.get_ident()  # adopted
            var.set("after")
            return "result"

        assert _hop(carrier, child) == "result"
        carrier.restore()
        assert var.get() == "after"
        assert other.get() == "untouched"
        assert twin.context.OWNER.get() == threading.get_ident()

    _in_fresh_context(scenario)


def test_carrier_unchanged_call(twin):
    def scenario():
        value = object()
        var.set(value)
        twin.context.adopt_context()
        carrier = twin.context.ContextCarrier(contextvars.copy_context())
        _hop(carrier, lambda: var.set(value))  # the same value: no change
        carrier.restore()
        assert var.get() is value
        assert twin.context.OWNER.get() == threading.get_ident()

    _in_fresh_context(scenario)


def test_carrier_restore_undoes_caller_changes_as_the_walk_does():
    # When the caller's own context moved meanwhile, restore() does exactly
    # what the full walk does: it copies the carried value back.
    def scenario(twin):
        var.set("carried")
        carrier = twin.context.ContextCarrier(contextvars.copy_context())
        var.set("changed by the caller")
        _hop(carrier, lambda: None)
        carrier.restore()
        return var.get()

    pure, compiled = both()
    assert _in_fresh_context(lambda: scenario(pure)) == "carried"
    assert _in_fresh_context(lambda: scenario(compiled)) == "carried"


def test_carrier_never_run(twin):
    def scenario():
        var.set(1)
        carrier = twin.context.ContextCarrier(contextvars.copy_context())
        carrier.restore()  # cancelled before it ran
        assert var.get() == 1
        assert twin.context.OWNER.get() == threading.get_ident()

    _in_fresh_context(scenario)


def test_carrier_errors_match():
    pure, compiled = both()

    def scenario(twin):
        context = contextvars.copy_context()
        carrier = twin.context.ContextCarrier(context)
        results = [outcome(carrier, lambda: 1 / 0)]
        results.append(outcome(context.run, carrier, lambda: None))  # already entered
        results.append(outcome(carrier, lambda: "fine"))  # exited after the failures
        return [(kind, message.replace(repr(context), "<context>")) for kind, message in results]

    assert _in_fresh_context(lambda: scenario(pure)) == _in_fresh_context(lambda: scenario(compiled))


def test_carrier_with_a_duck_typed_context(twin):
    class Context:
        def __init__(self):
            self.ran = 0

        def run(self, fn, *args):
            self.ran += 1
            return fn(*args)

        def items(self):
            return [(var, "duck")]

    def scenario():
        context = Context()
        carrier = twin.context.ContextCarrier(context)
        assert carrier.context is context
        assert _hop(carrier, lambda: "ok") == "ok"
        assert context.ran == 1
        carrier.restore()
        assert var.get() == "duck"

    _in_fresh_context(scenario)


def _restore_seconds(twin, variables: int) -> float:
    """Median time of a hop's restore() when the call changed nothing, in a
    context holding *variables* other variables."""

    def scenario():
        for i in range(variables):
            contextvars.ContextVar(f"v{i}").set(i)
        twin.context.adopt_context()
        times = []
        for _ in range(21):
            carrier = twin.context.ContextCarrier(contextvars.copy_context())
            _hop(carrier, lambda: None)
            started = time.perf_counter()
            for _ in range(20):
                carrier.restore()
            times.append((time.perf_counter() - started) / 20)
        return statistics.median(times)

    return _in_fresh_context(scenario)


def test_carrier_restore_does_not_walk_unchanged_variables():
    _, compiled = both()
    few = _restore_seconds(compiled, 1)
    many = _restore_seconds(compiled, 20000)
    # A walk over 20000 variables takes a millisecond or more.
    assert many < 10 * few + 50e-6, (few, many)


# -- Local -------------------------------------------------------------------


def _normalized(result, local):
    kind, value = result
    if kind == "ok":
        if isinstance(value, contextvars.ContextVar):
            return ("ok", "<ContextVar>")
        if isinstance(value, threading.local):
            return ("ok", "<threading.local>")
        if isinstance(value, type):
            return ("ok", value.__name__)
        return result
    return (kind, value.replace(repr(local), "<local>"))


def _local_operations():
    """(name, operation) pairs; each operation takes a Local."""
    return [
        ("set x", lambda l: setattr(l, "x", 1)),
        ("get x", lambda l: l.x),
        ("get missing", lambda l: l.missing),
        ("getattr default", lambda l: getattr(l, "missing", "default")),
        ("hasattr x", lambda l: hasattr(l, "x")),
        ("set x again", lambda l: setattr(l, "x", [2])),
        ("get x again", lambda l: l.x),
        ("set y", lambda l: setattr(l, "y", None)),
        ("get y", lambda l: l.y),
        ("del x", lambda l: delattr(l, "x")),
        ("get deleted", lambda l: l.x),
        ("del deleted", lambda l: delattr(l, "x")),
        ("del never set", lambda l: delattr(l, "never")),
        ("set _data", lambda l: setattr(l, "_data", 1)),
        ("get _data", lambda l: getattr(l, "_data")),
        ("del _data", lambda l: delattr(l, "_data")),
        ("set dunder", lambda l: setattr(l, "__custom__", 3)),
        ("get dunder", lambda l: l.__custom__),
        ("set __class__", lambda l: setattr(l, "__class__", int)),
        ("get __class__", lambda l: l.__class__),
        ("get __dict__", lambda l: type(getattr(l, "__dict__", None)).__name__),
        ("set odd name", lambda l: setattr(l, "a b", 4)),
        ("get odd name", lambda l: getattr(l, "a b")),
        ("get non-str", lambda l: getattr(l, 5)),
        ("dunder getattribute non-str", lambda l: l.__getattribute__(5)),
        ("set non-str", lambda l: l.__setattr__(5, "five")),
        ("peek y", lambda l: _peek_of(l)(l, "y", "d")),
        ("peek missing", lambda l: _peek_of(l)(l, "missing", "d")),
        ("get y at the end", lambda l: l.y),
    ]


def _peek_of(local):
    module = sys.modules[type(local).__module__]
    return module.peek


def _run_table(twin, critical):
    local = twin.local.Local(thread_critical=critical)
    return [(name, _normalized(outcome(op, local), local)) for name, op in _local_operations()]


@pytest.mark.parametrize("critical", [False, True], ids=["default", "thread_critical"])
def test_local_operations_match_sync(critical):
    pure, compiled = both()
    expected = _in_fresh_context(lambda: _run_table(pure, critical))
    assert _in_fresh_context(lambda: _run_table(compiled, critical)) == expected


@pytest.mark.parametrize("critical", [False, True], ids=["default", "thread_critical"])
def test_local_operations_match_in_a_running_loop(critical):
    pure, compiled = both()

    async def table(twin):
        return _run_table(twin, critical)

    expected = asyncio.run(table(pure))
    assert asyncio.run(table(compiled)) == expected


def test_local_types(twin):
    local = twin.local
    assert type(local.Local()) is local._DefaultLocal
    assert type(local.Local(thread_critical=True)) is local._ThreadCriticalLocal
    assert type(local.Local(True)) is local._ThreadCriticalLocal
    assert type(local.Local.__new__(local.Local)) is local._DefaultLocal
    assert isinstance(local.Local(), local.Local)
    assert isinstance(local.Local(thread_critical=True), local.Local)

    class Mine(local.Local):
        pass

    for make in (Mine, lambda: Mine(thread_critical=True), local._DefaultLocal, local._ThreadCriticalLocal):
        with pytest.raises(TypeError) as caught:
            make()
        assert str(caught.value) == "asgiref.local.Local cannot be subclassed"


def test_local_data_is_the_backing_context_var(twin):
    local = twin.local.Local()
    assert isinstance(local._data, contextvars.ContextVar)
    assert local._data.name == "asgiref.local"
    local.x = 1
    storage = local._data.get()
    assert type(storage) is twin.local._Storage
    assert storage.thread_id == threading.get_ident()
    assert storage.data == {"x": 1}
    local.x = 2
    assert storage.data == {"x": 1}  # a write never mutates published storage


def test_local_storage_visibility_by_thread_tag(twin):
    """``_Storage(thread_id, data)`` is visible iff thread_id is this thread
    or this thread adopted the context."""

    def scenario():
        local = twin.local.Local()
        owner = twin.context.OWNER
        local._data.set(twin.local._Storage(threading.get_ident() + 1, {"x": "foreign"}))
        assert not hasattr(local, "x")
        assert twin.local.peek(local, "x", "nope") == "nope"
        local.y = "mine"  # a write starts from no visible data
        assert not hasattr(local, "x")
        local._data.set(twin.local._Storage(threading.get_ident() + 1, {"x": "foreign"}))
        owner.set(threading.get_ident())
        assert local.x == "foreign"
        owner.set(threading.get_ident() + 7)
        assert not hasattr(local, "x")
        local._data.set(twin.local._Storage(threading.get_ident(), {"x": "tagged"}))
        assert local.x == "tagged"

    _in_fresh_context(scenario)


def test_local_inherited_context_is_not_visible_until_adopted(twin):
    local = twin.local.Local()
    local.x = "main"
    context = contextvars.copy_context()  # as Python 3.14's thread_inherit_context

    def in_thread():
        seen = [hasattr(local, "x")]
        twin.context.adopt_context()
        seen.append(getattr(local, "x", None))
        return seen

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(context.run, in_thread).result(WAIT) == [False, "main"]


def test_thread_critical_local_is_per_thread(twin):
    local = twin.local.Local(thread_critical=True)
    local.x = "main"

    def in_thread():
        seen = [hasattr(local, "x")]
        local.x = "thread"
        seen.append(local.x)
        return seen

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(in_thread).result(WAIT) == [False, "thread"]
    assert local.x == "main"


def test_thread_critical_local_is_per_task_in_async_code(twin):
    local = twin.local.Local(thread_critical=True)

    async def task(value):
        local.x = value
        await asyncio.sleep(0)
        return local.x

    async def main():
        local.x = "parent"
        results = await asyncio.gather(task("a"), task("b"))
        return results, local.x

    assert asyncio.run(main()) == (["a", "b"], "parent")
    assert not hasattr(local, "x")  # sync code: a different storage


@pytest.mark.parametrize("critical", [False, True])
def test_local_leaves_no_reference_cycles(twin, critical):
    with Garbage() as garbage:
        try:
            getattr(twin.local.Local(thread_critical=critical), "missing")
        except AttributeError:
            pass
        local = twin.local.Local(thread_critical=critical)
        local.x = 1
        del local.x
        del local
    assert garbage.count == 0, garbage.sample


# -- the same names ------------------------------------------------------------


# Private attributes that are reached from outside a twin (asgiref's tests,
# sync.py, code written against asgiref's internals of the same names): the
# rest of a class's private names are its own business.
REACHED = {"_data", "_storage", "_task_vars", "_task_var", "_DefaultLocal._lock"}


def _names(module):
    """Names a twin module defines, and its classes' public members."""
    found = set()
    for name, value in vars(module).items():
        if name.startswith("__") or isinstance(value, types.ModuleType):
            continue
        if isinstance(value, type) or callable(value):
            if getattr(value, "__module__", None) != module.__name__:
                continue  # imported (typing, weakref, ...)
        elif not isinstance(value, contextvars.ContextVar):
            continue  # constants and caches
        if name.startswith("_") and not isinstance(value, type):
            continue  # private helper functions
        found.add(name)
        if isinstance(value, type):
            found.update(f"{name}.{attr}" for attr in vars(value)
                         if not attr.startswith("_") or attr in REACHED
                         or f"{name}.{attr}" in REACHED)
    return found


# What one twin has and the other, unavoidably, does not: name -> why.
COMPILED_ONLY = {
    # The compiled loop spins before sleeping while calls for it are out
    # (_SpinningSelect reads the count); the pure twin cannot spin without
    # the GIL, so it keeps no count that nothing would read.
    "hop.Inbox.outstanding": "the count only the compiled twin's spinning reads",
    "hop._SpinningSelect": "the compiled twin's spinning select; the pure twin never spins",
}
PURE_ONLY: "dict[str, str]" = {}


@pytest.mark.parametrize("module", MODULES)
def test_twins_have_the_same_names(module):
    pure, compiled = both()
    pure_names = _names(getattr(pure, module))
    compiled_names = _names(getattr(compiled, module))
    only = {f"{module}.{name}" for name in compiled_names - pure_names}
    assert only == {n for n in COMPILED_ONLY if n.startswith(f"{module}.")}, \
        f"only the compiled twin has {sorted(only)}"
    only = {f"{module}.{name}" for name in pure_names - compiled_names}
    assert only == {n for n in PURE_ONLY if n.startswith(f"{module}.")}, \
        f"only the pure twin has {sorted(only)}"


def _defined_in_order(path):
    """The names a module's source defines, in order, and for each class the
    names its body defines (``__slots__`` entries where they are declared)."""

    def body_names(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield node.name
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                yield node.target.id
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == "__slots__":
                        yield from ast.literal_eval(node.value)
                    elif isinstance(target, ast.Name):
                        yield target.id
            elif isinstance(node, (ast.If, ast.Try)):
                yield from body_names(node.body)

    tree = ast.parse(path.read_text())
    order = {"": list(dict.fromkeys(body_names(tree.body)))}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            order[node.name] = list(dict.fromkeys(body_names(node.body)))
    return order


@pytest.mark.parametrize("module", MODULES)
def test_twins_define_their_names_in_the_same_order(module):
    # The pure twin's source against the compiled twin's stub: the compiled
    # module's dict is in Cython's order (its types first), not the .pyx's,
    # and the .pyx is not Python; the stub lists what the compiled module has
    # (test_typing_strict.py holds it to the module), in the .pyx's order.
    package = Path(asgiref_fast.__file__).parent
    pure = _defined_in_order(package / "_pure" / f"{module}.py")
    stub = _defined_in_order(package / "_cy" / f"{module}.pyi")
    assert set(stub) <= set(pure), "a class of the stub is not one of the pure twin"
    for scope, stub_names in stub.items():
        shared = set(stub_names) & set(pure[scope])
        pure_order = [n for n in pure[scope] if n in shared]
        stub_order = [n for n in stub_names if n in shared]
        assert pure_order == stub_order, f"{module}.{scope or '<module>'}: pure {pure_order}, stub {stub_order}"
