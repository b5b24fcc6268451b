# cython: language_level=3, freethreading_compatible=True
"""The compiled twin of ``asgiref_fast._pure.hop``: a sync call sent to a
worker thread, and its outcome sent back to the event loop that awaits it.

Outcomes bound for one loop gather in that loop's ``Inbox``; the worker wakes
the loop only when the inbox was empty, so many calls finishing together cost
one wake-up: a ring of the loop's doorbell, written from C
(``call_soon_threadsafe`` where the loop has none). While calls are out, an
asyncio selector loop about to sleep first spins briefly for them (spin.h).

Free-threading: the inbox's list and its bell's write end are guarded by its
mutex (a ring never races the bell's closing), and a call's ticket is claimed
by an atomic exchange, as is its place in the inbox's count of outstanding
calls; the inbox's counters are read and written atomically. The bell's read end is used only by the loop's thread,
and closed only once the loop is closed. A call's outcome fields are written by the
worker before it delivers the call, and read on the loop after the inbox hands
it over (the mutex orders the two); ``future`` and ``settled`` belong to the
loop thread. Nothing here leans on the GIL.
"""

import selectors
import threading
import weakref

from asgiref_fast._doorbell import open_bell
from asgiref_fast._fork import on_fork
from asgiref_fast._prompt import PromptFuture

from cpython.weakref cimport PyWeakref_NewRef

from asgiref_fast._cy.workqueue cimport spin_state
from spin cimport asf_add, asf_load, asf_now_ns, asf_spin, asf_spin_budget


cdef extern from "hop.h":
    long _claim "asgiref_fast_claim" (long* ticket) nogil
    int _ring "asgiref_fast_ring" (int fd) nogil
    int _answer "asgiref_fast_answer" (int fd) nogil
    int _close_fd "asgiref_fast_close_fd" (int fd) nogil


cdef class Inbox:
    """Work from other threads waiting for one loop: finished calls to hand
    to their futures, or anything else whose ``settle()`` (which must not
    raise) is to run there."""

    def __init__(self, loop):
        self._loop_ref = PyWeakref_NewRef(loop, None)
        self._ready = []
        self._bell_fd = self._bell_answer_fd = -1
        self._bell = open_bell(loop, self._drain)
        if self._bell is not None:
            self._bell_fd = self._bell.write_fd
            self._bell_answer_fd = self._bell.read_fd
            _spin_in_select(loop, self)

    @property
    def outstanding(self):
        """Calls made for this loop whose outcome is still to come: while
        there are any, the loop spins briefly before sleeping."""
        return asf_load(&self._outstanding)

    @property
    def bell(self):
        """The doorbell the loop watches for this inbox, if it has one."""
        # Under the lock: close() may be taking it from another thread, and
        # without a GIL reading the field while it is swapped could take a
        # reference to a freed object.
        with self._lock:
            return self._bell

    cpdef deliver(self, call):
        """Any thread: hand *call* to the loop, waking it if need be."""
        with self._lock:
            # Only grows the list's array: no object is allocated or freed
            # under the lock.
            self._ready.append(call)
            asf_add(&self._deliveries, 1)
            if len(self._ready) > 1 or self._closed:
                return  # a wake-up is already on its way, or nobody listens
            if self._bell_fd >= 0:
                # Under the lock, so close() cannot free the descriptor
                # between our check and the ring.
                _ring(self._bell_fd)
                return
        loop = self._loop_ref()
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                pass  # the loop is closed: nobody awaits these calls any more

    def _drain(self):
        # _bell_answer_fd unlocked: set before the loop watches the bell,
        # and reset only by close(), once the loop that calls us is closed.
        if self._bell_answer_fd >= 0:
            # First: what is delivered after this rings again. The loop
            # calls us only while it watches the bell, so it is still open.
            _answer(self._bell_answer_fd)
        fresh = []  # allocated before locking
        with self._lock:
            ready = self._ready
            self._ready = fresh
        for call in ready:
            if type(call) is Call:
                (<Call>call).settle()
            else:
                call.settle()

    def close(self):
        """Stop waking the loop, which is closed: its bell may be freed."""
        with self._lock:
            # Taken under the lock: of two threads closing the inbox, only
            # one gets the bell to close (the GIL made the swap atomic; there
            # may be none). Nothing is freed here: ``bell`` keeps it.
            bell = self._take_bell()
        _close_bell(bell)  # Python code: not under the mutex

    def _close_unlocked(self):
        # Alone with the inbox: in a forked child, whose lock may be held by
        # a thread that is gone.
        _close_bell(self._take_bell())

    cdef object _take_bell(self):
        """Mark the inbox closed and take its bell (None if already taken)."""
        self._closed = True
        self._bell_fd = self._bell_answer_fd = -1
        bell, self._bell = self._bell, None
        return bell

    def __dealloc__(self):
        # No Python code here: a pending signal's handler (Ctrl-C, SIGTERM)
        # runs at the start of any, and an exception out of __dealloc__ is
        # printed by PyErr_PrintEx, which ends the process on a SystemExit,
        # wherever the collection that freed us happened to run.
        bell = self._bell
        if bell is None:
            return
        self._bell = None
        # Set from the bell and unchanged since (close() takes the bell).
        if self._bell_answer_fd >= 0:
            _close_fd(self._bell_answer_fd)
        if self._bell_fd >= 0 and self._bell_fd != self._bell_answer_fd:
            _close_fd(self._bell_fd)
        self._bell_fd = self._bell_answer_fd = -1
        # Slot stores, no code runs: the bell must not close the numbers
        # again, should anyone still hold it.
        bell.read_fd = bell.write_fd = -1


cdef class _SpinningSelect:
    """Stands in for a selector's ``select``: while calls made on its loop
    are out on other threads and the loop would sleep, it first spins
    briefly (spin.h) for their outcomes, GIL released."""

    cdef Inbox _inbox
    # The selector, weakly (it holds us), and its class's select.
    cdef object _selector_ref
    cdef object _select

    def __init__(self, Inbox inbox, selector):
        self._inbox = inbox
        self._selector_ref = PyWeakref_NewRef(selector, None)
        self._select = type(selector).select

    def __call__(self, timeout=None):
        cdef Inbox inbox = self._inbox
        cdef long seen
        cdef long long budget = 0, started = 0, spent = 0
        cdef bint waiting, moved = False
        if (timeout is None or timeout > 0) and asf_load(&inbox._outstanding) > 0:
            with inbox._lock:
                seen = inbox._deliveries
                waiting = not inbox._ready and not inbox._closed
            if waiting:
                budget = asf_spin_budget(
                    spin_state(), &inbox._waiter, -1 if timeout is None else <long long>(timeout * 1e9))
            if budget > 0:
                with nogil:
                    started = asf_now_ns()
                    moved = asf_spin(spin_state(), &inbox._waiter, &inbox._deliveries, seen, budget)
                    spent = asf_now_ns() - started
                if moved:
                    timeout = 0  # the bell rang: collect it
                elif timeout is not None:
                    # The spin used up part of the wait: the loop's next timer
                    # must not fire late by it.
                    timeout = max(0.0, timeout - spent / 1e9)
        return self._select(self._selector_ref(), timeout)


cdef _spin_in_select(loop, Inbox inbox):
    # Only asyncio's selector loops, whose select we can wrap from outside;
    # not uvloop, not the proactor, not a selector someone else wrapped.
    if asf_load(&spin_state().max_spinners) <= 0:
        return
    selector = getattr(loop, "_selector", None)
    if not isinstance(selector, selectors.BaseSelector):
        return
    try:
        if "select" not in vars(selector):
            selector.select = _SpinningSelect(inbox, selector)
    except (TypeError, AttributeError):  # no __dict__ to hold it, or no weakref
        pass


cdef _close_bell(object bell):
    if bell is not None:
        try:
            bell.close()
        except OSError:
            pass


# find_inbox reads _inboxes without the lock: a dict lookup is safe against
# a concurrent writer on every build (free-threaded dicts lock per object).
cdef object _inboxes = weakref.WeakKeyDictionary()
cdef object _inboxes_lock = threading.Lock()


cpdef Inbox inbox_for(loop):
    """*loop*'s inbox, made on first use: on the loop's own thread, as it
    starts watching a bell."""
    inbox = find_inbox(loop)
    if inbox is not None:
        return inbox
    with _inboxes_lock:
        inbox = _inboxes.get(loop)
        if inbox is None:
            _close_inboxes_of_closed_loops()
            inbox = _inboxes[loop] = Inbox(loop)
        return inbox


cpdef Inbox find_inbox(loop):
    """*loop*'s inbox if it has one yet; from any thread."""
    # WeakKeyDictionary's get is data.get(ref(key)): the same lookup,
    # without a Python-level call.
    return _inboxes.data.get(PyWeakref_NewRef(loop, None))


cdef _close_inboxes_of_closed_loops():
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


def _forget_inboxes():
    # A forked child has no use for its parent's loops, and their locks may
    # have been held by a thread that does not exist in the child. The child
    # has one thread now: rebinding the globals races no reader.
    global _inboxes, _inboxes_lock
    inherited = list(_inboxes.values())
    _inboxes = weakref.WeakKeyDictionary()
    _inboxes_lock = threading.Lock()
    for inbox in inherited:
        inbox._close_unlocked()


on_fork("inboxes", after_in_child=_forget_inboxes)


cdef class Call:
    """A sync callable bound for a worker thread, with a future for its outcome.

    The worker calls it; the loop awaits ``future``. ``cancel()`` stops it
    from starting; once it has started, it runs to the end and its outcome
    stays on the call (``settled``/``outcome()``) for whoever still wants it.
    """

    def __init__(self, fn, loop):
        self._fn = fn
        self._inbox = inbox_for(loop)
        self.future = PromptFuture(loop=loop)
        self.settled = False
        self._ticket = 1
        self._counted = 1
        asf_add(&self._inbox._outstanding, 1)

    cdef void _uncount(self) noexcept:
        if self._inbox is not None and _claim(&self._counted):
            asf_add(&self._inbox._outstanding, -1)

    def __dealloc__(self):
        # Dropped unsettled (the executor refused it, say): the loop must
        # not spin for it. (Should the collector break a cycle by clearing
        # this call's fields first, it stays counted, and its loop spins for
        # nothing: briefly, and less and less, as spin.h backs off.)
        self._uncount()

    def __call__(self):
        """Run on the worker thread."""
        if not _claim(&self._ticket):
            return  # cancelled before it started
        try:
            self._value = self._fn()
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

    def cancel(self):
        """True if the call will never run. Loop thread."""
        if not _claim(&self._ticket):
            return False
        self._fn = None
        self._uncount()
        return True

    cpdef settle(self):
        """Hand the outcome to ``future``. Loop thread, from the inbox."""
        self.settled = True
        self._uncount()
        future = self.future
        if not future.done():
            if self._ok:
                future.set_result(self._value)
            else:
                future.set_exception(self._value)

    def outcome(self):
        """The call's result, or raise its exception. Only once settled."""
        if self._ok:
            return self._value
        raise self._value
