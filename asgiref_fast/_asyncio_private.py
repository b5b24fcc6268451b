"""Every private name of asyncio that asgiref_fast reads, in one list.

asyncio has no public way to do what these give (each entry says what). Where
it is used, each is read defensively, with ``getattr`` and a fallback or with
AttributeError caught, and only on asyncio's own loops: on a CPython without
one, a fast path is skipped or a fresh loop is made, nothing breaks.
tests/test_asyncio_private.py checks, on every interpreter CI runs, that each
is there on the Pythons it is listed for, and that our sources read no private
asyncio name this list does not have. (The as-new check of a warm loop,
``_loops._AsNew``, also compares the rest of a loop's ``__dict__``, whatever
its names, to what it was when the loop was made.)
"""

import sys
from typing import NamedTuple


class Private(NamedTuple):
    owner: str  # "loop" (a selector event loop), "handle" (asyncio.Handle), or a module
    name: str
    users: str  # our modules that read it
    why: str
    since: "tuple[int, int] | None" = None  # read on this Python and later only
    until: "tuple[int, int] | None" = None  # read up to this Python only


PRIVATE = (
    Private("loop", "_ready", "sync.py, _loops.py",
            "its queue of ready callbacks: on 3.11 (no eager task start) a new task's first step runs in the "
            "pass that made it; a warm loop skips its clean-up turn when the queue is empty, and is emptied as "
            "close() would empty it"),
    Private("loop", "_scheduled", "_loops.py",
            "its timer heap: emptied, and the loop's first heap put back, as a warm loop is made as new"),
    Private("loop", "_asyncgens", "_loops.py",
            "its live async generators: a warm loop with none skips shutdown_asyncgens()"),
    Private("loop", "_default_executor", "sync.py, _pure/hop.py, hop.pyx, _loops.py",
            "the executor of run_in_executor(None, ...): a call bound for a stock thread pool goes straight to "
            "it; a warm loop that never made one skips shutdown_default_executor()"),
    Private("loop", "_executor_shutdown_called", "sync.py",
            "set by shutdown_default_executor(): run_in_executor then refuses work, and so does our direct path"),
    Private("loop", "_selector", "_loops.py, hop.pyx",
            "its selector: what it watches tells a warm loop as new; the compiled twin's spinning select stands "
            "in for its select(); a forked child detaches an inherited loop's epoll from the parent's"),
    Private("handle", "_context", "sync.py",
            "the context a callback runs in: on 3.11 it tells the new task's first step from a callback another "
            "thread queued meanwhile", until=(3, 11)),
    Private("handle", "_run", "sync.py",
            "runs one callback as the loop would: the new task's first step, on 3.11", until=(3, 11)),
    Private("asyncio.events", "_get_event_loop_policy", "_loops.py",
            "the current policy, read without 3.14's deprecation warning: asyncio.run still makes its loop "
            "through it, and only the default policy's loops are reused", since=(3, 14)),
    Private("asyncio.unix_events" if sys.platform != "win32" else "asyncio.windows_events",
            "_DefaultEventLoopPolicy", "_loops.py",
            "the default policy's class, under its 3.14 name (the public alias is deprecated)", since=(3, 14)),
    Private("asyncio", "_get_running_loop", "sync.py, _pure/local.py, local.pyx",
            "the running loop or None: get_running_loop() without its RuntimeError (in asyncio's __all__, "
            "documented nowhere)"),
    Private("asyncio.base_events", "_run_until_complete_cb", "sync.py",
            "any function of asyncio's loop module: its source file tells asyncio's own loop methods from "
            "overrides"),
    Private("asyncio.coroutines", "_is_coroutine", "sync.py",
            "the marker 3.11's asyncio.iscoroutinefunction looks for (markcoroutinefunction)", until=(3, 11)),
)


def applies(entry: Private, version: "tuple[int, ...]" = sys.version_info[:2]) -> bool:
    """Whether our code reads *entry* on Python *version*."""
    return (entry.since is None or version >= entry.since) and (entry.until is None or version <= entry.until)
