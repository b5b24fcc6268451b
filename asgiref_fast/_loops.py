"""Warm event loops for ``async_to_sync`` called from plain sync code.

``run(coro)`` stands in for ``asyncio.run(coro)`` on a lane thread. Creating
and closing a loop is most of asyncio.run's cost, so each lane thread keeps
its loop between calls, as long as it can prove that the loop is as new again
after each call: asyncio.run's clean-up done (leftover tasks cancelled and
awaited, async generators finalised, the default executor shut down), its
pending callbacks and timers dropped, and then the loop's instance state
compared with a snapshot taken when it was made. Settings held as plain
values (debug, slow_callback_duration, the exception handler, the task
factory...) are put back; anything else that differs (an attribute set on the
loop, a descriptor left registered), or anyone still holding the loop (a
future, a lock bound to it, a handle, the loop itself, even weakly), and the
loop is closed as asyncio.run would close it; the next call gets a new one.
Only the default policy's own loop class is ever reused: a user's policy, or
uvloop's, makes each call's loop, as under asyncio.run.

A forked child inherits the warm loops of threads it does not have. Their
epoll instances are shared with the parent, so closing one the usual way
(which Python does as the dead thread's data is freed) would unregister the
parent's self-pipe and leave its loop deaf. The child detaches each from the
shared instance first, then closes it.
"""

import asyncio
import atexit
import contextvars
import operator
import os
import sys
import threading
import weakref
from asyncio import coroutines
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Coroutine
from typing import Any

from ._fork import on_fork
from ._impl import hop

_thread = threading.local()

# Every warm loop, weakly. Across a fork the list _forking holds them, so that
# none is freed (and closed) in the child before _after_fork_in_child sees it.
_warm: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()
_forking: "list[asyncio.AbstractEventLoop]" = []

if sys.version_info >= (3, 14):
    # 3.14 deprecates the policy API (3.16 removes it), but asyncio.run still
    # makes its loop through the policy, with these.
    _current_policy = getattr(asyncio.events, "_get_event_loop_policy", lambda: None)
    _policies = asyncio.windows_events if sys.platform == "win32" else asyncio.unix_events
    _DefaultPolicy = getattr(_policies, "_DefaultEventLoopPolicy", type(None))
else:
    _current_policy = asyncio.get_event_loop_policy
    _DefaultPolicy = asyncio.DefaultEventLoopPolicy

if sys.version_info >= (3, 12):  # asyncio.run bounds the executor's shutdown
    _EXECUTOR_JOIN_TIMEOUT: "tuple[float, ...]" = (asyncio.constants.THREAD_JOIN_TIMEOUT,)
else:
    _EXECUTOR_JOIN_TIMEOUT = ()

if sys.platform != "win32" and type(getattr(os.environ, "_data", None)) is dict:
    _environ, _environ_data = os.environ, os.environ._data

    def _debug_mode() -> bool:
        """What debug mode a new loop starts in: asyncio's own test, without
        os.environ's encoding of the name on each read."""
        if os.environ is not _environ:  # replaced wholesale: ask it
            return bool(coroutines._is_debug_mode())
        if sys.flags.dev_mode:
            return True
        return not sys.flags.ignore_environment and bool(_environ_data.get(b"PYTHONASYNCIODEBUG"))
else:
    _debug_mode = coroutines._is_debug_mode

# Instance attributes whose values can be put back exactly.
_PLAIN = (type(None), bool, int, float, str)


def run(coro: "Coroutine[Any, Any, Any]") -> Any:
    """Run *coro* to completion on this thread's warm loop; return its result."""
    loop = getattr(_thread, "loop", None)
    policy = _current_policy()
    if loop is not None and getattr(_thread, "policy", None) is not policy:
        close()  # the policy changed (uvloop.install()...): a loop of its own
        loop = None
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.events.new_event_loop()  # as asyncio.run makes it
        _thread.policy = policy
        _warm.add(loop)
        _thread.as_new = _snapshot(loop, policy)
    else:
        loop.set_debug(_debug_mode())  # as a new loop reads it, now
    asyncio.events.set_event_loop(loop)
    task = None
    try:
        task = loop.create_task(_stop_when_done(loop, coro), context=contextvars.copy_context())
        loop.run_forever()
        if not task.done():  # something else stopped the loop
            raise RuntimeError("Event loop stopped before Future completed.")
        return task.result()
    finally:
        task = None  # it holds the loop: not to be counted as someone else's
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
                loop.run_until_complete(loop.shutdown_default_executor(*_EXECUTOR_JOIN_TIMEOUT))
        finally:
            asyncio.events.set_event_loop(None)
            if not _scrub(loop, _thread.as_new):
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
    _thread.loop = _thread.as_new = None
    if loop is not None and not loop.is_closed():
        loop.close()


def _close_at_exit() -> None:
    # The warm loops of lanes still alive at exit are not closed by anyone:
    # free-threaded 3.13 then frees them with the lane threads' data as it
    # finalizes, in a cycle whose self-pipe sockets it may close first, and
    # each loop's __del__ fails ("Exception ignored ... Invalid file
    # descriptor: -1"). Close them before that, as asyncio.run would have;
    # a loop running a call still (a daemon thread's) is left to its lane.
    for loop in _copy_of_warm():
        if not loop.is_closed() and not loop.is_running():
            loop.close()


def _copy_of_warm() -> "list[asyncio.AbstractEventLoop]":
    # Lanes may add loops meanwhile; a copy made while one does is retried,
    # as asyncio.all_tasks does.
    for _ in range(100):
        try:
            return list(_warm)
        except RuntimeError:  # the set changed size during the copy
            continue
    return []


atexit.register(_close_at_exit)


def _before_fork() -> None:
    _forking[:] = _copy_of_warm()


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
                "message": "unhandled exception during asyncio.run() shutdown",
                "exception": task.exception(),
                "task": task,
            })


class _AsNew:
    """What a loop was like when it was made, to tell whether it is again."""

    __slots__ = ("plain", "others", "objects", "empty", "scheduled", "size", "registered", "ref", "holders")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        state = loop.__dict__
        self.plain = {k: v for k, v in state.items() if type(v) in _PLAIN}
        # The rest (the ready queue, the timer heap, the selector, the
        # self-pipe's sockets, registries of transports, generators,
        # signal handlers...) must still be the same objects, and the
        # registries as empty as they are now (a weak one is looked at
        # through its plain container: as cheap as a dict's).
        others = {k: v for k, v in state.items() if type(v) not in _PLAIN}
        self.others = operator.itemgetter(*others)
        self.objects = tuple(others.values())
        self.scheduled = loop._scheduled
        self.empty = tuple(
            getattr(v, "data", v) for k, v in others.items()
            if k not in ("_ready", "_scheduled") and hasattr(type(v), "__len__") and not len(v)
        )
        self.size = len(state)
        # The self-pipe, and the bell of the loop's inbox.
        self.registered = len(loop._selector.get_map())
        # The loop's plain weak reference: weakref.ref(loop) hands this same
        # one to anyone who asks, so its holders are counted too.
        self.ref = weakref.ref(loop)
        self.holders = (0, 0, 0)


def _snapshot(loop: asyncio.AbstractEventLoop, policy: Any) -> "_AsNew | None":
    # Only asyncio's own loop from the default policy can be proven as new;
    # any other is closed after each call.
    if type(policy) is not _DefaultPolicy and policy is not None:
        return None
    if type(loop) is not asyncio.SelectorEventLoop or not isinstance(loop, BaseSelectorEventLoop):
        return None
    try:
        # The loop's inbox (for hops back to it) is the loop's own: made
        # now, so that its references to the loop count as the loop's too.
        hop.inbox_for(loop)
        as_new = _AsNew(loop)
    except AttributeError:  # a Python whose loop internals differ
        return None
    as_new.holders = _holders(loop, as_new)
    return as_new


def _holders(loop: asyncio.AbstractEventLoop, as_new: _AsNew) -> "tuple[int, int, int]":
    """How many hold *loop*, strongly or weakly. Called from the same depth
    (run -> _snapshot or _scrub -> here) both times, so that our own frames
    count the same."""
    return sys.getrefcount(loop), weakref.getweakrefcount(loop), sys.getrefcount(as_new.ref)


def _scrub(loop: asyncio.AbstractEventLoop, as_new: "_AsNew | None") -> bool:
    """Reset *loop* to as-new; False if that cannot be done with certainty."""
    if as_new is None:
        return False
    state = loop.__dict__
    try:
        if len(loop._selector.get_map()) != as_new.registered:
            return False  # a descriptor left registered
        # Callbacks and timers are dropped as loop.close() drops them: not
        # cancelled. The loop may have swapped in a new timer heap (to shed
        # cancelled timers): the first one goes back.
        state["_ready"].clear()
        state["_scheduled"].clear()
        as_new.scheduled.clear()
        state["_scheduled"] = as_new.scheduled
    except (AttributeError, KeyError):  # a Python whose loop internals differ
        return False
    state.update(as_new.plain)  # the settings, put back
    try:
        if (
            len(state) != as_new.size  # an attribute added
            or not all(map(operator.is_, as_new.others(state), as_new.objects))
            or any(as_new.empty)
        ):
            return False
    except KeyError:  # an attribute removed
        return False
    # Last, once the call's own references are gone: anyone else's.
    return _holders(loop, as_new) == as_new.holders


on_fork("loops", before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
