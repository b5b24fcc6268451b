import asyncio
import logging
import signal
import threading

import pytest

import asgiref_fast.server
from asgiref_fast.server import StatelessServer

INSTANCE_KEYS = {"input_queue", "future", "scope", "last_used"}


class QueueServer(StatelessServer):
    """A server whose "network" is a pair of in-memory queues."""

    application_checker_interval = 0.01

    def __init__(self, application, max_applications=1000):
        super().__init__(application, max_applications=max_applications)
        self.incoming = asyncio.Queue()
        self.sent = asyncio.Queue()

    async def handle(self):
        while True:
            item = await self.incoming.get()
            if item is None:
                return
            scope_id, scope, message = item
            self.get_or_create_application_instance(scope_id, scope).put_nowait(message)

    async def application_send(self, scope, message):
        await self.sent.put((scope["user"], message))

    def cancel_all(self):
        for details in self.application_instances.values():
            details["future"].cancel()


async def echo(scope, receive, send):
    while True:
        message = await receive()
        await send(f"{scope['user']}:{message}")


async def wait_until(predicate, limit=5):
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.005)


def test_defaults():
    server = StatelessServer("app")
    assert StatelessServer.application_checker_interval == 0.1
    assert server.application == "app"
    assert server.max_applications == 1000
    assert server.application_instances == {}
    assert asgiref_fast.server.logger.name == "asgiref_fast.server"


@pytest.mark.asyncio
async def test_base_class_methods_must_be_overridden():
    server = StatelessServer(echo)
    with pytest.raises(NotImplementedError):
        await server.handle()
    with pytest.raises(NotImplementedError):
        await server.application_send({}, {})
    with pytest.raises(NotImplementedError):
        await asyncio.wait_for(server.arun(), 5)


@pytest.mark.asyncio
async def test_messages_are_routed_to_one_instance_per_scope_id():
    server = QueueServer(echo)
    for item in [
        ("a", {"user": "alice"}, "hi"),
        ("b", {"user": "bob"}, "yo"),
        ("a", {"user": "ignored"}, "again"),
    ]:
        server.incoming.put_nowait(item)
    runner = asyncio.create_task(server.arun())
    try:
        async with asyncio.timeout(5):
            received = [await server.sent.get() for _ in range(3)]
        assert sorted(received) == [
            ("alice", "alice:again"),
            ("alice", "alice:hi"),
            ("bob", "bob:yo"),
        ]
        assert set(server.application_instances) == {"a", "b"}
        assert server.application_instances["a"]["scope"] == {"user": "alice"}
        server.incoming.put_nowait(None)
        async with asyncio.timeout(5):
            assert await runner is None
    finally:
        runner.cancel()
        server.cancel_all()


@pytest.mark.asyncio
async def test_instance_record_and_reuse():
    server = QueueServer(echo)
    queue = server.get_or_create_application_instance("x", {"user": "x"})
    details = server.application_instances["x"]
    assert set(details) == INSTANCE_KEYS
    assert details["input_queue"] is queue
    assert isinstance(details["future"], asyncio.Future)
    assert details["scope"] == {"user": "x"}
    details["last_used"] = 0
    assert server.get_or_create_application_instance("x", {"user": "other"}) is queue
    assert details["last_used"] > 0  # touched on reuse
    assert server.application_instances["x"] is details
    assert details["scope"] == {"user": "x"}
    server.cancel_all()


@pytest.mark.asyncio
async def test_app_is_called_with_keyword_arguments_and_asgi2_supported():
    async def keyword_only(*, scope, receive, send):
        await send(await receive())

    class Legacy:
        def __init__(self, scope):
            self.scope = scope

        async def __call__(self, receive, send):
            await send(("legacy", await receive()))

    for app, expected in [(keyword_only, "ping"), (Legacy, ("legacy", "ping"))]:
        server = QueueServer(app)
        server.get_or_create_application_instance("k", {"user": "u"}).put_nowait("ping")
        async with asyncio.timeout(5):
            assert await server.sent.get() == ("u", expected)
            await server.application_instances["k"]["future"]


@pytest.mark.asyncio
async def test_send_calls_application_send_with_the_instance_scope():
    calls = []

    class Recorder(QueueServer):
        def application_send(self, scope, message):
            # Called synchronously by send(); the app awaits what it returns.
            calls.append((scope, message))
            return asyncio.sleep(0)

    async def app(scope, receive, send):
        await send("one")
        await send("two")

    server = Recorder(app)
    server.get_or_create_application_instance("id", {"user": "s"})
    async with asyncio.timeout(5):
        await server.application_instances["id"]["future"]
    assert calls == [({"user": "s"}, "one"), ({"user": "s"}, "two")]


@pytest.mark.asyncio
async def test_least_recently_used_instance_is_evicted():
    server = QueueServer(echo, max_applications=3)
    for name in "abc":
        server.get_or_create_application_instance(name, {"user": name})
    # Never more than the maximum (asgiref allowed one more).
    assert set(server.application_instances) == {"a", "b", "c"}
    for when, name in enumerate("bca"):
        server.application_instances[name]["last_used"] = when
    b_future = server.application_instances["b"]["future"]
    server.get_or_create_application_instance("d", {"user": "d"})
    assert set(server.application_instances) == {"a", "c", "d"}
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await b_future
    server.cancel_all()


@pytest.mark.asyncio
async def test_delete_oldest_takes_first_on_tie():
    server = QueueServer(echo)
    for name in "xyz":
        server.get_or_create_application_instance(name, {"user": name})
        server.application_instances[name]["last_used"] = 5
    server.application_instances["x"]["last_used"] = 9
    server.delete_oldest_application_instance()
    assert set(server.application_instances) == {"x", "z"}
    server.cancel_all()


@pytest.mark.asyncio
async def test_delete_application_instance():
    server = QueueServer(echo)
    server.get_or_create_application_instance("gone", {"user": "g"})
    future = server.application_instances["gone"]["future"]
    server.delete_application_instance("gone")
    assert "gone" not in server.application_instances
    assert future.cancelled() or future.cancelling()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await future
    with pytest.raises(KeyError):
        server.delete_application_instance("gone")


@pytest.mark.asyncio
async def test_checker_reaps_finished_instances_and_reports_failures():
    reported = []

    class Reporting(QueueServer):
        async def application_exception(self, exception, application_details):
            reported.append((exception, application_details))

    async def app(scope, receive, send):
        message = await receive()
        if message == "fail":
            raise ValueError("bad input")

    server = Reporting(app)
    for name, message in [("ok", "fine"), ("bad", "fail"), ("idle", None)]:
        server.incoming.put_nowait((name, {"user": name}, message))
    runner = asyncio.create_task(server.arun())
    try:
        # "idle" got a message too; only a never-finishing one would stay.
        await wait_until(lambda: not server.application_instances and reported)
        assert len(reported) == 1
        exception, details = reported[0]
        assert isinstance(exception, ValueError)
        assert set(details) == INSTANCE_KEYS
        assert details["scope"] == {"user": "bad"}
        server.incoming.put_nowait(None)
        async with asyncio.timeout(5):
            await runner
    finally:
        runner.cancel()


@pytest.mark.asyncio
async def test_checker_keeps_running_instances():
    server = QueueServer(echo)
    server.get_or_create_application_instance("live", {"user": "l"})
    checker = asyncio.create_task(server.application_checker())
    try:
        # Let the checker run several rounds.
        ticks = 0

        async def count():
            nonlocal ticks
            while True:
                await asyncio.sleep(server.application_checker_interval)
                ticks += 1

        counter = asyncio.create_task(count())
        await wait_until(lambda: ticks >= 3)
        counter.cancel()
        assert set(server.application_instances) == {"live"}
    finally:
        checker.cancel()
        server.cancel_all()


@pytest.mark.asyncio
async def test_default_application_exception_logs_traceback(caplog):
    def fail_here():
        raise RuntimeError("kaboom")

    try:
        fail_here()
    except RuntimeError as exc:
        error = exc
    server = StatelessServer(echo)
    with caplog.at_level(logging.ERROR):
        await server.application_exception(error, {})
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    text = record.getMessage()
    assert text.startswith("Exception inside application: kaboom\n")
    assert "fail_here" in text
    assert text.endswith("  kaboom")


@pytest.mark.asyncio
async def test_arun_propagates_handle_errors():
    class Broken(QueueServer):
        async def handle(self):
            raise OSError("socket gone")

    with pytest.raises(OSError, match="socket gone"):
        await asyncio.wait_for(Broken(echo).arun(), 5)


def run_in_thread(server):
    errors = []

    def target():
        try:
            server.run()
        except BaseException as exc:  # report anything, even KeyboardInterrupt
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def test_run_returns_after_handle():
    class Once(StatelessServer):
        handled_in = None

        async def handle(self):
            self.handled_in = asyncio.get_running_loop()

        async def application_send(self, scope, message):
            pass

    server = Once(echo)
    run_in_thread(server)
    assert server.handled_in is not None
    assert server.handled_in.is_closed()


def test_run_logs_ctrl_c(caplog):
    # A real SIGINT, as from Ctrl-C: asyncio.run() (in the main thread)
    # cancels the main task and then raises KeyboardInterrupt.
    assert threading.current_thread() is threading.main_thread()
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is handled by someone else here")

    class Interrupted(StatelessServer):
        async def handle(self):
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(10)  # cancelled long before this ends

    server = Interrupted(echo)
    with caplog.at_level(logging.INFO, logger="asgiref_fast.server"):
        server.run()  # returns instead of raising KeyboardInterrupt
    messages = [r.getMessage() for r in caplog.records if r.name == "asgiref_fast.server"]
    assert messages == ["Exiting due to Ctrl-C/interrupt"]
