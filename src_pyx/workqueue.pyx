# cython: language_level=3, freethreading_compatible=True
"""The compiled twin of ``asgiref_fast._pure.workqueue``: work for one
consuming thread.

Any thread may ``push``; one thread ``pop``s and runs what it gets. The
consumer, finding the queue empty, may first spin briefly (see spin.h), then
parks on a lock; a producer wakes it only if it is parked, so a busy or
spinning consumer costs producers no system call. The state
is guarded by a mutex of its own, not by the GIL. While it is held, no Python
object is allocated or freed: either could run the garbage collector or a
finalizer, and so arbitrary code that might push to this very queue.
Nothing here leans on the GIL (free-threaded builds included).
"""

from libc.math cimport ceil

from capi cimport (
    PY_LOCK_ACQUIRED,
    PY_LOCK_INTR,
    PY_TIMEOUT_T,
    Py_MakePendingCalls,
    PyLockStatus,
    PyThread_acquire_lock_timed,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)

from spin cimport (
    asf_add,
    asf_gil_locked_flag,
    asf_handoff,
    asf_load,
    asf_now_ns,
    asf_open_probe,
    asf_read_runnable,
    asf_spin,
    asf_spin_budget,
    asf_spin_state,
    asf_store,
    asf_store_ll,
)

import os
import threading
import time

from asgiref_fast._env import switch  # the package's one reading of its switches
from asgiref_fast._fork import on_fork

cdef double _TIMEOUT_MAX = threading.TIMEOUT_MAX
cdef object _Lock = threading.Lock
cdef object _monotonic = time.monotonic

# Taken slots are dropped from the front of the list once this many pile up
# and they are at least half of it.
cdef Py_ssize_t _COMPACT_AT = 1024


# -- Spinning (spin.h), shared with hop.pyx --------------------------------
# Set here at import, before any thread can spin; from then on every field
# but cores and gil_locked is read and written atomically.
cdef asf_spin_state _spin
_spin.probe_fd = asf_open_probe()
_spin.cores = os.cpu_count() or 1
_spin.runnable = -1


cdef int* _gil_locked_flag():
    # Trust the flag only if it reads "held" now, as this thread holds the
    # GIL; free-threaded builds have none (gil.h).
    cdef int* flag = asf_gil_locked_flag()
    if flag != NULL and flag[0] != 1:
        return NULL
    return flag


_spin.gil_locked = _gil_locked_flag()


cdef asf_spin_state* spin_state() noexcept nogil:
    return &_spin


def configure_spinning(*, max_spinners=None, spin_us=None, handoff_us=None):
    """Set how threads about to sleep on our queues spin first: at most
    *max_spinners* at once (0: never), each watching for *spin_us*
    microseconds, then waiting up to *handoff_us* for the GIL's release.
    Returns the previous settings, as keyword arguments."""
    previous = dict(
        max_spinners=asf_load(&_spin.max_spinners),
        spin_us=asf_load(&_spin.spin_ns) // 1000,
        handoff_us=asf_load(&_spin.handoff_ns) // 1000,
    )
    if max_spinners is not None:
        asf_store(&_spin.max_spinners, max(0, int(max_spinners)))
    if spin_us is not None:
        asf_store(&_spin.spin_ns, max(0, int(spin_us)) * 1000)
    if handoff_us is not None:
        asf_store(&_spin.handoff_ns, max(0, int(handoff_us)) * 1000)
    return previous


def spinning_report():
    """What spinning sees and did in this process: whether the machine has a
    core to spare now (None: no way to tell here, so nobody spins), the
    runnable threads and cores it compares, whether a woken thread can see
    the GIL free (gil.h); the spins granted, those that saw their signal,
    those refused for want of a core, and the hand-off waits for the GIL
    and those that gave up."""
    cdef long runnable = asf_read_runnable(asf_load(&_spin.probe_fd))
    # cores and gil_locked are set at import, before any thread reads them.
    return dict(
        core_to_spare=None if runnable < 0 else runnable <= _spin.cores,
        runnable=None if runnable < 0 else runnable,
        cores=_spin.cores,
        sees_gil=_spin.gil_locked != NULL,
        spins=asf_load(&_spin.spins),
        spins_moved=asf_load(&_spin.spins_moved),
        refused_busy=asf_load(&_spin.refused_busy),
        handoffs=asf_load(&_spin.handoffs),
        handoffs_late=asf_load(&_spin.handoffs_late),
    )


def _probe_with(path):
    """Read the machine's runnable threads from *path* (a file laid out as
    /proc/loadavg) instead: for tests. None: back to /proc/loadavg. The
    descriptor number stays the same (dup2), so a thread reading it
    meanwhile reads one file or the other, never a stranger's."""
    # Spinning threads read these meanwhile: atomically. (Two threads
    # swapping probes at once would race: tests do it from one.)
    fd = os.open(path or "/proc/loadavg", os.O_RDONLY | os.O_CLOEXEC)
    if asf_load(&_spin.probe_fd) < 0:
        asf_store(&_spin.probe_fd, fd)
    else:
        os.dup2(fd, asf_load(&_spin.probe_fd))
        os.close(fd)
    asf_store(&_spin.runnable, -1)
    asf_store_ll(&_spin.probed_ns, 0)


def _cpus_granted():
    """How many CPUs this process may keep busy: its affinity, and the CPU
    quota of its cgroup (a container's CPU limit), if lower. Spinning there
    would spend the quota that the process's other threads run on."""
    try:
        cpus = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cpus = float(os.cpu_count() or 1)
    for quota in _cgroup_cpu_quotas():
        cpus = min(cpus, quota)
    return cpus


def _cgroup_cpu_quotas():
    # cgroup v2: cpu.max ("max 100000" or "<quota> <period>") in this
    # process's cgroup and each of its ancestors; v1: cfs_quota_us/period_us.
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        hierarchy, _, path = line.partition(":")[2].partition(":")
        if hierarchy == "":  # v2
            parts = [p for p in path.split("/") if p]
            for depth in range(len(parts), -1, -1):
                quota = _read_quota("/sys/fs/cgroup/" + "/".join(parts[:depth]) + "/cpu.max", None)
                if quota is not None:
                    yield quota
        elif "cpu" in hierarchy.split(","):  # v1
            for base in ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"):
                quota = _read_quota(base + "/cpu.cfs_quota_us", base + "/cpu.cfs_period_us")
                if quota is not None:
                    yield quota
                    break


def _read_quota(path, period_path):
    try:
        with open(path) as f:
            fields = f.read().split()
        if period_path is not None:
            with open(period_path) as f:
                fields.append(f.read().strip())
        quota, period = int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None  # "max", no such file: no quota there
    return quota / period if quota > 0 and period > 0 else None


# Spinning pays only where the thread that will signal us has a core of its
# own to run on meanwhile, and the spinner takes a core nobody else wants
# (spin.h checks the machine for that before each spin). Sleeping costs more
# than the wake-up (tens of µs on a VM): the woken thread must then win the
# GIL from whoever took it meanwhile. So a spin lasts as long as a request's
# short steps between hops do (Django's sync middleware, the async code
# around them), not merely as long as a wake-up. One core is left to the
# thread that holds the GIL. ASGIREF_FAST_NO_SPIN=1 turns it off.
configure_spinning(
    max_spinners=0 if switch("ASGIREF_FAST_NO_SPIN") else int(_cpus_granted()) - 1,
    spin_us=200,
    handoff_us=10,
)


def _after_fork_in_child():
    # Threads that were spinning, or running work, in the parent do not
    # exist here.
    asf_store(&_spin.spinners, 0)
    asf_store(&_spin.busy, 0)


on_fork("spinning", after_in_child=_after_fork_in_child)


cdef PY_TIMEOUT_T _microseconds(object timeout) except? -2:
    # A pop() timeout, as threading.Lock.acquire takes it; -1 is forever.
    cdef double seconds
    if type(timeout) is float or (type(timeout) is int and -2 < timeout < 2 ** 53):
        seconds = timeout
        if seconds == -1:
            return -1
        if 0 <= seconds <= _TIMEOUT_MAX:
            return <PY_TIMEOUT_T>ceil(seconds * 1e6)
    # Anything else: threading.Lock judges it, so that errors match the pure
    # twin's exactly; a valid odd one (True, a float subclass) is converted.
    _Lock().acquire(True, timeout)
    return _microseconds(float(timeout))


cdef int _acquire(PyThread_type_lock lock, PY_TIMEOUT_T microseconds) except -1:
    # threading.Lock.acquire(timeout=...): 1 if acquired, 0 on timeout. The
    # GIL is released while waiting; signal handlers run when a signal
    # interrupts the wait, and what they raise propagates. Once woken, the
    # GIL is asked for once it is free (spin.h).
    cdef PyLockStatus status
    cdef double deadline = 0, remaining
    if PyThread_acquire_lock_timed(lock, 0, 0) == PY_LOCK_ACQUIRED:
        return 1
    if microseconds == 0:
        return 0
    if microseconds > 0:
        deadline = _monotonic() + microseconds / 1e6
    while True:
        with nogil:
            status = PyThread_acquire_lock_timed(lock, microseconds, 1)
            if status == PY_LOCK_ACQUIRED:
                asf_handoff(&_spin)
        if status != PY_LOCK_INTR:
            return status == PY_LOCK_ACQUIRED
        Py_MakePendingCalls()
        if microseconds > 0:
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return 0
            microseconds = <PY_TIMEOUT_T>ceil(remaining * 1e6)


cdef class WorkQueue:

    def __cinit__(self):
        self._wakeup = PyThread_allocate_lock()
        if self._wakeup == NULL:
            raise MemoryError()
        PyThread_acquire_lock_timed(self._wakeup, 0, 0)
        self._items = []

    def __dealloc__(self):
        # Unlocked: nobody else holds the queue any more.
        if self._busy:  # its consumer never came back (a lane died mid-item)
            asf_add(&_spin.busy, -1)
        if self._wakeup != NULL:
            # Freed unlocked, as threading.Lock frees its lock.
            PyThread_acquire_lock_timed(self._wakeup, 0, 0)
            PyThread_release_lock(self._wakeup)
            PyThread_free_lock(self._wakeup)

    @property
    def closed(self):
        with self._lock:
            return self._closed

    def push(self, item, handoff=False):
        """Queue *item*; False, and nothing queued, once the queue is closed.
        *handoff*: the caller is about to wait for this work, so the GIL is
        let go of while the consumer is woken (see below)."""
        with self._lock:
            if self._closed:
                return False
            # Only grows the list's array: no object is allocated or freed.
            self._items.append(item)
            asf_add(&self._signals, 1)
            if not self._parked:
                return True
            self._parked = False
        if handoff:
            # Woken, the consumer wants the GIL at once, and the caller has
            # nothing to do but wait: let go of the GIL for the wake-up, so
            # that a consumer the kernel runs right away (on this core, in
            # the caller's place, as it often does on a busy machine) takes
            # it and its work, rather than going back to sleep on the GIL.
            # (An event loop pushing work goes on with other work instead:
            # the consumer takes the GIL when the loop next lets go of it,
            # with whatever more the loop queued for it meanwhile.)
            with nogil:
                PyThread_release_lock(self._wakeup)
        else:
            PyThread_release_lock(self._wakeup)
        return True

    def close(self):
        """Refuse further pushes; the consumer drains what is queued. A
        parked consumer is woken as by ``push(..., handoff=True)``: whoever
        closes the queue has nothing more for it."""
        with self._lock:
            self._closed = True
            asf_add(&self._signals, 1)
            if not self._parked:
                return
            self._parked = False
        with nogil:
            PyThread_release_lock(self._wakeup)

    def idle(self):
        """True when nothing is queued and the consumer is not running an
        item: it is waiting in pop(), or on its way back there."""
        with self._lock:
            return not self._busy and self._head >= len(self._items)

    def take_all(self):
        """Remove and return everything queued and not yet taken."""
        fresh = []  # allocated before locking
        with self._lock:
            items = self._items
            head = self._head
            self._items = fresh
            self._head = 0
        return items[head:]

    def pop(self, timeout=-1):
        """The next item, waiting for one; None once closed and drained, or
        when *timeout* seconds pass with nothing to do. Consumer thread only.
        """
        cdef PY_TIMEOUT_T microseconds = -2  # converted when first waiting
        cdef long seen
        cdef long long budget, started = 0, spent = 0
        cdef bint spun = False
        while True:
            with self._lock:
                # The consumer comes back here only once done with its item.
                if self._busy:
                    asf_add(&_spin.busy, -1)
                self._busy = self._head < len(self._items)
                if self._busy:
                    asf_add(&_spin.busy, 1)
                    return self._take()
                if self._closed:
                    return None
                seen = self._signals
                self._parked = spun  # park only once a spin found nothing
            if microseconds == -2:
                microseconds = _microseconds(timeout)
            if not spun:
                spun = True
                budget = asf_spin_budget(&_spin, &self._waiter, microseconds * 1000) if microseconds != 0 else 0
                if budget > 0:
                    with nogil:
                        started = asf_now_ns()
                        asf_spin(&_spin, &self._waiter, &self._signals, seen, budget)
                        spent = asf_now_ns() - started
                    if microseconds > 0:  # the spin used up part of the timeout
                        microseconds = max(0, microseconds - spent // 1000)
                continue
            if _acquire(self._wakeup, microseconds):
                continue
            with self._lock:
                if self._parked:
                    self._parked = False
                    return None
            # A producer un-parked us just as the wait timed out: take its
            # signal, so the semaphore stays balanced.
            _acquire(self._wakeup, -1)

    cdef object _take(self):
        # With the lock held. The taken slot keeps None (immortal, or at least
        # never freed here), so that nothing is freed under the lock.
        items = self._items
        item = items[self._head]
        items[self._head] = None
        self._head += 1
        if self._head == len(items):
            del items[:]
            self._head = 0
        elif self._head >= _COMPACT_AT and 2 * self._head >= len(items):
            del items[:self._head]
            self._head = 0
        return item
