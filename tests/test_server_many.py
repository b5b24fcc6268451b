"""StatelessServer with many application instances: max_applications holds
under a flood, finished instances are reaped, and no instance's failure or
cancellation takes the others (or the server) down."""

import asyncio
import logging

import pytest

import asgiref_fast.server
from asgiref_fast.server import StatelessServer

CHECK = 0.005  # the checker's interval in these tests


class QueueServer(StatelessServer):
    """Messages come from an in-memory queue; what instances send is collected."""

    application_checker_interval = CHECK

    def __init__(self, application, max_applications=1000):
        super().__init__(application, max_applications=max_applications)
        self.incoming = asyncio.Queue()
        self.sent = asyncio.Queue()
        self.reported = []
        self.most_instances = 0

    async def handle(self):
        while (item := await self.incoming.get()) is not None:
            scope_id, message = item
            queue = self.get_or_create_application_instance(scope_id, {"id": scope_id})
            self.most_instances = max(self.most_instances, len(self.application_instances))
            queue.put_nowait(message)

    async def application_send(self, scope, message):
        await self.sent.put((scope["id"], message))

    async def application_exception(self, exception, application_details):
        self.reported.append((application_details["scope"]["id"], exception))

    def cancel_all(self):
        for details in self.application_instances.values():
            details["future"].cancel()


async def echo(scope, receive, send):
    while True:
        await send(await receive())


async def until(predicate, seconds=10):
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(CHECK)


@pytest.mark.asyncio
async def test_max_applications_holds_under_a_flood(stress):
    limit, flood = (100, 50_000) if stress else (50, 2_000)
    server = QueueServer(echo, max_applications=limit)
    futures = []
    for n in range(flood):
        server.get_or_create_application_instance(n, {"id": n})
        assert len(server.application_instances) <= limit
        futures.append(server.application_instances[n]["future"])
    assert list(server.application_instances) == list(range(flood - limit, flood))
    await asyncio.sleep(0)
    # The evicted ones are cancelled, not left running.
    async with asyncio.timeout(10):
        await asyncio.gather(*futures[:-limit], return_exceptions=True)
    assert all(f.cancelled() for f in futures[:-limit])
    assert not any(f.done() for f in futures[-limit:])
    server.cancel_all()


@pytest.mark.asyncio
async def test_recently_used_instances_survive_eviction_even_on_equal_timestamps(monkeypatch):
    monkeypatch.setattr(asgiref_fast.server.time, "time", lambda: 1000.0)  # a coarse clock
    server = QueueServer(echo, max_applications=3)
    for name in "abc":
        server.get_or_create_application_instance(name, {"id": name})
    server.get_or_create_application_instance("a", {"id": "a"})  # a is in use again
    server.get_or_create_application_instance("d", {"id": "d"})
    assert set(server.application_instances) == {"a", "c", "d"}
    server.cancel_all()


@pytest.mark.asyncio
async def test_many_instances_serve_messages_and_are_reaped_when_done(stress):
    instances, messages = (2000, 10) if stress else (300, 4)

    async def app(scope, receive, send):
        for _ in range(messages):
            await send(await receive())

    server = QueueServer(app, max_applications=instances)
    runner = asyncio.create_task(server.arun())
    try:
        for m in range(messages):
            for n in range(instances):
                server.incoming.put_nowait((n, m))
        async with asyncio.timeout(30):
            got = [await server.sent.get() for _ in range(instances * messages)]
        assert sorted(got) == sorted((n, m) for n in range(instances) for m in range(messages))
        assert server.most_instances == instances
        # All finished: the checker reaps every one of them.
        await until(lambda: not server.application_instances)
        assert server.reported == []
    finally:
        runner.cancel()
        server.cancel_all()


@pytest.mark.asyncio
async def test_failing_and_cancelled_instances_do_not_take_down_the_others(caplog):
    """Some instances raise, some are cancelled from outside, some cancel
    themselves, and reporting one failure fails too: the checker and every
    other instance keep going."""

    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message == "raise":
                raise ValueError(f"instance {scope['id']} failed")
            if message == "cancel yourself":
                raise asyncio.CancelledError
            await send(message)

    class Server(QueueServer):
        async def application_exception(self, exception, application_details):
            await super().application_exception(exception, application_details)
            if application_details["scope"]["id"] == "unlucky":
                raise RuntimeError("reporting failed too")

    server = Server(app)
    runner = asyncio.create_task(server.arun())
    survivors = [f"ok-{n}" for n in range(20)]
    try:
        for name in survivors:
            server.incoming.put_nowait((name, "hello"))
        async with asyncio.timeout(10):
            for _ in survivors:
                await server.sent.get()
        doomed = {f"fail-{n}": "raise" for n in range(10)}
        doomed.update({f"self-{n}": "cancel yourself" for n in range(5)})
        doomed["unlucky"] = "raise"
        for name, message in doomed.items():
            server.incoming.put_nowait((name, message))
        await until(
            lambda: len(server.reported) == 11
            and not set(doomed) & set(server.application_instances)
        )
        # Cancelled from outside (a timeout, an operator): reaped quietly.
        for name in survivors[:5]:
            server.application_instances[name]["future"].cancel()
        await until(lambda: not set(survivors[:5]) & set(server.application_instances))

        assert not runner.done()  # the server is still up...
        for name in survivors[5:]:
            server.incoming.put_nowait((name, "still there?"))
        async with asyncio.timeout(10):  # ...and so is everyone else
            replies = sorted([await server.sent.get() for _ in survivors[5:]])
        assert replies == sorted((name, "still there?") for name in survivors[5:])
        assert sorted(name for name, _ in server.reported) == sorted(
            n for n, m in doomed.items() if m == "raise"
        )
        assert all(isinstance(e, ValueError) for _, e in server.reported)
        assert "application_exception() failed" in caplog.text
        server.incoming.put_nowait(None)
        async with asyncio.timeout(10):
            await runner
    finally:
        runner.cancel()
        server.cancel_all()


@pytest.mark.asyncio
async def test_a_replacement_made_while_reporting_is_kept():
    # application_exception() may restart the instance under the same id.
    async def app(scope, receive, send):
        if await receive() == "raise":
            raise ValueError("restart me")
        await send("restarted")
        await receive()

    class Restarting(QueueServer):
        async def application_exception(self, exception, application_details):
            scope_id = application_details["scope"]["id"]
            del self.application_instances[scope_id]
            self.get_or_create_application_instance(scope_id, {"id": scope_id}).put_nowait("go")

    class Rounds(dict):
        """Counts the checker's rounds: each one lists the instances."""

        count = 0

        def items(self):
            self.count += 1
            return super().items()

    server = Restarting(app)
    server.application_instances = instances = Rounds()
    runner = asyncio.create_task(server.arun())
    try:
        server.incoming.put_nowait(("x", "raise"))
        async with asyncio.timeout(10):
            assert await server.sent.get() == ("x", "restarted")
        rounds = instances.count
        await until(lambda: instances.count >= rounds + 3)
        assert "x" in server.application_instances
        assert not server.application_instances["x"]["future"].done()
    finally:
        runner.cancel()
        server.cancel_all()


def test_default_reporting_of_a_failure_logs_it(caplog):
    async def fail(scope, receive, send):
        raise KeyError("nope")

    class Once(StatelessServer):
        application_checker_interval = CHECK

        async def handle(self):
            self.get_or_create_application_instance("x", {})
            await until(lambda: not self.application_instances)

        async def application_send(self, scope, message):
            pass

    with caplog.at_level(logging.ERROR):
        Once(fail).run()
    assert "Exception inside application: 'nope'" in caplog.text
