"""Local and CurrentThreadExecutor, side by side in one run: asgiref_fast's
compiled twin, its pure twin, and upstream asgiref 3.13.0.

    python -m pytest bench/test_local.py --benchmark-columns=median,iqr,rounds

Each operation is a ``benchmark.group``, so its table compares the three; the
tables give times per batch (``extra_info["ops"]`` operations), the summary
at the end each median per operation and its ratio to upstream's. Upstream is
imported only when ``asgiref_fast.install()`` is not in effect (else
``asgiref`` would be asgiref_fast itself).
"""

import asyncio
import importlib
import queue
import sys
import threading
from concurrent.futures import Future

import pytest

from asgiref_fast import current_thread_executor as ours
from asgiref_fast._pure import local as pure_local
from asgiref_fast._pure import workqueue as pure_workqueue

IMPLEMENTATIONS = ("compiled", "pure", "upstream")
OPS = 100  # Local operations per measured call
UNROLL = 10
ROUND_TRIPS = 100  # per CurrentThreadExecutor batch


def _upstream(module: str):
    if any(type(finder).__name__ == "_StandIn" for finder in sys.meta_path):
        return None  # install() is in effect: "asgiref" is asgiref_fast
    try:
        return importlib.import_module(f"asgiref.{module}")
    except ImportError:
        return None


def _compiled(module: str):
    try:
        return importlib.import_module(f"asgiref_fast._cy.{module}")
    except ImportError:
        return None


def local_class(name: str):
    module = {"compiled": _compiled("local"), "pure": pure_local, "upstream": _upstream("local")}[name]
    if module is None:
        pytest.skip(f"{name} is not available here")
    return module.Local


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request, benchmark):
    benchmark.extra_info["implementation"] = request.param
    return request.param


@pytest.fixture(params=[False, True], ids=["default", "thread_critical"])
def critical(request):
    return request.param


def _group(benchmark, operation: str, critical: bool) -> None:
    benchmark.group = f"Local({'thread_critical=True' if critical else ''}) {operation}"
    benchmark.extra_info["ops"] = OPS


def batch(statement: str):
    """A function running *statement* OPS times on its argument ``local``,
    unrolled: the loop, and the harness's call, cost next to nothing per
    operation, so each median per operation is the operation's own cost."""
    body = "\n".join(f"        {statement}" for _ in range(UNROLL))
    namespace: dict = {}
    exec(f"def run(local):\n    for _ in range({OPS // UNROLL}):\n{body}\n", namespace)
    return namespace["run"]


GET = batch("local.x")
SET = batch("local.x = 1")
SET_DELETE = batch("local.x = 1; del local.x")
GET_MISSING = batch("try: local.x\n        except AttributeError: pass")


def test_getattr(benchmark, implementation, critical):
    local = local_class(implementation)(thread_critical=critical)
    local.x = 1
    _group(benchmark, "getattr", critical)
    benchmark(GET, local)


def test_setattr(benchmark, implementation, critical):
    local = local_class(implementation)(thread_critical=critical)
    _group(benchmark, "setattr", critical)
    benchmark(SET, local)


def test_delattr(benchmark, implementation, critical):
    local = local_class(implementation)(thread_critical=critical)
    _group(benchmark, "setattr + delattr", critical)
    benchmark(SET_DELETE, local)


def test_getattr_missing(benchmark, implementation, critical):
    local = local_class(implementation)(thread_critical=critical)
    _group(benchmark, "getattr of a missing attribute", critical)
    benchmark(GET_MISSING, local)


def test_getattr_in_running_loop(benchmark, implementation, critical):
    local = local_class(implementation)(thread_critical=critical)
    _group(benchmark, "getattr inside a running loop", critical)

    async def measure():  # benchmark inside the loop, not around it
        local.x = 1
        benchmark(GET, local)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(measure())
    finally:
        loop.close()


# -- CurrentThreadExecutor: a second thread submits, the owner runs the work --


def executor_factory(name: str):
    """A callable making a CurrentThreadExecutor of implementation *name*."""
    if name == "upstream":
        module = _upstream("current_thread_executor")
        if module is None:
            pytest.skip("upstream is not available here")
        return lambda: module.CurrentThreadExecutor(None)
    workqueue = pure_workqueue if name == "pure" else _compiled("workqueue")
    if workqueue is None:
        pytest.skip("the compiled twins are not built")

    class Executor(ours.CurrentThreadExecutor):
        # Ours, over the chosen twin of its WorkQueue.
        def __init__(self, old_executor=None):
            super().__init__(old_executor)
            self._queue = workqueue.WorkQueue()

    return Executor


class Submitter:
    """A long-lived thread that makes ROUND_TRIPS submit().result() calls
    to the executor it is handed, then completes the batch's future."""

    def __init__(self):
        self.batches: "queue.Queue" = queue.Queue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while (batch := self.batches.get()) is not None:
            executor, done = batch
            try:
                for _ in range(ROUND_TRIPS):
                    executor.submit(int).result(timeout=10)
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)

    def close(self):
        self.batches.put(None)
        self.thread.join(10)


def test_current_thread_executor_round_trip(benchmark, implementation):
    make = executor_factory(implementation)
    submitter = Submitter()

    def batch():
        executor = make()
        done: Future = Future()
        submitter.batches.put((executor, done))
        executor.run_until_future(done)
        done.result(timeout=0)  # raises if a round trip failed

    benchmark.group = f"CurrentThreadExecutor round trip (x{ROUND_TRIPS})"
    benchmark.extra_info["ops"] = ROUND_TRIPS
    try:
        benchmark(batch)
    finally:
        submitter.close()
