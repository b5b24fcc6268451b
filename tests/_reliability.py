"""Helpers shared by the reliability tests (stress, cancellation, fork, leaks,
hostile input): bounded waits, thread and memory probes, a small lane pool."""

import asyncio
import gc
import os
import threading
import time

from asgiref_fast import _lanes
from asgiref_fast.sync import SyncToAsync

LANE_PREFIX = "asgiref_fast-lane"


async def eventually(predicate, seconds=10.0):
    """Poll *predicate* until it holds; False once *seconds* have passed.
    The event loop keeps running meanwhile: never time.sleep() in async tests."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def lane_threads():
    return {t for t in threading.enumerate() if t.name.startswith(LANE_PREFIX)}


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


class Garbage:
    """Counts what the cyclic GC finds unreachable within a ``with`` block:
    with DEBUG_SAVEALL, every collected object lands in gc.garbage."""

    def __enter__(self):
        gc.collect()
        gc.garbage.clear()
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.count = None
        return self

    def __exit__(self, *exc):
        try:
            gc.collect()
            self.count = len(gc.garbage)
            self.sample = [type(o).__name__ for o in gc.garbage[:20]]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()


def small_pool(monkeypatch):
    """Install a private lane pool with few idle lanes that retire quickly, so
    tests can watch lanes park and retire; lanes it lends come back to it."""
    # The process-wide lane is lent once and kept: lend it before patching.
    SyncToAsync.single_thread_executor.submit(int).result(timeout=10)
    pool = _lanes._LanePool(max_idle=4, idle_seconds=0.3)
    monkeypatch.setattr(_lanes, "_pool", pool)
    return pool


def retire_idle_lanes(pool, seconds=10.0):
    """Retire the lanes idle in *pool* now, and wait (boundedly) for their
    threads to end: a test's lanes must not end during a later test, which
    may be counting threads."""
    with pool._lock:
        lanes, pool._idle[:] = list(pool._idle), []
    idents = {lane.ident for lane in lanes}
    for lane in lanes:
        lane.queue.close()
    deadline = time.monotonic() + seconds
    while any(t.ident in idents for t in threading.enumerate()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


async def pool_lanes_settle(pool, before, seconds=15.0):
    """Wait until every lane started since *before* has parked in *pool* or
    retired: none is still busy (a lost lane would stay busy forever)."""

    def settled():
        extra = lane_threads() - before
        return len(extra) == pool.idle_count() and len(extra) <= pool.max_idle

    return await eventually(settled, seconds)
