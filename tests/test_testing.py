import asyncio
import contextvars

import pytest

from asgiref_fast.testing import ApplicationCommunicator

request_id = contextvars.ContextVar("request_id", default="unset")


async def echo_app(scope, receive, send):
    while True:
        message = await receive()
        await send({"echo": message, "scope": scope})


async def blocked_app(scope, receive, send):
    await asyncio.Event().wait()


def test_construction_needs_no_event_loop():
    communicator = ApplicationCommunicator(echo_app, {"type": "test"})
    assert communicator.scope == {"type": "test"}
    assert communicator.application is echo_app
    # Nothing is started until first use.
    assert communicator._future is None
    communicator.stop()


def test_asgi2_application_is_wrapped():
    class Legacy:
        def __init__(self, scope):
            self.scope = scope

        async def __call__(self, receive, send):
            await send(await receive())

    communicator = ApplicationCommunicator(Legacy, {})
    assert communicator.application is not Legacy

    async def roundtrip():
        await communicator.send_input({"hello": 1})
        return await communicator.receive_output()

    assert asyncio.run(roundtrip()) == {"hello": 1}


@pytest.mark.asyncio
async def test_queues_are_created_once_and_task_lazily():
    communicator = ApplicationCommunicator(echo_app, {"k": "v"})
    assert communicator.input_queue is communicator.input_queue
    assert communicator.output_queue is communicator.output_queue
    assert communicator._future is None
    future = communicator.future
    assert isinstance(future, asyncio.Task)
    assert communicator.future is future
    communicator.stop()
    with pytest.raises(asyncio.CancelledError):
        await future


@pytest.mark.asyncio
async def test_send_and_receive_roundtrip():
    communicator = ApplicationCommunicator(echo_app, {"k": "v"})
    await communicator.send_input({"n": 1})
    await communicator.send_input({"n": 2})
    assert await communicator.receive_output() == {"echo": {"n": 1}, "scope": {"k": "v"}}
    assert await communicator.receive_output() == {"echo": {"n": 2}, "scope": {"k": "v"}}
    communicator.stop()


@pytest.mark.asyncio
async def test_application_starts_with_empty_context():
    async def app(scope, receive, send):
        before = request_id.get()
        request_id.set("from-app")
        await send({"seen": before, "now": request_id.get()})

    request_id.set("from-test")
    communicator = ApplicationCommunicator(app, {})
    assert await communicator.receive_output() == {"seen": "unset", "now": "from-app"}
    await communicator.wait()
    # Nor does the app's change leak back into the test.
    assert request_id.get() == "from-test"


@pytest.mark.asyncio
async def test_receive_output_timeout_cancels_app():
    cancelled = asyncio.Event()

    async def app(scope, receive, send):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    communicator = ApplicationCommunicator(app, {})
    task = asyncio.current_task()
    cancelling_before = task.cancelling()
    with pytest.raises(TimeoutError):
        await communicator.receive_output(timeout=0.05)
    assert cancelled.is_set()
    assert communicator.future.cancelled()
    # The timeout is fully handled: our own task is not left "cancelling".
    assert task.cancelling() == cancelling_before


@pytest.mark.asyncio
async def test_receive_output_reports_app_error_instead_of_timeout():
    async def app(scope, receive, send):
        await receive()
        raise ZeroDivisionError("boom")

    communicator = ApplicationCommunicator(app, {})
    await communicator.send_input({})
    with pytest.raises(ZeroDivisionError, match="boom"):
        await communicator.receive_output(timeout=0.2)


@pytest.mark.asyncio
async def test_calls_after_app_failed_raise_its_error():
    async def app(scope, receive, send):
        raise KeyError("early")

    communicator = ApplicationCommunicator(app, {})
    with pytest.raises(KeyError):
        await communicator.wait()
    with pytest.raises(KeyError):
        await communicator.send_input({})
    with pytest.raises(KeyError):
        await communicator.receive_output()
    with pytest.raises(KeyError):
        await communicator.receive_nothing()
    with pytest.raises(KeyError):
        communicator.stop()
    communicator.stop(exceptions=False)


@pytest.mark.asyncio
async def test_output_already_sent_is_received_even_after_app_returned():
    async def app(scope, receive, send):
        await send({"last": True})

    communicator = ApplicationCommunicator(app, {})
    await communicator.wait()
    assert communicator.future.done()
    assert await communicator.receive_output() == {"last": True}


@pytest.mark.asyncio
async def test_wait_returns_when_app_finishes():
    async def app(scope, receive, send):
        await send(await receive())

    communicator = ApplicationCommunicator(app, {})
    await communicator.send_input({"x": 1})
    await communicator.wait(timeout=5)
    assert communicator.future.done()
    assert communicator.future.result() is None
    assert await communicator.receive_output() == {"x": 1}


@pytest.mark.asyncio
async def test_wait_timeout_cancels_app_quietly():
    communicator = ApplicationCommunicator(blocked_app, {})
    task = asyncio.current_task()
    cancelling_before = task.cancelling()
    # Like asgiref, running out of time is not an error for wait().
    assert await communicator.wait(timeout=0.05) is None
    assert communicator.future.cancelled()
    assert task.cancelling() == cancelling_before
    # The outcome (cancellation) is re-raised by later calls.
    with pytest.raises(asyncio.CancelledError):
        communicator.stop()


@pytest.mark.asyncio
async def test_wait_swallows_external_cancellation_of_app():
    communicator = ApplicationCommunicator(blocked_app, {})
    future = communicator.future
    communicator.stop()
    assert await communicator.wait() is None
    assert future.cancelled()


@pytest.mark.asyncio
async def test_stop_cancels_running_app():
    communicator = ApplicationCommunicator(blocked_app, {})
    communicator.stop()  # not started: nothing to do
    assert communicator._future is None
    future = communicator.future
    communicator.stop()
    with pytest.raises(asyncio.CancelledError):
        await future
    assert future.cancelled()


@pytest.mark.asyncio
async def test_stop_after_clean_exit_is_quiet():
    async def app(scope, receive, send):
        return None

    communicator = ApplicationCommunicator(app, {})
    await communicator.wait()
    communicator.stop()
    communicator.stop(exceptions=True)


@pytest.mark.asyncio
async def test_del_cancels_running_app():
    communicator = ApplicationCommunicator(blocked_app, {})
    future = communicator.future
    del communicator
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await future


def test_del_tolerates_closed_loop():
    loop = asyncio.new_event_loop()
    communicator = ApplicationCommunicator(blocked_app, {})

    async def start():
        return communicator.future

    future = loop.run_until_complete(start())
    loop.run_until_complete(asyncio.sleep(0))  # let the app reach its await
    loop.close()
    assert not future.done()
    with pytest.raises(RuntimeError):
        communicator.stop(exceptions=False)
    communicator.__del__()  # must not raise
    # The task can never finish now; spare the "destroyed but pending" log.
    future._log_destroy_pending = False
    future.get_coro().close()


@pytest.mark.asyncio
async def test_receive_nothing():
    async def app(scope, receive, send):
        while True:
            message = await receive()
            for _ in range(message["count"]):
                await send({"n": message["count"]})

    communicator = ApplicationCommunicator(app, {})
    assert await communicator.receive_nothing() is True
    await communicator.send_input({"count": 2})
    assert await communicator.receive_nothing() is False
    # Peeking does not consume.
    assert await communicator.receive_output() == {"n": 2}
    assert await communicator.receive_nothing() is False
    assert await communicator.receive_output() == {"n": 2}
    assert await communicator.receive_nothing(timeout=0.02, interval=0.005) is True
    # A zero timeout still checks the queue once.
    assert await communicator.receive_nothing(timeout=0) is True
    communicator.output_queue.put_nowait({"n": 0})
    assert await communicator.receive_nothing(timeout=0) is False
    communicator.stop()


def test_receive_nothing_with_lazily_bound_loop():
    async def app(scope, receive, send):
        await send(await receive())

    communicator = ApplicationCommunicator(app, {})

    async def scenario():
        assert await communicator.receive_nothing() is True
        await communicator.send_input({"a": 1})
        assert await communicator.receive_nothing() is False
        assert await communicator.receive_output() == {"a": 1}
        await communicator.wait()

    asyncio.run(scenario())
