"""The pure-Python twin of ``WorkQueue``: work for one consuming thread.

Any thread may ``push``; one thread ``pop``s and runs what it gets. The
consumer parks on a lock when the queue is empty, and a producer wakes it only
if it is parked, so a busy consumer costs producers no system call.
"""

import os
import threading
from collections import deque
from typing import Any

# The compiled twin may spin briefly before parking (src_pyx/spin.h); this
# twin cannot let go of the GIL to spin, so it never does: the settings are
# kept, for the same API, and have no effect.
_spinning = {"max_spinners": 0, "spin_us": 0, "handoff_us": 0}
_probe_path = "/proc/loadavg"


def configure_spinning(
    *, max_spinners: "int | None" = None, spin_us: "int | None" = None, handoff_us: "int | None" = None
) -> "dict[str, int]":
    """Kept for the compiled twin's API; this twin never spins."""
    previous = dict(_spinning)
    for name, value in (("max_spinners", max_spinners), ("spin_us", spin_us), ("handoff_us", handoff_us)):
        if value is not None:
            _spinning[name] = max(0, int(value))
    return previous


def spinning_report() -> "dict[str, Any]":
    """The compiled twin's report, for the same API: what the machine looks
    like now (runnable threads machine-wide, from /proc/loadavg where there
    is one, against the cores), and no spins, ever."""
    runnable = None
    try:
        with open(_probe_path) as f:
            runnable = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        pass
    cores = os.cpu_count() or 1
    return dict(
        core_to_spare=None if runnable is None else runnable <= cores,
        runnable=runnable,
        cores=cores,
        sees_gil=False,
        spins=0,
        spins_moved=0,
        refused_busy=0,
        handoffs=0,
        handoffs_late=0,
    )


def _probe_with(path: "str | None") -> None:
    """Read the machine's runnable threads from *path* instead: for tests."""
    global _probe_path
    _probe_path = path or "/proc/loadavg"


class WorkQueue:
    __slots__ = ("_lock", "_wakeup", "_items", "_parked", "_busy", "_closed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Held while nobody has signalled the parked consumer: a binary
        # semaphore that is released only when _parked was set.
        self._wakeup = threading.Lock()
        self._wakeup.acquire()
        self._items: "deque[Any]" = deque()
        self._parked = False
        self._busy = False  # the consumer runs an item it popped
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, item: Any, handoff: bool = False) -> bool:
        """Queue *item*; False, and nothing queued, once the queue is closed.
        *handoff* (the caller is about to wait for this work) changes nothing
        here: the compiled twin lets go of the GIL as it wakes the consumer."""
        with self._lock:
            if self._closed:
                return False
            self._items.append(item)
            if not self._parked:
                return True
            self._parked = False
        self._wakeup.release()
        return True

    def close(self) -> None:
        """Refuse further pushes; the consumer drains what is queued."""
        with self._lock:
            self._closed = True
            if not self._parked:
                return
            self._parked = False
        self._wakeup.release()

    def idle(self) -> bool:
        """True when nothing is queued and the consumer is not running an
        item: it is waiting in pop(), or on its way back there."""
        with self._lock:
            return not self._busy and not self._items

    def take_all(self) -> "list[Any]":
        """Remove and return everything queued and not yet taken."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def pop(self, timeout: float = -1) -> Any:
        """The next item, waiting for one; None once closed and drained, or
        when *timeout* seconds pass with nothing to do. Consumer thread only.
        """
        while True:
            with self._lock:
                # The consumer comes back here only once done with its item.
                self._busy = bool(self._items)
                if self._busy:
                    return self._items.popleft()
                if self._closed:
                    return None
                self._parked = True
            if self._wakeup.acquire(timeout=timeout):
                continue
            with self._lock:
                if self._parked:
                    self._parked = False
                    return None
            # A producer un-parked us just as the wait timed out: take its
            # signal, so the semaphore stays balanced.
            self._wakeup.acquire()
