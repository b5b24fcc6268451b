"""Warm event loops for ``async_to_sync`` called from plain sync code.

``run(coro)`` stands in for ``asyncio.run(coro)`` on a lane thread. Creating
and closing a loop is most of asyncio.run's cost, so each lane thread keeps
its loop between calls, and scrubs it after each call back to what a fresh
loop would be: leftover tasks cancelled and awaited, async generators
finalised, pending callbacks and timers dropped, the default executor shut
down, and per-loop settings reset. A loop that cannot be scrubbed for sure
(another loop implementation, file descriptors left registered) is closed
instead, and the next call gets a new one.

A forked child inherits the warm loops of threads it does not have. Their
epoll instances are shared with the parent, so closing one the usual way
(which Python does as the dead thread's data is freed) would unregister the
parent's self-pipe and leave its loop deaf. The child detaches each from the
shared instance first, then closes it.
"""

import asyncio
import contextvars
import os
import threading
import weakref
from asyncio import coroutines
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Coroutine
from typing import Any

from ._impl import find_inbox

_thread = threading.local()

# Every warm loop, weakly. Across a fork the list _forking holds them, so that
# none is freed (and closed) in the child before _after_fork_in_child sees it.
_warm: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()
_forking: "list[asyncio.AbstractEventLoop]" = []


def run(coro: "Coroutine[Any, Any, Any]") -> Any:
    """Run *coro* to completion on this thread's warm loop; return its result."""
    loop = getattr(_thread, "loop", None)
    policy = asyncio.get_event_loop_policy()
    if loop is not None and getattr(_thread, "policy", None) is not policy:
        close()  # the policy changed (uvloop.install()...): a loop of its own
        loop = None
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
        _thread.policy = policy
        _warm.add(loop)
    asyncio.set_event_loop(loop)
    try:
        task = loop.create_task(_stop_when_done(loop, coro), context=contextvars.copy_context())
        loop.run_forever()
        if not task.done():  # something else stopped the loop
            raise RuntimeError("Event loop stopped before Future completed.")
        return task.result()
    finally:
        try:
            # asyncio.run's clean-up turns of the loop also run the callbacks
            # still pending. They are skipped only when there is nothing for
            # them to do: most calls leave no callback, no generator, and
            # start no executor.
            pending = bool(getattr(loop, "_ready", True))
            if pending:  # the pass run_until_complete would end with
                loop.call_soon(loop.stop)
                loop.run_forever()
            _finish_leftover_tasks(loop)
            if pending or getattr(loop, "_asyncgens", True):
                loop.run_until_complete(loop.shutdown_asyncgens())
            if pending or getattr(loop, "_default_executor", True) is not None:
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            if not _scrub(loop):
                close()


async def _stop_when_done(loop: asyncio.AbstractEventLoop, coro: "Coroutine[Any, Any, Any]") -> Any:
    # Stops the loop in the pass that finishes *coro*: run_until_complete
    # would take one more, for the task's done-callback.
    try:
        return await coro
    finally:
        loop.stop()


def close() -> None:
    """Close this thread's warm loop, if any (a lane does, as it retires)."""
    loop = getattr(_thread, "loop", None)
    _thread.loop = None
    if loop is not None and not loop.is_closed():
        loop.close()


def _before_fork() -> None:
    # Lanes may add loops meanwhile; a copy made while one does is retried,
    # as asyncio.all_tasks does.
    for _ in range(100):
        try:
            _forking[:] = list(_warm)
            return
        except RuntimeError:  # the set changed size during the copy
            continue


def _after_fork_in_parent() -> None:
    _forking.clear()


def _after_fork_in_child() -> None:
    inherited = _forking[:]
    _forking.clear()
    _warm.clear()
    for loop in inherited:
        if loop.is_closed() or loop.is_running():  # running: the forking thread's own
            continue
        selector = getattr(loop, "_selector", None)
        if selector is None or not hasattr(selector, "fileno"):
            continue  # nothing shared that we know how to detach: leave it be
        # Point the shared epoll's descriptor at /dev/null: closing the loop
        # then unregisters nothing in the parent (the failures are ignored).
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.dup2(null, selector.fileno())
        finally:
            os.close(null)
        loop.close()


def _finish_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    # As asyncio.run does: cancel what the call left running, and wait.
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({
                "message": "unhandled exception during async_to_sync() shutdown",
                "exception": task.exception(),
                "task": task,
            })


def _scrub(loop: asyncio.AbstractEventLoop) -> bool:
    """Reset *loop* to as-new; False if that cannot be done with certainty."""
    if type(loop) is not asyncio.SelectorEventLoop or not isinstance(loop, BaseSelectorEventLoop):
        return False
    try:
        # Only the loop's own self-pipe may remain registered, and the bell
        # of its inbox, which belongs to the loop as much.
        inbox = find_inbox(loop)
        if len(loop._selector.get_map()) != 1 + (inbox is not None and inbox.bell is not None):
            return False
        for handle in loop._ready:
            handle.cancel()
        loop._ready.clear()
        for handle in loop._scheduled:
            handle.cancel()
        loop._scheduled.clear()
        loop._timer_cancelled_count = 0
        loop._asyncgens_shutdown_called = False
        loop._executor_shutdown_called = False
        loop._default_executor = None
        loop.set_exception_handler(None)
        loop.set_task_factory(None)
        loop.set_debug(coroutines._is_debug_mode())
    except AttributeError:  # a Python whose loop internals differ
        return False
    return True


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
