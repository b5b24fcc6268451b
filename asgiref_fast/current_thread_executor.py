"""CurrentThreadExecutor: lets other threads run sync code on a thread that is
blocked waiting for async code (inside ``async_to_sync``)."""

import threading
from collections import deque  # noqa: F401  (asgiref's module has the name)
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from ._impl import workqueue

_P = ParamSpec("_P")
_R = TypeVar("_R")


class FutureWork:
    """A submitted call and the ``concurrent.futures.Future`` of its outcome."""

    __slots__ = ("future", "_fn", "_args", "_kwargs")

    def __init__(self, fn: Callable[..., Any], args: "tuple[Any, ...]", kwargs: "dict[str, Any]") -> None:
        self.future: Future[Any] = Future()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def __call__(self) -> None:
        __traceback_hide__ = True  # noqa: F841  # for debug pages and Sentry
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
            # The traceback holds this frame: break the cycle through it.
            self = None  # type: ignore[assignment]  # noqa: F841
        else:
            self.future.set_result(result)

    def cancel(self) -> bool:
        return self.future.cancel()


class CurrentThreadExecutor(Executor):
    """Runs submitted work on the thread that created it, while that thread
    waits in ``run_until_future``. Once the awaited future is done, work is
    passed up to the executor it replaced (``old_executor``), if any.
    """

    def __init__(self, old_executor: "CurrentThreadExecutor | None") -> None:
        self._work_thread = threading.current_thread()
        self._queue = workqueue.WorkQueue()
        self._old_executor = old_executor

    def run_until_future(self, future: "Future[Any]") -> None:
        """Run queued work on this thread until *future* is done and the
        queue is empty."""
        if threading.current_thread() is not self._work_thread:
            raise RuntimeError(
                "You cannot run CurrentThreadExecutor from a different thread"
            )
        future.add_done_callback(self.stop)
        self.run_until_stopped()

    # What async_to_sync uses, beyond upstream's API: run_until_future()
    # without a Future, and work queued without one (push()).

    def run_until_stopped(self) -> None:
        """Run queued work on this thread until ``stop()`` has been called
        and the queue is empty."""
        if threading.current_thread() is not self._work_thread:
            raise RuntimeError(
                "You cannot run CurrentThreadExecutor from a different thread"
            )
        pop = self._queue.pop
        while (item := pop()) is not None:
            item()
            del item

    def stop(self, future: "Future[Any] | None" = None) -> None:
        """Any thread: let ``run_until_stopped()`` return once the queue is
        empty; work pushed afterwards goes to ``old_executor``. Takes a
        future, to be a done callback."""
        self._queue.close()

    def push(self, item: Callable[[], None], handoff: bool = False) -> None:
        """Any other thread: queue *item* (it reports its own outcome). The
        nearest executor in the chain that still runs work takes it;
        *handoff* says the caller is about to wait for it."""
        executor: CurrentThreadExecutor | None = self
        while executor is not None:
            if executor._queue.push(item, handoff):
                return
            executor = executor._old_executor
        raise RuntimeError("CurrentThreadExecutor already quit or is broken")

    def submit(
        self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> "Future[_R]":
        if threading.current_thread() is self._work_thread:
            raise RuntimeError(
                "You cannot submit onto CurrentThreadExecutor from its own thread"
            )
        work = FutureWork(fn, args, kwargs)
        self.push(work, handoff=True)  # a submitter waits for the future
        return work.future
