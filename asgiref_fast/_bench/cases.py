"""Each benchmark, defined once.

A case's ``make(api)`` prepares it against one implementation (see
implementations.py) and returns ``(batch, close)``: ``batch()`` performs the
operation ``ops`` times, ``close()`` releases what ``make`` set up. Times are
reported per operation.
"""

import asyncio
import contextvars
import functools
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    group: str
    ops: int  # operations per batch
    make: Callable[[Any], "tuple[Callable[[], Any], Callable[[], None]]"]
    quick: bool = True  # part of --quick
    bounds: str = ""  # for a floor: the case it is measured in turn with


CASES: "dict[str, Case]" = {}


def case(name: str, title: str, group: str, ops: int, quick: bool = True):
    def register(make):
        CASES[name] = Case(name, title, group, ops, make, quick)
        return make

    return register


def _nothing() -> None:
    pass


# -- Local -------------------------------------------------------------------

def _local_loop(body: Callable[[Any], None], critical: bool = False):
    def make(api):
        local = api.local.Local(thread_critical=critical)
        local.value = 1

        def batch():
            for _ in range(100):
                body(local)

        return batch, _nothing

    return make


def _get10(local):
    local.value; local.value; local.value; local.value; local.value  # noqa: E702
    local.value; local.value; local.value; local.value; local.value  # noqa: E702


def _set10(local):
    local.value = 1; local.value = 2; local.value = 3; local.value = 4; local.value = 5  # noqa: E702
    local.value = 6; local.value = 7; local.value = 8; local.value = 9; local.value = 0  # noqa: E702


def _setdel10(local):
    for _ in range(10):
        local.other = 1
        del local.other


def _missing10(local):
    for _ in range(10):
        getattr(local, "missing", None)


case("local_get", "Local getattr", "local", 1000)(_local_loop(_get10))
case("local_set", "Local setattr", "local", 1000)(_local_loop(_set10))
case("local_setdel", "Local setattr + delattr", "local", 1000)(_local_loop(_setdel10))
case("local_missing", "Local getattr, missing attribute", "local", 1000)(_local_loop(_missing10))
case("local_tc_get", "thread-critical Local getattr", "local", 1000)(
    _local_loop(_get10, critical=True)
)


case("local_tc_missing", "thread-critical Local getattr, missing", "local", 1000, quick=False)(
    _local_loop(_missing10, critical=True)
)
case("local_tc_set", "thread-critical Local setattr", "local", 1000, quick=False)(
    _local_loop(_set10, critical=True)
)
case("local_tc_setdel", "thread-critical Local setattr + delattr", "local", 1000, quick=False)(
    _local_loop(_setdel10, critical=True)
)


def _in_running_loop(critical: bool):
    def make(api):
        local = api.local.Local(thread_critical=critical)
        loop = asyncio.new_event_loop()

        async def set_and_read():
            local.value = 1
            for _ in range(100):
                _get10(local)

        return (lambda: loop.run_until_complete(set_and_read())), loop.close

    return make


case("local_get_in_loop", "Local getattr in a running loop", "local", 1000)(_in_running_loop(False))
case("local_tc_get_in_loop", "thread-critical Local getattr in a running loop", "local", 1000,
     quick=False)(_in_running_loop(True))


@case("cte_roundtrip", "CurrentThreadExecutor round trip", "executor", 200)
def _cte_roundtrip(api):
    def batch():
        executor = api.current_thread_executor.CurrentThreadExecutor(None)
        done: Future = Future()

        def producer():
            for _ in range(200):
                executor.submit(_nothing).result()
            done.set_result(None)

        # A daemon: should the run be cut short, it waits on a result forever.
        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        executor.run_until_future(done)
        thread.join()

    return batch, _nothing


# -- sync_to_async / async_to_sync ---------------------------------------------

def _in_loop(make_coro):
    """A case whose batch runs a coroutine on a loop of its own."""

    def make(api):
        loop = asyncio.new_event_loop()
        coro_fn, close = make_coro(api)

        def finish():
            close()
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

        return (lambda: loop.run_until_complete(coro_fn())), finish

    return make


def _awaited(step, times: int):
    """A batch that awaits ``step()`` *times* times, one after the other."""

    async def batch():
        for _ in range(times):
            await step()

    return batch, _nothing


def _gathered(step, times: int):
    """A batch that gathers *times* ``step()`` at once."""

    async def batch():
        await asyncio.gather(*(step() for _ in range(times)))

    return batch, _nothing


def _request(api, hops: int):
    """A request as Django makes it: *hops* hops in a ThreadSensitiveContext."""
    hop = api.sync.sync_to_async(_nothing)
    context = api.sync.ThreadSensitiveContext

    async def request():
        async with context():
            for _ in range(hops):
                await hop()

    return request


@case("hop", "await sync_to_async(f)() (thread-sensitive)", "sync", 200)
@_in_loop
def _hop(api):
    return _awaited(api.sync.sync_to_async(_nothing), 200)


@case("hop_100_vars", "hop with 100 context variables set", "sync", 200)
@_in_loop
def _hop_100_vars(api):
    hop = api.sync.sync_to_async(_nothing)
    variables = [contextvars.ContextVar(f"bench_{i}") for i in range(100)]

    async def batch():
        for i, var in enumerate(variables):
            var.set(i)
        for _ in range(200):
            await hop()

    return batch, _nothing


@case("tsc_hop", "ThreadSensitiveContext enter + hop + exit", "sync", 100)
@_in_loop
def _tsc_hop(api):
    return _awaited(_request(api, hops=1), 100)


@case("tsc_64", "64 concurrent ThreadSensitiveContexts, 4 hops each", "sync", 64)
@_in_loop
def _tsc_64(api):
    return _gathered(_request(api, hops=4), 64)


@case("gather_4000", "4000 gathered non-thread-sensitive hops", "sync", 4000, quick=False)
@_in_loop
def _gather_4000(api):
    return _gathered(api.sync.sync_to_async(_nothing, thread_sensitive=False), 4000)


@case("a2s_from_sync", "async_to_sync(f)() from sync code", "sync", 50)
def _a2s_from_sync(api):
    async def nothing():
        pass

    call = api.sync.async_to_sync(nothing)

    def batch():
        for _ in range(50):
            call()

    return batch, _nothing


@case("a2s_in_s2a", "async_to_sync inside sync_to_async", "sync", 100)
@_in_loop
def _a2s_in_s2a(api):
    async def nothing():
        pass

    def sync_part():
        call = api.sync.async_to_sync(nothing)
        for _ in range(100):
            call()

    hop = api.sync.sync_to_async(sync_part)
    return hop, _nothing


# -- Floors: what any hop costs on this machine --------------------------------
#
# Each is measured in turn with the case it bounds (the plain hop here), to
# show how close that comes to what the machine allows: no code that crosses
# threads can do less than these.

FLOORS: "dict[str, Case]" = {}


def floor(name: str, title: str, ops: int, bounds: str = "hop"):
    def register(make):
        FLOORS[name] = Case(name, title, "floor", ops, lambda api: make(), bounds=bounds)
        return make

    return register


@floor("lock_pingpong", "floor: two threads pass a token through locks, round trip", 200)
def _lock_pingpong():
    there, back = threading.Lock(), threading.Lock()
    there.acquire()
    back.acquire()
    stop = []

    def other():
        while True:
            there.acquire()
            if stop:
                return
            back.release()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()

    def batch():
        for _ in range(200):
            there.release()
            back.acquire()

    def close():
        # May follow a batch cut short (Ctrl-C, SIGTERM) between its two
        # steps: wake the thread only if it waits, then it sees *stop*.
        stop.append(True)
        if there.locked():
            there.release()
        thread.join(10)

    return batch, close


def _loop_roundtrip(threads: int):
    # The least a hop can do: a lock to wake the thread, a pipe the loop
    # watches to wake the loop, a future to resume the waiting coroutine;
    # with several threads, each has a coroutine waking it in turn.
    loop = asyncio.new_event_loop()
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    done: "list[Any]" = []

    def answer():
        os.read(read_fd, 4096)
        while done:
            done.pop().set_result(None)

    class Other:
        def __init__(self):
            self.wake = threading.Lock()
            self.wake.acquire()
            self.pending: "list[Any]" = []
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()

        def run(self):
            while True:
                self.wake.acquire()
                future = self.pending.pop()
                if future is None:
                    return
                done.append(future)
                os.write(write_fd, b"x")

        async def hops(self):
            for _ in range(200):
                future = loop.create_future()
                self.pending.append(future)
                self.wake.release()
                await future

    loop.add_reader(read_fd, answer)
    others = [Other() for _ in range(threads)]

    async def hops():
        await asyncio.gather(*(other.hops() for other in others))

    def close():
        for other in others:
            other.pending.append(None)
            if other.wake.locked():  # else a cut-short batch already woke it
                other.wake.release()
            other.thread.join(10)
        loop.remove_reader(read_fd)
        loop.close()
        os.close(read_fd)
        os.close(write_fd)

    return (lambda: loop.run_until_complete(hops())), close


floor("loop_roundtrip", "floor: a loop wakes a thread, which wakes the loop back", 200)(
    functools.partial(_loop_roundtrip, 1))


@case("s2a_in_a2s", "sync_to_async inside async_to_sync", "sync", 100)
def _s2a_in_a2s(api):
    hop = api.sync.sync_to_async(_nothing)

    async def async_part():
        for _ in range(100):
            await hop()

    return api.sync.async_to_sync(async_part), _nothing


# -- Whole requests ------------------------------------------------------------

# By concurrency, as the inline floor's worker counted them.
DJANGO_HOPS_PER_REQUEST: "dict[int, float]" = {}


def _django_worker(impl: str, requests: int, concurrency: int):
    """Django requests in a worker process (django_app.py) per implementation
    or floor: Django binds asgiref at import, so each needs a process of its
    own."""
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("ASGIREF_FAST", None)
    if impl == "pure":
        env["ASGIREF_FAST_NO_EXTENSIONS"] = "1"
    else:
        env.pop("ASGIREF_FAST_NO_EXTENSIONS", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "asgiref_fast._bench.django_app", impl],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    if worker.stdout.readline().strip() != "ready":
        worker.kill()
        raise RuntimeError(f"the Django worker for {impl} did not start")

    def batch() -> float:
        worker.stdin.write(f"{requests} {concurrency}\n")
        worker.stdin.flush()
        seconds, *hops = worker.stdout.readline().split()
        if hops:  # the inline floor counts the request's sync_to_async calls
            DJANGO_HOPS_PER_REQUEST[concurrency] = float(hops[0])
        return float(seconds)

    def close() -> None:
        worker.stdin.close()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()

    return batch, close


def _django(requests: int, concurrency: int):
    return lambda api: _django_worker(api.name, requests, concurrency)


case("django_c1", "Django ASGI request, concurrency 1", "django", 100, quick=True)(_django(100, 1))
case("django_c16", "Django ASGI request, concurrency 16", "django", 320, quick=True)(_django(320, 16))

# What the Django request costs without asgiref's part in it, measured in turn
# with the request rows: its work alone, with no thread (every sync_to_async
# call run in place on the loop); what 16 threads contending for the GIL add
# to its sync part, shown by Django's WSGI handler, whose threads never hop;
# and the least a hop costs while 16 threads are in play.
for _concurrency, _requests in ((1, 100), (16, 320)):
    floor(f"django_c{_concurrency}_inline",
          f"floor: Django ASGI request, no thread (sync code run on the loop), concurrency {_concurrency}",
          _requests, bounds=f"django_c{_concurrency}")(
        functools.partial(_django_worker, "inline", _requests, _concurrency))
for _threads, _requests in ((1, 100), (16, 320)):
    floor(f"django_wsgi_{_threads}",
          f"floor: the same app under Django's WSGIHandler, {_threads} thread{'s' * (_threads > 1)}",
          _requests, bounds="django_c16")(functools.partial(_django_worker, "wsgi", _requests, _threads))
floor("loop_roundtrip_16", "floor: a loop and 16 threads wake each other, per round trip", 3200,
      bounds="django_c16")(functools.partial(_loop_roundtrip, 16))


def _hello_wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


_WSGI_SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
    "headers": [(b"host", b"localhost"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 40000), "server": ("localhost", 80),
}


def _wsgi(requests: int, concurrency: int):
    def make(api):
        app = api.wsgi.WsgiToAsgi(_hello_wsgi)
        loop = asyncio.new_event_loop()

        async def one():
            messages = [{"type": "http.request", "body": b"", "more_body": False}]
            sent = []

            async def receive():
                if messages:
                    return messages.pop()
                await asyncio.Event().wait()

            async def send(message):
                sent.append(message)

            await app(dict(_WSGI_SCOPE), receive, send)
            assert sent[0]["status"] == 200

        async def client(n):
            for _ in range(n):
                await one()

        async def run():
            share = requests // concurrency
            await asyncio.gather(*(client(share) for _ in range(concurrency)))

        def finish():
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

        return (lambda: loop.run_until_complete(run())), finish

    return make


case("wsgi_c1", "WsgiToAsgi request, concurrency 1", "wsgi", 100)(_wsgi(100, 1))
case("wsgi_c32", "WsgiToAsgi request, concurrency 32", "wsgi", 320)(_wsgi(320, 32))
