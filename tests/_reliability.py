"""Helpers shared by the reliability tests (stress, cancellation, fork, leaks,
hostile input): bounded waits, thread and memory probes, a small lane pool."""

import asyncio
import gc
import os
import sysconfig
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


def wait_until(predicate, seconds=10.0):
    """Poll *predicate* from sync code until it holds; False once *seconds*
    have passed (``eventually`` is for async code)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def lane_threads():
    return {t for t in threading.enumerate() if t.name.startswith(LANE_PREFIX)}


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


# On a free-threaded build an object dropped by a thread other than the one
# that made it is freed only once its refcount is merged back (biased
# reference counting); gc.collect() does that merge, finds such objects
# unreachable and, under DEBUG_SAVEALL, files them in gc.garbage though no
# cycle ever held them (tests/gc_free_threaded_repro.py shows it without
# asgiref_fast: 100 plain objects, no cycle, on 3.13t). There only the
# objects that lie on a reference cycle count.
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def on_cycles(objects):
    """The objects in *objects* that lie on a reference cycle among them
    (strongly connected components of more than one, or a self-reference)."""
    index = {id(o): o for o in objects}
    edges = {i: [id(r) for r in gc.get_referents(o) if id(r) in index] for i, o in index.items()}
    # Tarjan's algorithm, iteratively (a long chain must not hit the
    # recursion limit).
    order, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in index:
        if root in order:
            continue
        work = [(root, iter(edges[root]))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in order:
                    order[child] = low[child] = len(order)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], order[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == order[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in edges[node]:
                        found.extend(index[m] for m in component)
    return found


class Garbage:
    """Counts what the cyclic GC finds unreachable within a ``with`` block:
    with DEBUG_SAVEALL, every collected object lands in gc.garbage. On a
    free-threaded build, only those on a reference cycle (see FREE_THREADED)."""

    def __enter__(self):
        gc.collect()
        gc.garbage.clear()
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.count = None
        return self

    def __exit__(self, *exc):
        try:
            gc.collect()
            found = on_cycles(gc.garbage) if FREE_THREADED else gc.garbage
            self.count = len(found)
            self.sample = [type(o).__name__ for o in found[:20]]
            del found
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
    return wait_until(lambda: not any(t.ident in idents for t in threading.enumerate()), seconds)


async def pool_lanes_settle(pool, before, seconds=15.0):
    """Wait until every lane started since *before* has parked in *pool* or
    retired: none is still busy (a lost lane would stay busy forever)."""

    def settled():
        extra = lane_threads() - before
        return len(extra) == pool.idle_count() and len(extra) <= pool.max_idle

    return await eventually(settled, seconds)
