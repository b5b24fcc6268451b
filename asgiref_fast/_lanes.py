"""Lanes: warm worker threads, each serving one thread-sensitive context at a
time.

A lane is a daemon thread with a work queue. A ``LaneExecutor`` is one
context's lease on a lane (a ThreadSensitiveContext's, an
AsyncSingleThreadContext's, the process-wide default's): on first use it
borrows an idle lane from the pool, or starts one; ``shutdown()`` ends the
lease. A lane that is idle then goes straight back to the pool; one still
busy with the context's work returns only once it has finished it, so the
next context never waits behind the last one's leftovers. Nothing is started,
joined or woken per context while idle lanes are available.
"""

import atexit
import contextvars
import itertools
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from . import _fork, _loops
from ._env import number
from ._impl import workqueue
from .current_thread_executor import FutureWork

# At most this many lanes wait idle; each retires after this long unused.
# Read once, at import.
MAX_IDLE_LANES = int(number("ASGIREF_FAST_MAX_IDLE_LANES", 64, integer=True))
IDLE_SECONDS = number("ASGIREF_FAST_IDLE_SECONDS", 60.0, minimum=0.001)  # 0 would busy-wait

_names = itertools.count(1)


class LaneExecutor(Executor):
    """An Executor that runs everything, in order, on one borrowed thread."""

    def __init__(self, *, fresh: bool = False) -> None:
        # Orders pushes against shutdown: nothing of this lease may reach
        # the lane after it has been handed back.
        self._lock = threading.Lock()
        self._lane: "_Lane | None" = None
        self._fresh = fresh  # start a new lane rather than borrow an idle one
        self._closed = False
        self._end: "_EndOfLease | None" = None
        self._context: "contextvars.Context | None" = None

    def push(self, item: Any, handoff: bool = False) -> None:
        """Queue *item*, a call that reports its own outcome (no Future);
        *handoff* says the caller is about to wait for it."""
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            lane = self._lane
            if lane is None or lane.forks != _fork.generation:  # new, or forked since
                lane = self._lane = _pool.borrow(self._fresh)
            lane.queue.push(item, handoff)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        # Submitted work of one lease shares a context of its own, as the
        # work of one new thread would.
        if self._context is None:
            self._context = contextvars.Context()
        work = FutureWork(self._context.run, (fn, *args), kwargs)
        self.push(work, handoff=True)  # a submitter waits for the future
        return work.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        lane = self._lane
        if lane is not None and lane.forks != _fork.generation:
            return  # lent before a fork: that lane does not exist in this process
        with self._lock:
            first = not self._closed
            self._closed = True
            lane = self._lane
            if lane is None:
                return
            if cancel_futures:
                for item in lane.queue.take_all():
                    if isinstance(item, _EndOfLease):
                        lane.queue.push(item)
                    else:
                        item.cancel()
            if first:
                self._end = lane.pool.give_back(lane)
            end = self._end
        if wait and end is not None and lane.ident != threading.get_ident():
            end.done.result()

    def release(self) -> "Future[None] | None":
        """End the lease without waiting: None if the lane was idle (it is
        back in the pool), else a future done once the lane has run the
        lease's queued and running work."""
        self.shutdown(wait=False)
        end, lane = self._end, self._lane
        if end is None or lane is None or lane.ident == threading.get_ident():
            return None  # idle, or this is the lane: nothing it could wait for
        return end.done

    def __del__(self) -> None:
        # A context dropped without exiting (its entry in a weak registry
        # gone) still hands its lane back.
        self.shutdown(wait=False)


class _EndOfLease:
    """Queued behind a busy lease's last work: the lane is free once here."""

    def __init__(self, lane: "_Lane") -> None:
        self._lane = lane
        self.done: "Future[None]" = Future()

    def __call__(self) -> None:
        self._lane.pool.park(self._lane)
        if self.done.set_running_or_notify_cancel():  # False if someone cancelled it
            self.done.set_result(None)


def lend_once(fn: Callable[[], None], then: Callable[[], None]) -> None:
    """Run *fn* on an idle lane (or a new one), then return the lane to the
    pool, then call *then* (on the lane): whoever *then* wakes finds the lane
    free again for its next call."""
    lane = _pool.borrow()
    lane.queue.push(_Once(lane, fn, then), handoff=True)  # the caller waits for it


class _Once:
    __slots__ = ("_lane", "_fn", "_then")

    def __init__(self, lane: "_Lane", fn: Callable[[], None], then: Callable[[], None]) -> None:
        self._lane, self._fn, self._then = lane, fn, then

    def __call__(self) -> None:
        try:
            self._fn()
        finally:
            self._lane.pool.park(self._lane)
            self._then()


class _Lane:
    """One pooled daemon thread and its work queue."""

    def __init__(self, pool: "_LanePool") -> None:
        self.queue = workqueue.WorkQueue()
        self.ident: "int | None" = None
        self.pool = pool
        self.parked_at = 0.0  # when it last went back to the pool (monotonic)
        self.forks = _fork.generation  # the process it belongs to, as forks go
        self.thread = threading.Thread(
            target=self._serve, name=f"asgiref_fast-lane-{next(_names)}", daemon=True
        )
        self.thread.start()

    def _serve(self) -> None:
        self.ident = threading.get_ident()
        pool, pop = self.pool, self.queue.pop
        try:
            wait = pool.idle_seconds
            while True:
                item = pop(wait)
                if item is not None:
                    item()
                    del item
                    wait = pool.idle_seconds
                elif self.queue.closed:
                    return
                else:
                    wait = pool.retire(self)
                    if not wait:
                        return
        finally:
            _run_exit_hooks()
            _loops.close()


# -- What a lane's thread holds, released before it ends ----------------------

_exit_hooks: "list[Callable[[], None]]" = []


def at_lane_exit(hook: Callable[[], None]) -> Callable[[], None]:
    """Register *hook* to run on every lane's own thread just before that
    thread ends (the lane retires: idle too long, one idle lane too many, or
    the interpreter exits), to release what the thread holds: a connection
    in a ``threading.local``, say. Hooks run last registered first, never on
    any other thread, and never in a forked child for its parent's lanes
    (those threads do not exist there). An exception is reported through
    ``sys.unraisablehook`` and the other hooks still run. Returns *hook*, so
    it serves as a decorator."""
    _exit_hooks.append(hook)
    return hook


def _close_django_connections() -> None:
    # Django keeps a database connection per thread: one a lane opened would
    # otherwise stay open, held by its dead thread's storage, until the
    # garbage collector happens to free it. Only if Django's ORM is in use.
    db, conf = sys.modules.get("django.db"), sys.modules.get("django.conf")
    connections = getattr(db, "connections", None)
    if connections is None or conf is None or not conf.settings.configured:
        return  # no connection can have been made: settings are read on the first
    try:
        opened = connections.all(initialized_only=True)
    except TypeError:  # Django < 4.1: every alias, none made here for it
        opened = [connections[alias] for alias in connections if hasattr(connections._connections, alias)]
    for connection in opened:
        connection.close()


def _run_exit_hooks() -> None:
    for hook in reversed([_close_django_connections, *_exit_hooks]):
        try:
            hook()
        except BaseException as exc:
            sys.unraisablehook(_Unraisable(exc, hook))  # type: ignore[arg-type]  # its fields


class _Unraisable:
    # What sys.unraisablehook reads (its own type cannot be made from Python).
    def __init__(self, exc: BaseException, hook: Callable[[], None]) -> None:
        self.exc_type, self.exc_value, self.exc_traceback = type(exc), exc, exc.__traceback__
        self.err_msg = "Exception ignored in a lane exit hook"
        self.object = hook


class _LanePool:
    def __init__(self, max_idle: int = MAX_IDLE_LANES, idle_seconds: float = IDLE_SECONDS) -> None:
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: "list[_Lane]" = []  # most recently parked last

    def borrow(self, fresh: bool = False) -> _Lane:
        if not fresh:
            with self._lock:
                if self._idle:
                    return self._idle.pop()
        return _Lane(self)

    def give_back(self, lane: _Lane) -> "_EndOfLease | None":
        """End a lease on *lane*: park it now if it is idle, else once its
        queued work is done (the returned marker says when)."""
        if lane.queue.idle():
            self.park(lane)
            return None
        end = _EndOfLease(lane)
        lane.queue.push(end)
        return end

    def park(self, lane: _Lane) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                lane.parked_at = time.monotonic()
                self._idle.append(lane)
                return
        lane.queue.close()  # enough lanes wait idle already: this one retires

    def retire(self, lane: _Lane) -> float:
        """Called by *lane* when it has had nothing to do for a while:
        retire it if it has waited in the pool for ``idle_seconds`` (0.0);
        otherwise how long it should wait before asking again. Its idle time
        counts from when it was parked, not from its last work: a lane lent
        for long without work is not retired the moment it comes back."""
        with self._lock:
            if lane not in self._idle:
                return self.idle_seconds  # lent
            left = lane.parked_at + self.idle_seconds - time.monotonic()
            if left > 0:
                return left
            self._idle.remove(lane)
        lane.queue.close()
        return 0.0

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)

    def retire_idle(self, seconds: float) -> None:
        """Retire every idle lane now, waiting up to *seconds* in all for
        their threads to end (their exit hooks to run)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for lane in idle:
            lane.queue.close()
        deadline = time.monotonic() + seconds
        for lane in idle:
            if lane.thread is not threading.current_thread():
                lane.thread.join(max(0.0, deadline - time.monotonic()))


_pool = _LanePool()


def pool() -> _LanePool:
    return _pool


def _reset_after_fork() -> None:
    # The child has only the thread that forked: no lane exists in it.
    global _pool
    _pool = _LanePool()


_fork.on_fork("lanes", after_in_child=_reset_after_fork)


# Lanes are daemon threads, which the interpreter stops wherever they are as
# it exits: the idle ones retire first, so that their exit hooks run (a
# database sees its connections closed, not dropped). Bounded: a hook that
# hangs does not hold the exit up for long. Lanes still lent are left alone.
EXIT_SECONDS = 5.0
atexit.register(lambda: _pool.retire_idle(EXIT_SECONDS))
