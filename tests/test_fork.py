"""Fork: a child forked after the parent used hops, async_to_sync and Local
can use them all (upstream hangs there), and the parent is unaffected.

Every wait on a child is bounded, children die by alarm if they hang, and
the parent kills any child still alive when a test ends.
"""

import asyncio
import contextvars
import functools
import json
import os
import select
import signal
import socket
import threading
import time
import traceback

import pytest

from asgiref_fast.local import Local
from asgiref_fast.sync import (
    AsyncSingleThreadContext,
    SyncToAsync,
    ThreadSensitiveContext,
    async_to_sync,
    sync_to_async,
)
from asgiref_fast.wsgi import WsgiToAsgi

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns about forking a process that has threads: that is the point.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

CHILD_SECONDS = 20
current = threading.current_thread
LOCAL = Local()
CRITICAL = Local(thread_critical=True)


def use_everything(tag):
    """Every bridge once, checked from inside; returns a short summary."""
    LOCAL.tag = tag
    CRITICAL.tag = tag

    async def main():
        loop_thread = current()
        default = await sync_to_async(current)()
        assert default is not loop_thread
        assert await sync_to_async(current)() is default  # one process-wide lane

        def sync_side():
            assert LOCAL.tag == tag  # the context came along
            LOCAL.from_sync = tag
            return current()

        async with ThreadSensitiveContext():
            thread = await sync_to_async(sync_side)()
            assert LOCAL.from_sync == tag  # and went back
            threads = await asyncio.gather(*(sync_to_async(current)() for _ in range(10)))
            assert set(threads) == {thread} and thread is not loop_thread

        async def on_the_loop():
            return current()

        def nested():
            assert async_to_sync(on_the_loop)() is loop_thread
            return current()

        async with ThreadSensitiveContext():
            assert await sync_to_async(nested)() is not loop_thread
        assert await sync_to_async(abs, thread_sensitive=False)(-3) == 3
        return default.name

    async def in_fresh_loop():
        assert LOCAL.tag == tag
        return current()

    # From plain sync code: a loop on another thread, calls back to this one.
    assert async_to_sync(in_fresh_loop)() is not current()
    default_lane = asyncio.run(asyncio.wait_for(main(), CHILD_SECONDS))
    assert CRITICAL.tag == tag
    return {"pid": os.getpid(), "default_lane": default_lane}


def fork_and_run(func, *args):
    """Run ``func(*args)`` in a forked child; return its JSON-able result or
    raise with the child's traceback."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        status = 1
        try:
            os.close(read_end)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(CHILD_SECONDS)  # a hung child dies
            try:
                report = {"ok": func(*args)}
                status = 0
            except BaseException:
                report = {"error": traceback.format_exc()}
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        return _child_report(pid, read_end)
    finally:
        os.close(read_end)
        _reap(pid)


def _child_report(pid, read_end):
    chunks, deadline = [], time.monotonic() + CHILD_SECONDS + 5
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
            raise AssertionError(f"child {pid} hung")
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    report = json.loads(b"".join(chunks) or b'{"error": "child died without a report"}')
    if "error" in report:
        raise AssertionError(f"child {pid} failed:\n{report['error']}")
    return report["ok"]


def _reap(pid, seconds=10.0):
    """Wait for *pid* to exit (bounded); kill it if it does not. Its status."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not exit")


def test_child_of_a_used_parent_can_use_everything():
    parent = use_everything("parent")
    # Fork while lanes are busy too: the default lane and a context's lane.
    gate = threading.Event()
    SyncToAsync.single_thread_executor.submit(gate.wait, CHILD_SECONDS)
    from asgiref_fast._lanes import LaneExecutor

    busy = LaneExecutor()
    busy.submit(gate.wait, CHILD_SECONDS)
    try:
        child = fork_and_run(use_everything, "child")
        # The parent's Local data came along, as threading.local data does.
        assert fork_and_run(lambda: LOCAL.tag) == "parent"
    finally:
        gate.set()
        busy.shutdown()
    assert child["pid"] != os.getpid()
    assert use_everything("parent again") == parent  # same lane as before


def test_a_child_leaves_the_parents_warm_loops_working():
    # A forked child shares each warm loop's epoll instance with the parent.
    # Were the child to close its copy of a loop (as Python 3.13 does when
    # the dead lane's thread state goes), the parent's loop would stop
    # hearing its self-pipe, and a call needing a wake-up from another
    # thread would hang.
    import gc

    async def wake_from_another_thread():
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: id(loop))

    async def warm_loop():
        # No other thread touches the loop: on a free-threaded build, a
        # reference another thread drops is released only later (biased
        # reference counting), and the loop, looking held, would not be kept.
        return id(asyncio.get_running_loop())

    pinned = AsyncSingleThreadContext()  # one lane, so one warm loop
    pinned.__enter__()
    before = async_to_sync(warm_loop)()
    fork_and_run(lambda: [use_everything("child"), gc.collect()][1])
    outcome = []
    call = functools.partial(contextvars.copy_context().run, async_to_sync(wake_from_another_thread))
    caller = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    caller.start()
    caller.join(CHILD_SECONDS)
    # Left pinned if it hung: leaving would wait for the stuck lane.
    assert outcome == [before], "the parent's warm loop stopped hearing wake-ups"
    pinned.__exit__(None, None, None)


@pytest.mark.asyncio
async def test_fork_from_inside_a_hop():
    # multiprocessing's fork start method, from a sync view: the child's only
    # thread is the lane the parent's call ran on.
    def fork_here():
        return fork_and_run(use_everything, "child of a lane")

    async with ThreadSensitiveContext():
        child = await asyncio.wait_for(sync_to_async(fork_here)(), CHILD_SECONDS + 10)
    assert child["pid"] != os.getpid()
    assert await sync_to_async(abs)(-1) == 1  # the parent's loop and lanes still work


@pytest.mark.asyncio
async def test_fork_from_inside_a_hop_on_the_process_wide_lane():
    def fork_here():
        return fork_and_run(use_everything, "child of the process-wide lane")

    child = await asyncio.wait_for(sync_to_async(fork_here)(), CHILD_SECONDS + 10)
    assert child["pid"] != os.getpid()


# --- pre-fork: the parent loads the app, workers serve requests ------------------


def wsgi_app(environ, start_response):
    body = json.dumps(
        {
            "pid": os.getpid(),
            "path": environ["PATH_INFO"],
            "thread": current().name,
            "tag": LOCAL.tag,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


APP = WsgiToAsgi(wsgi_app)


async def serve_one(path):
    """One request the way Django serves it: a context, sync middleware, the view."""
    sent = []
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "path": path,
        "query_string": b"", "headers": [],
    }

    async def receive():
        return {"type": "http.request"}

    async def send(message):
        sent.append(message)

    def middleware():
        LOCAL.tag = path  # seen by the view, on the same thread
        return current().name

    async with ThreadSensitiveContext():
        middleware_thread = await sync_to_async(middleware)()
        await APP(scope, receive, send)
    response = json.loads(sent[1]["body"])
    assert sent[0]["status"] == 200 and response["path"] == path
    assert response["thread"] == middleware_thread and response["tag"] == path
    return response


def worker(sock):
    """A pre-forked worker: serve request lines until the master hangs up."""

    async def main():
        reader, writer = await asyncio.open_connection(sock=sock)
        while line := await reader.readline():
            response = await serve_one(line.decode().strip())
            writer.write(json.dumps(response).encode() + b"\n")
            await writer.drain()
        writer.close()

    asyncio.run(asyncio.wait_for(main(), CHILD_SECONDS))
    return "done"


def test_prefork_workers_serve_requests(stress):
    workers, requests = (8, 300) if stress else (3, 40)
    # The master imports and uses it all before forking, as gunicorn --preload does.
    use_everything("master")
    assert asyncio.run(serve_one("/master"))["pid"] == os.getpid()

    children = {}
    try:
        for _ in range(workers):
            master_end, worker_end = socket.socketpair()
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                status = 1
                try:
                    signal.signal(signal.SIGALRM, signal.SIG_DFL)
                    signal.alarm(CHILD_SECONDS)
                    for other in children.values():
                        other[0].close()
                    master_end.close()
                    os.close(read_end)
                    worker(worker_end)
                    status = 0
                except BaseException:
                    os.write(write_end, traceback.format_exc().encode()[-4000:])
                finally:
                    os._exit(status)
            worker_end.close()
            os.close(write_end)
            children[pid] = (master_end, read_end)

        for pid, (master_end, read_end) in children.items():
            master_end.settimeout(CHILD_SECONDS)
            paths = [f"/{pid}/{n}" for n in range(requests)]
            master_end.sendall("".join(p + "\n" for p in paths).encode())
            with master_end.makefile("rb") as replies:
                for path in paths:
                    line = replies.readline()
                    if not line:
                        raise AssertionError(os.read(read_end, 4000).decode() or "worker died")
                    reply = json.loads(line)
                    assert (reply["pid"], reply["path"]) == (pid, path)
            master_end.close()  # the worker sees EOF and exits

        for pid, (_, read_end) in list(children.items()):
            status = _reap(pid)
            assert status == 0, os.read(read_end, 4000).decode()
            os.close(read_end)
            del children[pid]
    finally:
        for pid, (master_end, read_end) in children.items():
            master_end.close()
            os.close(read_end)
            try:
                _reap(pid, seconds=1)
            except AssertionError:
                pass
    # The master is unaffected.
    assert asyncio.run(serve_one("/master/after"))["pid"] == os.getpid()


def test_fork_hooks_run_in_their_steps_order_whatever_the_import_order():
    from asgiref_fast import _fork

    def report():
        return {"order": ran, "generation": _fork.generation, "pid": _fork.pid == os.getpid()}

    ran = []
    names = []
    # Registered last-step first: the registry, not the order of
    # registration, decides.
    for step in reversed(_fork.STEPS):
        def hook(step=step):
            ran.append(step)
        hook.__qualname__ = f"test_hook_{step}"
        names.append((step, f"{hook.__module__}.{hook.__qualname__}"))
        _fork.on_fork(step, after_in_child=hook)
    try:
        before = _fork.generation
        child = fork_and_run(report)
        assert child == {"order": list(_fork.STEPS), "generation": before + 1, "pid": True}
        assert ran == [] and _fork.generation == before  # nothing ran in the parent
        with pytest.raises(ValueError, match="unknown fork step 'lane'"):
            _fork.on_fork("lane", after_in_child=report)
    finally:
        for step, name in names:
            _fork._hooks["after_in_child"][step].pop(name, None)
