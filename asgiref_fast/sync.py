"""Bridges between sync and async code.

``sync_to_async`` runs a sync callable on a worker thread and awaits it;
``async_to_sync`` runs a coroutine function on an event loop and waits for it.
In thread-sensitive mode, all sync code of one request (one
``ThreadSensitiveContext``) runs on one thread: the thread blocked in an outer
``async_to_sync`` if there is one, otherwise a lane borrowed for the context,
otherwise the process-wide default lane.
"""

import asyncio
import asyncio.base_events
import asyncio.coroutines
import contextvars
import functools
import inspect
import os  # noqa: F401  # unused, but asgiref.sync has it (asgiref.sync.os)
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine

# InvalidStateError, Dict, List, Optional: unused, but asgiref's module
# has these names, and code may reach them here.
from concurrent.futures import Executor, Future, InvalidStateError, ThreadPoolExecutor  # noqa: F401
from concurrent.futures import wait as _wait_for
from typing import TYPE_CHECKING, Any, Dict, Generic, List, Optional, ParamSpec, TypeVar, overload  # noqa: F401

from . import _fork, _loops
from ._impl import context as _context
from ._impl import hop as _hop
from ._impl import local as _local
from ._lanes import LaneExecutor, lend_once
from .current_thread_executor import CurrentThreadExecutor
from .local import Local

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

_F = TypeVar("_F", bound=Callable[..., Any])
_P = ParamSpec("_P")
_R = TypeVar("_R")

_running_loop = asyncio._get_running_loop  # None rather than an exception

if hasattr(inspect, "markcoroutinefunction"):  # Python 3.12+
    iscoroutinefunction = inspect.iscoroutinefunction
    markcoroutinefunction: Callable[[_F], _F] = inspect.markcoroutinefunction
else:
    iscoroutinefunction = asyncio.iscoroutinefunction  # type: ignore[assignment]

    def markcoroutinefunction(func: _F) -> _F:
        # Python 3.11's asyncio.iscoroutinefunction looks for this marker.
        func._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore
        return func


def _is_async_callable(func: Any) -> bool:
    """``iscoroutinefunction(func)`` or of its ``__call__``, as upstream asks;
    answered at once for a plain function or method of one (Django makes ten
    sync_to_async wrappers per request, each asking this)."""
    f = func.__func__ if type(func) is types.MethodType else func
    # With nothing in its __dict__, a plain function carries no marker: its
    # code flags alone decide, and its __call__ is never a coroutine function.
    if type(f) is types.FunctionType and not f.__dict__:
        return bool(f.__code__.co_flags & inspect.CO_COROUTINE)
    return iscoroutinefunction(func) or iscoroutinefunction(getattr(func, "__call__", func))


class AsyncSingleThreadContext:
    """Within this (sync) block, every ``async_to_sync`` call that needs a new
    event loop runs it on the same thread. Only the outermost block counts.
    """

    def __init__(self) -> None:
        self.token: "contextvars.Token[AsyncSingleThreadContext] | None" = None

    def __enter__(self) -> "AsyncSingleThreadContext":
        if AsyncToSync.async_single_thread_context.get(None) is None:
            self.token = AsyncToSync.async_single_thread_context.set(self)
        return self

    def __exit__(self, exc: Any, value: Any, tb: Any) -> None:
        if self.token is None:
            return
        executor = AsyncToSync.context_to_thread_executor.pop(self, None)
        if executor is not None:
            executor.shutdown()
        AsyncToSync.async_single_thread_context.reset(self.token)
        self.token = None


class ThreadSensitiveContext:
    """Within this async block, thread-sensitive sync code runs on one thread
    of its own rather than the process-wide one; the exit waits, without
    blocking the loop, until that thread has run the sync work submitted in
    the block. Only the outermost block counts, unless ``executor`` is given:
    then this block runs its thread-sensitive calls on that executor (which
    must run one call at a time, on one thread), even inside another context.
    The caller owns that executor, and the exit does not wait for it; such a
    context can be entered only once, and tasks that outlive it may not make
    thread-sensitive calls.
    """

    def __init__(self, *, executor: "Executor | None" = None) -> None:
        self._executor = executor
        self.token: "contextvars.Token[ThreadSensitiveContext] | None" = None
        self._old_executor: "CurrentThreadExecutor | None" = None
        self._exited = False  # an executor context has exited: refuse calls
        self._lane_returned = False  # a plain context has handed its lane back

    async def __aenter__(self) -> "ThreadSensitiveContext":
        if self._executor is None:
            if SyncToAsync.thread_sensitive_context.get(None) is None:
                self.token = SyncToAsync.thread_sensitive_context.set(self)
            return self
        if self.token is not None:
            raise RuntimeError("ThreadSensitiveContext is already entered")
        if self._exited:
            raise RuntimeError(
                "ThreadSensitiveContext with an executor cannot be entered again"
            )
        self.token = SyncToAsync.thread_sensitive_context.set(self)
        SyncToAsync.context_to_thread_executor[self] = self._executor
        # An outer async_to_sync's thread would take precedence over this
        # context; hide it for the block. (Sending nested calls to the given
        # executor instead could deadlock: its one worker may be the thread
        # waiting on us.)
        self._old_executor = getattr(AsyncToSync.executors, "current", None)
        AsyncToSync.executors.current = None
        return self

    async def __aexit__(self, exc: Any, value: Any, tb: Any) -> None:
        if self.token is None:
            return
        executor = SyncToAsync.context_to_thread_executor.pop(self, None)
        SyncToAsync.thread_sensitive_context.reset(self.token)
        self.token = None
        if self._executor is not None:
            AsyncToSync.executors.current = self._old_executor
            self._old_executor = None
            self._exited = True
        elif executor is not None:
            self._lane_returned = True
            # Wait until the lane has run everything submitted in this
            # context, as upstream's exit does: without blocking the loop
            # (that work may be waiting for it), and without even yielding
            # to it when the lane is idle already, the common case.
            if isinstance(executor, LaneExecutor):
                done = executor.release()
            else:  # someone else's executor in our registry
                done = _shut_down_on_a_thread(executor)
            if _takes_hops(asyncio.get_running_loop()):
                if done is not None:
                    # Shielded: cancelling the exit must not cancel the lane's future.
                    await asyncio.shield(asyncio.wrap_future(done))
            else:
                # A loop with methods of its own sees the calls upstream's
                # exit makes on it: a future made, for one set from another
                # thread (from 3.14 on, asyncio hands over the result of one
                # set on the loop's own thread without call_soon_threadsafe).
                # That one is the exit's own, for it to cancel.
                waited: "Future[None]" = Future()

                def finish() -> None:
                    if done is not None:
                        _wait_for([done])
                    if waited.set_running_or_notify_cancel():  # False if cancelled
                        waited.set_result(None)

                wrapped = asyncio.wrap_future(waited)  # first: it must see the set come
                threading.Thread(target=finish, daemon=True).start()
                await wrapped


def _shut_down_on_a_thread(executor: Executor) -> "Future[None]":
    done: "Future[None]" = Future()

    def join() -> None:
        try:
            executor.shutdown()
        finally:
            done.set_result(None)

    threading.Thread(target=join, daemon=True).start()
    return done


def _call_in_except(exc: "BaseException | None", fn: Callable[..., _R], *args: Any) -> _R:
    """Call *fn* while *exc* is being handled, so sys.exc_info() sees it."""
    __traceback_hide__ = True  # noqa: F841
    if exc is None:
        return fn(*args)
    try:
        raise exc
    except BaseException:
        return fn(*args)


class AsyncToSync(Generic[_P, _R]):
    """Wraps a coroutine function into a sync callable for use in sync code.

    The coroutine runs on the event loop of the enclosing ``sync_to_async``
    if there is one, else on a fresh loop on a borrowed lane. Meanwhile this
    thread serves thread-sensitive sync calls made by that coroutine.
    """

    # The CurrentThreadExecutor of the innermost async_to_sync in this
    # context, for sync_to_async calls made below it.
    executors: "Local" = Local()

    # The same, found by event loop, for tasks that did not inherit the context.
    loop_thread_executors: "dict[asyncio.AbstractEventLoop, CurrentThreadExecutor]" = {}

    async_single_thread_context: "contextvars.ContextVar[AsyncSingleThreadContext]" = (
        contextvars.ContextVar("async_single_thread_context")
    )

    context_to_thread_executor: (
        "weakref.WeakKeyDictionary[AsyncSingleThreadContext, Executor]"
    ) = weakref.WeakKeyDictionary()

    def __init__(
        self,
        awaitable: "Callable[_P, Coroutine[Any, Any, _R]] | Callable[_P, Awaitable[_R]]",
        force_new_loop: bool = False,
    ) -> None:
        if not callable(awaitable) or not _is_async_callable(awaitable):
            # Detection has false negatives, so this only warns.
            warnings.warn(
                "async_to_sync was passed a non-async-marked callable", stacklevel=2
            )
        self.awaitable = awaitable
        try:
            self.__self__ = awaitable.__self__  # type: ignore[union-attr]
        except AttributeError:
            pass
        self.force_new_loop = force_new_loop

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        __traceback_hide__ = True  # noqa: F841  # for debug pages and Sentry
        main_loop = None
        if not self.force_new_loop:
            # Inside sync_to_async: go back to its loop, unless we have been
            # forked away from it since.
            threadlocal = SyncToAsync.threadlocal
            if getattr(threadlocal, "main_event_loop_pid", None) == _fork.pid:
                main_loop = getattr(threadlocal, "main_event_loop", None)
        if _running_loop() is not None:
            raise RuntimeError(
                "You cannot use AsyncToSync in the same thread as an async event loop - "
                "just await the async function directly."
            )

        call_result: "_CallResult[_R]" = _CallResult()
        # Every sync frame gets its own executor to serve nested calls,
        # chained to the one above it in this thread.
        old_executor = _local.peek(self.executors, "current")
        current_executor = CurrentThreadExecutor(old_executor)
        self.executors.current = current_executor
        # A list, so main_wrap can hand back the context it ends in.
        context = [contextvars.copy_context()]
        # Where the coroutine's task is recorded, for cancellation by the
        # sync_to_async that called us.
        task_context = getattr(SyncToAsync.threadlocal, "task_context", None)
        try:
            awaitable = self.main_wrap(
                call_result,
                sys.exc_info(),
                task_context,
                context,
                self.awaitable(*args, **kwargs),
            )
            call_result.then = current_executor.stop
            if main_loop is not None and _create_task_on(main_loop, awaitable):
                current_executor.run_until_stopped()
            else:
                call_result.then = None  # the lane stops it, once the loop is scrubbed
                self._run_in_new_loop(awaitable, current_executor)
        finally:
            _context.restore_context(context[0])
            self.executors.current = old_executor
        try:
            if call_result.failure is not None:
                raise call_result.failure  # here: one frame of ours, not two
            return call_result.value
        finally:
            call_result = None  # type: ignore[assignment]  # no cycle via a failure

    def _run_in_new_loop(
        self, awaitable: Coroutine[Any, Any, None], current_executor: CurrentThreadExecutor
    ) -> None:
        async def run() -> None:
            loop = asyncio.get_running_loop()
            self.loop_thread_executors[loop] = current_executor
            try:
                await awaitable
            finally:
                del self.loop_thread_executors[loop]

        single_thread = self.async_single_thread_context.get(None)
        if single_thread is not None:
            executor = self.context_to_thread_executor.get(single_thread)
            if executor is None:
                executor = LaneExecutor()
                self.context_to_thread_executor[single_thread] = executor
            loop_future = executor.submit(_loops.run, run())
            current_executor.run_until_future(loop_future)
            loop_future.result()
            return

        # One call only: a lane lent for it, back in the pool before this
        # thread wakes to make its next call. The loop runs in a context of
        # its own, as on a new thread.
        failure: "list[BaseException]" = []

        def on_lane() -> None:
            try:
                contextvars.Context().run(_loops.run, run())
            except BaseException as exc:
                failure.append(exc)

        lend_once(on_lane, current_executor.stop)
        current_executor.run_until_stopped()
        if failure:
            try:
                raise failure.pop()
            finally:
                failure = []  # no cycle through the traceback

    def __get__(self, parent: Any, objtype: Any) -> Callable[_P, _R]:
        """Bind to *parent*, for use as a method."""
        func = functools.partial(self.__call__, parent)
        return functools.update_wrapper(func, self.awaitable)

    async def main_wrap(
        self,
        call_result: "_CallResult[_R]",
        exc_info: "OptExcInfo",
        task_context: "list[asyncio.Task[Any]] | None",
        context: "list[contextvars.Context]",
        awaitable: "Coroutine[Any, Any, _R] | Awaitable[_R]",
    ) -> None:
        """Await *awaitable* on the loop, in the caller's context, and put its
        outcome in *call_result*."""
        __traceback_hide__ = True  # noqa: F841
        if context is not None:
            _context.restore_context(context[0])
        task = asyncio.current_task()
        track = task is not None and task_context is not None
        if track:
            task_context.append(task)  # type: ignore[union-attr, arg-type]
        result = failure = None
        try:
            if exc_info[1] is None:
                result = await awaitable
            else:
                try:
                    raise exc_info[1]
                except BaseException:
                    result = await awaitable
        except BaseException as exc:
            failure = exc
        finally:
            if track:
                task_context.remove(task)  # type: ignore[union-attr, arg-type]
            # Before the outcome: the caller may wake as soon as it is set.
            context[0] = contextvars.copy_context()
        # A failure's traceback keeps this frame: let it not keep the task,
        # nor through it the loop (which could then not be reused).
        task = None
        try:
            if failure is None:
                call_result.set_result(result)  # type: ignore[arg-type]
            else:
                call_result.set_exception(failure)
        finally:
            call_result = failure = None  # type: ignore[assignment]  # no cycle via a failure


class _CallResult(Generic[_R]):
    """The outcome of one async_to_sync call (``value`` or ``failure``). Set
    once, on the loop, and read by the caller only after that (no lock
    needed); ``then``, if set, is called once the outcome is in."""

    __slots__ = ("value", "failure", "then")

    def __init__(self) -> None:
        self.value: _R
        self.failure: "BaseException | None" = None
        self.then: "Callable[[], None] | None" = None

    def set_result(self, result: _R) -> None:
        self.value = result
        if self.then is not None:
            self.then()

    def set_exception(self, failure: BaseException) -> None:
        self.failure = failure
        if self.then is not None:
            self.then()


def _create_task_on(loop: asyncio.AbstractEventLoop, coro: Any) -> bool:
    if not loop.is_running():  # nothing would ever run the task
        return False
    # The inbox of the loop whose sync_to_async brought us here rings its
    # bell: cheaper than call_soon_threadsafe's self-pipe. Only where that
    # and the task's start stand in for nothing of the loop's own.
    inbox = _hop.find_inbox(loop) if _takes_tasks(loop) else None
    if inbox is not None:
        inbox.deliver(_TaskStart(loop, coro))
        return True
    try:
        loop.call_soon_threadsafe(loop.create_task, coro)
    except RuntimeError:  # that loop is closed
        return False
    return True


# Python 3.12+ can start a task eagerly.
_EAGER_TASKS = sys.version_info >= (3, 12)


def _start_eagerly(loop: asyncio.AbstractEventLoop, coro: Any) -> "asyncio.Task[Any]":
    return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]


def _start_in_this_pass(loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context) -> None:
    # Python 3.11 has no eager start; on asyncio's own loops, run the first
    # step that the new task scheduled at once, as 3.12's eager start would.
    ready = getattr(loop, "_ready", None)
    if ready is None or not isinstance(loop, asyncio.BaseEventLoop) or asyncio.current_task(loop):
        # Another loop, or inside a task: the step waits for the next pass.
        context.run(loop.create_task, coro)
        return
    loop.create_task(coro, context=context)
    # Other threads may append (call_soon_threadsafe), so check what we took.
    handle = ready.pop()
    if handle._context is context:  # the task's step, as Task() scheduled it
        handle._run()
    else:
        ready.append(handle)


class _TaskStart:
    """Starts a task for a coroutine, delivered through a loop's inbox."""

    __slots__ = ("_loop", "_coro", "_context")

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Any) -> None:
        self._loop = loop
        self._coro = coro
        # The task starts from the sender's context, as it would through
        # call_soon_threadsafe (main_wrap then restores the caller's).
        self._context = contextvars.copy_context()

    def settle(self) -> None:
        loop, coro, context = self._loop, self._coro, self._context
        del self._loop, self._coro, self._context
        if loop.get_task_factory() is not None:
            # The factory makes the task, as through call_soon_threadsafe:
            # in a handle of its own, which reports a failure as upstream's.
            asyncio.Handle(loop.create_task, (coro,), loop, context)._run()
            return
        try:
            if _EAGER_TASKS:
                # Its first step runs here, in this pass of the loop, not
                # the next: what loop.create_task would make, started at once.
                context.run(_start_eagerly, loop, coro)
            else:
                _start_in_this_pass(loop, coro, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # as a callback's failure would be
            loop.call_exception_handler({"message": "could not start async_to_sync's task", "exception": exc})


class SyncToAsync(Generic[_P, _R]):
    """Wraps a sync callable into a coroutine function that runs it on a
    worker thread.

    Thread-sensitive calls (the default) run one at a time on one thread: the
    thread of an enclosing ``async_to_sync`` if there is one, else the
    enclosing ``ThreadSensitiveContext``'s lane, else the process-wide lane.
    Other calls run on ``executor``, or the loop's default executor.
    """

    # Set on worker threads, for async_to_sync calls made from there.
    threadlocal = threading.local()

    # The process-wide thread for thread-sensitive code.
    single_thread_executor: Executor = LaneExecutor()

    thread_sensitive_context: "contextvars.ContextVar[ThreadSensitiveContext]" = (
        contextvars.ContextVar("thread_sensitive_context")
    )

    # True while this context already waits on the process-wide thread.
    # Holds the pid of the process whose waiting task set it (True counts too).
    deadlock_context: "contextvars.ContextVar[bool | int]" = contextvars.ContextVar(
        "deadlock_context"
    )

    # Each context's executor; weak, so a forgotten context frees its lane.
    context_to_thread_executor: (
        "weakref.WeakKeyDictionary[ThreadSensitiveContext, Executor]"
    ) = weakref.WeakKeyDictionary()

    def __init__(
        self,
        func: Callable[_P, _R],
        thread_sensitive: bool = True,
        executor: "ThreadPoolExecutor | None" = None,
        context: "contextvars.Context | None" = None,
    ) -> None:
        if not callable(func) or _is_async_callable(func):
            raise TypeError("sync_to_async can only be applied to sync functions.")
        functools.update_wrapper(self, func)
        self.func = func
        self.context = context
        self._thread_sensitive = thread_sensitive
        markcoroutinefunction(self)
        if thread_sensitive and executor is not None:
            raise TypeError("executor must not be set when thread_sensitive is True")
        self._executor = executor
        try:
            self.__self__ = func.__self__  # type: ignore[attr-defined]
        except AttributeError:
            pass

    async def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        __traceback_hide__ = True  # noqa: F841  # for debug pages and Sentry
        loop = asyncio.get_running_loop()
        try:
            # A loop whose methods are stock: _takes_hops, inlined (a hop
            # is the hottest path).
            rie, cf, cst, cs = _stock_hops[type(loop)]  # type: ignore[misc]  # TypeError if None
            direct = (
                loop.run_in_executor.__func__ is rie  # type: ignore[attr-defined]
                and loop.create_future.__func__ is cf  # type: ignore[attr-defined]
                and loop.call_soon_threadsafe.__func__ is cst  # type: ignore[attr-defined]
                and loop.call_soon.__func__ is cs  # type: ignore[attr-defined]
            )
        except (KeyError, TypeError, AttributeError):
            direct = _takes_hops(loop)
        # Upstream's routing, in upstream's order: the thread of an enclosing
        # async_to_sync, the ThreadSensitiveContext's thread, the thread
        # running this loop for an async_to_sync, the process-wide thread.
        executor: "Executor | None"
        if not self._thread_sensitive:
            executor = self._executor
        elif (executor := _local.peek(AsyncToSync.executors, "current")) is not None:
            pass
        elif (sensitive := self.thread_sensitive_context.get(None)) is not None:
            if sensitive._exited:
                # A task that outlived a context with an executor: running it
                # anywhere else would silently change threads.
                raise RuntimeError(
                    "ThreadSensitiveContext has exited. Tasks created "
                    "inside a context with an executor must finish before "
                    "it exits."
                )
            executor = self.context_to_thread_executor.get(sensitive)
            if executor is None:
                # Late calls from tasks that outlived their context get a new
                # thread, as they would upstream, not a pooled one.
                executor = LaneExecutor(fresh=sensitive._lane_returned)
                self.context_to_thread_executor[sensitive] = executor
        elif (executor := AsyncToSync.loop_thread_executors.get(loop)) is None:
            # deadlock_context holds the pid of the process whose task waits
            # on the process-wide thread: a child forked inside a hop has a
            # free one.
            waiting = self.deadlock_context.get(False)
            if waiting is True or waiting == _fork.pid:
                raise RuntimeError("Single thread executor already being used, would deadlock")
            self.deadlock_context.set(_fork.pid)
            executor = self.single_thread_executor
        if direct:
            # Where the loop's run_in_executor would send the call: the
            # default executor only once that made one, and not once it
            # would refuse to (shut down). uvloop's cannot be seen: there
            # run_in_executor finds it.
            target: Any = executor
            if target is None:
                target = getattr(loop, "_default_executor", None)
                if target is None or loop._executor_shutdown_called:  # type: ignore[attr-defined]
                    direct = False
            if direct and type(target) not in _OUR_EXECUTORS:
                # Any other executor gets what run_in_executor gives it,
                # unless it is a plain thread pool.
                pool = True
                direct = getattr(getattr(target, "submit", None), "__func__", None) is _POOL_SUBMIT
            else:
                pool = False
        own_context = self.context is None
        carrier = _context.ContextCarrier(contextvars.copy_context() if own_context else self.context)  # type: ignore[arg-type]
        # The wrapped call, as a functools.partial: thread_handler overrides
        # (APM agents) look inside it.
        child = functools.partial(self.func, *args, **kwargs)
        task_context: "list[asyncio.Task[Any]]" = []
        handler = functools.partial(
            self.thread_handler, loop, sys.exc_info(), task_context, carrier, child
        )
        # Sent outside the try, as upstream: should sending raise, this
        # context is left as it is (still marked as using the default thread).
        if direct:
            call = _hop.Call(handler, loop)
            try:
                if pool:
                    target.submit(_run_once, [call])
                else:
                    target.push(call)
            except BaseException as exc:
                exc.__traceback__ = _without_plumbing(exc.__traceback__)
                raise
        else:
            future = loop.run_in_executor(executor, handler)
        try:
            if direct:
                return await _outcome(call, task_context, loop)  # type: ignore[no-any-return]
            return await _outcome_of(future, task_context)  # type: ignore[no-any-return]
        except BaseException as exc:
            exc.__traceback__ = _without_plumbing(exc.__traceback__)
            raise
        finally:
            # A failure's traceback holds this frame: keep it from holding
            # the call (or future), and through it the failure itself.
            call = future = None  # type: ignore[assignment]
            if own_context:
                carrier.restore()
            self.deadlock_context.set(False)

    def __get__(
        self, parent: Any, objtype: Any
    ) -> Callable[_P, Coroutine[Any, Any, _R]]:
        """Bind to *parent*, for use as a method."""
        func = functools.partial(self.__call__, parent)
        return functools.update_wrapper(func, self.func)

    def thread_handler(
        self, loop: Any, exc_info: Any, task_context: Any, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Runs on the worker thread: note where we came from, for nested
        async_to_sync calls, then call ``func(*args, **kwargs)`` with the
        caller's exception (if any) being handled."""
        __traceback_hide__ = True  # noqa: F841
        threadlocal = self.threadlocal
        saved = threadlocal.__dict__.copy()
        threadlocal.main_event_loop = loop
        threadlocal.main_event_loop_pid = _fork.pid
        threadlocal.task_context = task_context
        try:
            if exc_info[1] is None:
                return func(*args, **kwargs)
            return _call_in_except(exc_info[1], functools.partial(func, *args, **kwargs))
        finally:
            # Pooled threads and nested hops must not keep pointing at a loop
            # that is no longer waiting for them.
            threadlocal.__dict__.clear()
            threadlocal.__dict__.update(saved)


async def _outcome(call: _hop.Call, task_context: "list[asyncio.Task[Any]]", loop: Any) -> Any:
    """Await *call*'s outcome; on cancellation, pass it on as asgiref does."""
    __traceback_hide__ = True  # noqa: F841
    try:
        try:
            return await call.future
        except asyncio.CancelledError:
            cancel_call = not await _absorbed_by_async_code(task_context)
            if call.settled or cancel_call:
                call.cancel()
                raise
        # The async code absorbed the cancellation: wait for the sync result.
        if not call.settled:
            call.future = loop.create_future()
            await call.future
        return call.outcome()
    finally:
        call = None  # type: ignore[assignment]  # no cycle via a failure


async def _absorbed_by_async_code(task_context: "list[asyncio.Task[Any]]") -> bool:
    """On cancellation: if the sync code waits in async_to_sync on a task of
    ours, cancel that task first; True if it shrugs the cancellation off (the
    sync code will then finish normally, and so must we)."""
    __traceback_hide__ = True  # noqa: F841
    if not task_context:
        return False
    task = task_context[0]
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return False
    return True


async def _outcome_of(future: "Awaitable[Any]", task_context: "list[asyncio.Task[Any]]") -> Any:
    """Await the outcome of a call made through the loop's own
    run_in_executor; on cancellation, pass it on as asgiref does."""
    __traceback_hide__ = True  # noqa: F841
    future = asyncio.ensure_future(future)
    try:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel_call = not await _absorbed_by_async_code(task_context)
            if future.done():
                raise
            if cancel_call:
                future.cancel()
            return await future
    finally:
        future = None  # type: ignore[assignment]  # no cycle via a failure


# -- Loops and executors a fast path may stand in for ---------------------------
#
# A fast path skips calls upstream makes on the running loop: a hop those of
# run_in_executor (within it create_future and call_soon_threadsafe, then
# asyncio.shield's create_future and the awaiting task's call_soon); an
# async_to_sync inside sync_to_async those of call_soon_threadsafe,
# create_task and the new task's call_soon; a ThreadSensitiveContext's exit
# those of a wrapped future. So it is taken only where each of these is
# asyncio's own (BaseEventLoop's, untouched) or uvloop's, on the loop's class
# and on the loop itself; anywhere else the loop's own methods are called,
# as upstream calls them.

_HOP_METHODS = ("run_in_executor", "create_future", "call_soon_threadsafe", "call_soon")
_TASK_METHODS = ("create_task", "call_soon_threadsafe", "call_soon")

# Per loop class: its functions for those names (and create_task's code), if
# all are stock; else None. Written from any thread: at worst twice, alike.
_stock_hops: "dict[type, tuple[Any, ...] | None]" = {}
_stock_tasks: "dict[type, tuple[Any, ...] | None]" = {}

# Where asyncio's own loop methods were compiled from.
_BASE_EVENTS_SOURCE = asyncio.base_events._run_until_complete_cb.__code__.co_filename  # type: ignore[attr-defined]


def _stock_methods(cls: type, names: "tuple[str, ...]") -> "tuple[Any, ...] | None":
    """*cls*'s functions for *names*, if each is asyncio's or uvloop's own."""
    found = []
    for name in names:
        owner = next((c for c in cls.__mro__ if name in vars(c)), None)
        fn = vars(owner)[name] if owner is not None else None
        if owner is asyncio.BaseEventLoop:
            # Neither replaced on the class nor rewritten in place (APM agents
            # do both): a plain function, with asyncio's code and nothing
            # attached. Later, the callers notice a replacement, and a
            # rewrite of create_task (the one agents rewrite).
            stock = (
                type(fn) is types.FunctionType
                and not fn.__dict__
                and fn.__code__.co_filename == _BASE_EVENTS_SOURCE
                and fn.__code__.co_name == name
            )
        else:
            stock = owner is not None and (owner.__module__, owner.__qualname__) == ("uvloop.loop", "Loop")
        if not stock:
            return None
        found.append(fn)
    return tuple(found)


def _takes_hops(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a hop may stand in for *loop*'s methods (SyncToAsync.__call__
    inlines the first try)."""
    # Through the bound methods, not loop.__dict__: asking for an object's
    # __dict__ makes CPython build one, which slows every attribute access
    # on the loop from then on.
    try:
        rie, cf, cst, cs = _stock_hops[type(loop)]  # type: ignore[misc]  # TypeError if None
        return (
            loop.run_in_executor.__func__ is rie  # type: ignore[attr-defined]
            and loop.create_future.__func__ is cf  # type: ignore[attr-defined]
            and loop.call_soon_threadsafe.__func__ is cst  # type: ignore[attr-defined]
            and loop.call_soon.__func__ is cs  # type: ignore[attr-defined]
        )
    except KeyError:  # a class not seen yet
        _stock_hops[type(loop)] = _stock_methods(type(loop), _HOP_METHODS)
        return _takes_hops(loop)
    except (TypeError, AttributeError):  # not stock, or a plain function set on the loop
        return False


def _takes_tasks(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether async_to_sync may stand in for *loop*'s methods to start its
    task. create_task's code is compared too: Datadog's agent rewrites it in
    place."""
    try:
        ct, code, cst, cs = _stock_tasks[type(loop)]  # type: ignore[misc]  # TypeError if None
        return (
            loop.create_task.__func__ is ct  # type: ignore[attr-defined]
            and ct.__code__ is code
            and loop.call_soon_threadsafe.__func__ is cst  # type: ignore[attr-defined]
            and loop.call_soon.__func__ is cs  # type: ignore[attr-defined]
        )
    except KeyError:
        stock = _stock_methods(type(loop), _TASK_METHODS)
        _stock_tasks[type(loop)] = None if stock is None else (stock[0], stock[0].__code__, *stock[1:])
        return _takes_tasks(loop)
    except (TypeError, AttributeError):
        return False


# The executors our hops reach directly, and a plain thread pool's submit():
# such a pool cannot tell what it runs, nor what becomes of its future.
_OUR_EXECUTORS = frozenset({LaneExecutor, CurrentThreadExecutor})
_POOL_SUBMIT = ThreadPoolExecutor.submit


def _run_once(calls: "list[_hop.Call]") -> None:
    """Run the one call in *calls*, taking it out first. A pool's work item
    holds the list; a call that failed holds its exception, whose traceback
    holds the worker's frames and through them the work item: without the
    call in it, that is no cycle for the GC to collect."""
    calls.pop()()


# The twins' modules. Their frames in a failure's traceback are plumbing of
# the hop; a compiled frame cannot hide itself with __traceback_hide__, so
# they are left out instead, from both twins alike.
_PLUMBING = frozenset({_hop.__name__, _context.__name__})


def _without_plumbing(tb: "types.TracebackType | None") -> "types.TracebackType | None":
    """*tb* without the frames of the twins' modules: the entries above the
    last of them are copied, the rest shared."""
    entries: "list[types.TracebackType]" = []
    last = -1
    entry = tb
    while entry is not None:
        if entry.tb_frame.f_globals.get("__name__") in _PLUMBING:
            last = len(entries)
        entries.append(entry)
        entry = entry.tb_next
    if last < 0:
        return tb
    rest = entries[last].tb_next
    for entry in reversed(entries[:last]):
        if entry.tb_frame.f_globals.get("__name__") not in _PLUMBING:
            rest = types.TracebackType(rest, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rest


def _after_fork_in_child() -> None:
    # The child has none of the parent's threads: forget every lane.
    if isinstance(SyncToAsync.single_thread_executor, LaneExecutor):
        SyncToAsync.single_thread_executor = LaneExecutor()
    for registry in (SyncToAsync.context_to_thread_executor, AsyncToSync.context_to_thread_executor):
        for key, executor in list(registry.items()):
            if isinstance(executor, LaneExecutor):
                del registry[key]  # type: ignore[arg-type]


_fork.on_fork("executors", after_in_child=_after_fork_in_child)


@overload
def async_to_sync(
    *, force_new_loop: bool = False
) -> Callable[
    [Callable[_P, Coroutine[Any, Any, _R]] | Callable[_P, Awaitable[_R]]],
    Callable[_P, _R],
]: ...


@overload
def async_to_sync(
    awaitable: Callable[_P, Coroutine[Any, Any, _R]] | Callable[_P, Awaitable[_R]],
    *,
    force_new_loop: bool = False,
) -> Callable[_P, _R]: ...


def async_to_sync(awaitable=None, *, force_new_loop=False):  # type: ignore[no-untyped-def]
    """Wrap a coroutine function for sync callers; usable as a decorator,
    with or without arguments."""
    if awaitable is None:
        return lambda f: AsyncToSync(f, force_new_loop=force_new_loop)
    return AsyncToSync(awaitable, force_new_loop=force_new_loop)


@overload
def sync_to_async(
    *,
    thread_sensitive: bool = True,
    executor: "ThreadPoolExecutor | None" = None,
    context: "contextvars.Context | None" = None,
) -> Callable[[Callable[_P, _R]], Callable[_P, Coroutine[Any, Any, _R]]]: ...


@overload
def sync_to_async(
    func: Callable[_P, _R],
    *,
    thread_sensitive: bool = True,
    executor: "ThreadPoolExecutor | None" = None,
    context: "contextvars.Context | None" = None,
) -> Callable[_P, Coroutine[Any, Any, _R]]: ...


def sync_to_async(  # type: ignore[no-untyped-def]
    func=None, *, thread_sensitive=True, executor=None, context=None
):
    """Wrap a sync callable for async callers; usable as a decorator, with or
    without arguments."""

    def wrap(f):  # type: ignore[no-untyped-def]
        return SyncToAsync(
            f, thread_sensitive=thread_sensitive, executor=executor, context=context
        )

    return wrap if func is None else wrap(func)  # type: ignore[no-untyped-call]
