"""CurrentThreadExecutor: other threads hand work to a waiting thread."""

import threading
from concurrent.futures import Future

import pytest

from asgiref_fast.current_thread_executor import CurrentThreadExecutor


def run_elsewhere(fn):
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_work_runs_on_the_owning_thread_in_order():
    executor = CurrentThreadExecutor(None)
    done: Future = Future()
    results = []

    def producer():
        futures = [executor.submit(lambda i=i: (i, threading.current_thread())) for i in range(50)]
        results.extend(f.result(timeout=10) for f in futures)
        done.set_result(None)

    thread = run_elsewhere(producer)
    executor.run_until_future(done)
    thread.join(10)
    assert [i for i, _ in results] == list(range(50))
    assert {t for _, t in results} == {threading.current_thread()}


def test_exceptions_reach_the_submitter():
    executor = CurrentThreadExecutor(None)
    done: Future = Future()
    seen = []

    def producer():
        try:
            executor.submit(lambda: 1 / 0).result(timeout=10)
        except ZeroDivisionError as exc:
            seen.append(exc)
        done.set_result(None)

    run_elsewhere(producer)
    executor.run_until_future(done)
    assert len(seen) == 1


def test_wrong_threads_are_refused():
    executor = CurrentThreadExecutor(None)
    with pytest.raises(RuntimeError, match="from its own thread"):
        executor.submit(print)
    errors = []

    def other():
        try:
            executor.run_until_future(Future())
        except RuntimeError as exc:
            errors.append(exc)

    run_elsewhere(other).join(10)
    assert len(errors) == 1


def test_work_after_quitting_goes_to_the_outer_executor_or_fails():
    outer = CurrentThreadExecutor(None)
    inner = CurrentThreadExecutor(outer)
    finished: Future = Future()
    finished.set_result(None)
    inner.run_until_future(finished)  # inner has quit

    outer_done: Future = Future()
    results = []

    def producer():
        results.append(inner.submit(lambda: threading.current_thread()).result(timeout=10))
        outer_done.set_result(None)

    run_elsewhere(producer)
    outer.run_until_future(outer_done)
    assert results == [threading.current_thread()]

    error: Future = Future()
    run_elsewhere(lambda: error.set_result(_try(lambda: inner.submit(print)))).join(10)
    assert "already quit" in str(error.result(timeout=10))


def _try(fn):
    try:
        fn()
    except RuntimeError as exc:
        return exc
    return None


def test_cancelled_future_is_skipped():
    executor = CurrentThreadExecutor(None)
    done: Future = Future()
    ran = []

    def producer():
        future = executor.submit(ran.append, 1)
        future.cancel()
        executor.submit(ran.append, 2).result(timeout=10)
        done.set_result(None)

    run_elsewhere(producer)
    executor.run_until_future(done)
    assert ran == [2]


# -- What async_to_sync uses beyond upstream's API: push, stop, run_until_stopped

def test_pushed_calls_run_on_the_owning_thread_until_stopped():
    executor = CurrentThreadExecutor(None)
    ran = []

    def producer():
        for i in range(20):
            executor.push(lambda i=i: ran.append((i, threading.current_thread())))
        executor.stop()

    thread = run_elsewhere(producer)
    executor.run_until_stopped()  # returns once stopped and every pushed call has run
    thread.join(10)
    assert [i for i, _ in ran] == list(range(20))
    assert {t for _, t in ran} == {threading.current_thread()}
    with pytest.raises(RuntimeError, match="already quit"):
        executor.push(print)


def test_run_until_stopped_is_refused_on_another_thread():
    executor = CurrentThreadExecutor(None)
    error: Future = Future()
    run_elsewhere(lambda: error.set_result(_try(executor.run_until_stopped))).join(10)
    assert "from a different thread" in str(error.result(timeout=10))
