"""The pure-Python twin of a hop's delivery: a sync call sent to a worker
thread, and its outcome sent back to the event loop that awaits it.

Outcomes bound for one loop gather in that loop's ``Inbox``; the worker wakes
the loop only when the inbox was empty, so many calls finishing together cost
one wake-up: a ring of the loop's doorbell (``call_soon_threadsafe`` where the
loop has none).
"""

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .._doorbell import Bell, open_bell
from .._fork import on_fork
from .._prompt import PromptFuture


class Inbox:
    """Work from other threads waiting for one loop: finished calls to hand
    to their futures, or anything else whose ``settle()`` (which must not
    raise) is to run there."""

    __slots__ = ("_loop_ref", "_lock", "_ready", "_bell", "_closed", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the inbox lives in a dict keyed weakly by its loop.
        self._loop_ref = weakref.ref(loop)
        self._lock = threading.Lock()
        self._ready: "list[Any]" = []
        self._closed = False
        self._bell = open_bell(loop, self._drain)

    @property
    def bell(self) -> "Bell | None":
        """The doorbell the loop watches for this inbox, if it has one."""
        return self._bell

    def deliver(self, call: Any) -> None:
        """Any thread: hand *call* to the loop, waking it if need be."""
        with self._lock:
            ready = self._ready
            ready.append(call)
            if len(ready) > 1 or self._closed:
                return  # a wake-up is already on its way, or nobody listens
            if self._bell is not None:
                # Under the lock, so close() cannot free the descriptor
                # between our check and the ring.
                self._bell.ring()
                return
        loop = self._loop_ref()
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                pass  # the loop is closed: nobody awaits these calls any more

    def _drain(self) -> None:
        if self._bell is not None:
            self._bell.answer()  # first: what is delivered after it rings again
        with self._lock:
            ready = self._ready
            self._ready = []
        for call in ready:
            call.settle()

    def close(self) -> None:
        """Stop waking the loop, which is closed: its bell may be freed."""
        with self._lock:
            self._close_unlocked()

    def _close_unlocked(self) -> None:
        # Alone with the inbox: under its lock, in a forked child (whose lock
        # may be held by a thread that is gone), or as it is freed.
        self._closed = True
        bell, self._bell = self._bell, None
        if bell is not None:
            bell.close()

    def __del__(self) -> None:
        self._close_unlocked()


_inboxes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox]" = weakref.WeakKeyDictionary()
_inboxes_lock = threading.Lock()


def inbox_for(loop: asyncio.AbstractEventLoop) -> Inbox:
    """*loop*'s inbox, made on first use: on the loop's own thread, as it
    starts watching a bell."""
    try:
        return _inboxes[loop]
    except KeyError:
        pass
    with _inboxes_lock:
        inbox = _inboxes.get(loop)
        if inbox is None:
            _close_inboxes_of_closed_loops()
            inbox = _inboxes[loop] = Inbox(loop)
        return inbox


def find_inbox(loop: asyncio.AbstractEventLoop) -> "Inbox | None":
    """*loop*'s inbox if it has one yet; from any thread."""
    return _inboxes.get(loop)


def _close_inboxes_of_closed_loops() -> None:
    # A closed loop stays alive as long as anyone holds it; its bell need not.
    # A weak key's callback may drop an entry from any thread while the
    # copy is made (seen on free-threaded 3.13): a copy that fails so is
    # made again, as asyncio.all_tasks does.
    for _ in range(100):
        try:
            entries = list(_inboxes.items())
            break
        except RuntimeError:  # the dict changed size during the copy
            continue
    else:
        return  # left for the next new inbox to try
    for loop, inbox in entries:
        if loop.is_closed():
            _inboxes.pop(loop, None)
            inbox.close()


def _forget_inboxes() -> None:
    # A forked child has no use for its parent's loops, and their locks may
    # have been held by a thread that does not exist in the child.
    global _inboxes, _inboxes_lock
    inherited = list(_inboxes.values())
    _inboxes = weakref.WeakKeyDictionary()
    _inboxes_lock = threading.Lock()
    for inbox in inherited:
        inbox._close_unlocked()


on_fork("inboxes", after_in_child=_forget_inboxes)


class Call:
    """A sync callable bound for a worker thread, with a future for its outcome.

    The worker calls it; the loop awaits ``future``. ``cancel()`` stops it
    from starting; once it has started, it runs to the end and its outcome
    stays on the call (``settled``/``outcome()``) for whoever still wants it.
    """

    __slots__ = ("_fn", "_inbox", "future", "settled", "_ok", "_value", "_ticket")
    future: "asyncio.Future[Any]"
    settled: bool

    def __init__(self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        self._fn: "Callable[[], Any] | None" = fn
        self._inbox = inbox_for(loop)
        self.future = PromptFuture(loop=loop)
        self.settled = False
        # Taken exactly once, by whichever of run and cancel() comes first:
        # list.pop is atomic, with or without the GIL.
        self._ticket = [True]

    def __call__(self) -> None:
        """Run on the worker thread."""
        try:
            self._ticket.pop()
        except IndexError:
            return  # cancelled before it started
        try:
            self._value = self._fn()  # type: ignore[misc]  # set until it runs
            self._ok = True
        except StopIteration as exc:
            # A future cannot hold it. Python 3.13+'s asyncio wraps it like
            # this (upstream hangs on 3.11/3.12); every Python gets 3.13's.
            self._value = RuntimeError(
                "StopIteration interacts badly with generators and cannot be raised into a Future"
            )
            self._value.__cause__ = exc
            self._value.__context__ = exc
            self._ok = False
        except BaseException as exc:
            self._value = exc
            self._ok = False
        self._fn = None
        self._inbox.deliver(self)
        # The traceback of a failure holds this frame; drop it from there.
        self = None  # type: ignore[assignment]  # noqa: F841

    def cancel(self) -> bool:
        """True if the call will never run. Loop thread."""
        try:
            self._ticket.pop()
        except IndexError:
            return False
        self._fn = None
        return True

    def settle(self) -> None:
        """Hand the outcome to ``future``. Loop thread, from the inbox."""
        self.settled = True
        future = self.future
        if not future.done():
            if self._ok:
                future.set_result(self._value)
            else:
                future.set_exception(self._value)

    def outcome(self) -> Any:
        """The call's result, or raise its exception. Only once settled."""
        if self._ok:
            return self._value
        raise self._value
