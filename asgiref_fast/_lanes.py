"""Lanes: warm worker threads, each serving one thread-sensitive context at a
time.

A ``LaneExecutor`` is the queue of one context (a ThreadSensitiveContext, an
AsyncSingleThreadContext, the process-wide default). On its first use it
borrows an idle lane from the pool, or starts one; ``shutdown()`` closes the
queue, and the lane goes back to the pool only after it has run everything
queued before. Nothing is started or joined per context when lanes are idle.
"""

import contextvars
import itertools
import os
import threading
from concurrent.futures import Executor, Future
from typing import Any

from . import _loops
from ._impl import WorkQueue
from .current_thread_executor import FutureWork

# At most this many lanes wait idle; each retires after this long unused.
MAX_IDLE_LANES = 64
IDLE_SECONDS = 60.0

_names = itertools.count(1)


class LaneExecutor(Executor):
    """An Executor that runs everything, in order, on one borrowed thread."""

    def __init__(self, *, fresh: bool = False) -> None:
        self._queue = WorkQueue()
        self._fresh = fresh  # start a new lane rather than borrow an idle one
        self._lent = False
        self._lend_lock = threading.Lock()
        self._thread_id: "int | None" = None

    def _push(self, item) -> None:
        if not self._queue.push(item):
            raise RuntimeError("cannot schedule new futures after shutdown")
        if not self._lent:
            with self._lend_lock:
                if not self._lent:
                    self._lent = True
                    _pool.lend(self)

    def submit(self, fn, /, *args: Any, **kwargs: Any) -> "Future[Any]":
        work = FutureWork(fn, args, kwargs)
        self._push(work)
        return work.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for item in self._queue.take_all():
                item.cancel()
        drained: "Future[None] | None" = None
        if wait and self._lent and self._thread_id != threading.get_ident():
            drained = Future()
            self._queue.push(lambda: drained.set_result(None))
        self._queue.close()
        if drained is not None:
            drained.result()


class _Lane:
    """One pooled daemon thread. It serves one LaneExecutor until that is
    shut down and drained, then waits in its mailbox for the next one."""

    def __init__(self, pool: "_LanePool") -> None:
        self._pool = pool
        self._mailbox = WorkQueue()
        threading.Thread(
            target=self._serve, name=f"asgiref_fast-lane-{next(_names)}", daemon=True
        ).start()

    def _serve(self) -> None:
        pool = self._pool
        while True:
            executor = self._mailbox.pop(pool.idle_seconds)
            if executor is None:
                if pool.retire(self):
                    _loops.close()
                    return
                continue  # handed work just as the wait timed out
            # Each lease starts from an empty context, as a new thread would.
            contextvars.Context().run(self._serve_lease, executor)
            executor = None
            if not pool.park(self):
                _loops.close()
                return

    @staticmethod
    def _serve_lease(executor: LaneExecutor) -> None:
        executor._thread_id = threading.get_ident()
        pop = executor._queue.pop
        while (item := pop()) is not None:
            item()
            del item


class _LanePool:
    def __init__(self, max_idle: int = MAX_IDLE_LANES, idle_seconds: float = IDLE_SECONDS) -> None:
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: "list[_Lane]" = []  # most recently parked last

    def lend(self, executor: LaneExecutor) -> None:
        lane = None
        if not executor._fresh:
            with self._lock:
                lane = self._idle.pop() if self._idle else None
        if lane is None:
            lane = _Lane(self)
        lane._mailbox.push(executor)

    def park(self, lane: _Lane) -> bool:
        """Put *lane* back among the idle ones; False if it should retire."""
        with self._lock:
            if len(self._idle) >= self.max_idle:
                return False
            self._idle.append(lane)
            return True

    def retire(self, lane: _Lane) -> bool:
        """Take idle *lane* out of the pool; False if it was lent meanwhile."""
        with self._lock:
            try:
                self._idle.remove(lane)
            except ValueError:
                return False
            return True

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)


_pool = _LanePool()


def pool() -> _LanePool:
    return _pool


def _reset_after_fork() -> None:
    # The child has only the thread that forked: no lane exists in it.
    global _pool
    _pool = _LanePool()


os.register_at_fork(after_in_child=_reset_after_fork)
