"""The deliberate differences from asgiref 3.13.0 (the README's "Differences
from asgiref"), each observed under upstream and under this run's twin (see
differential.py): what upstream does, pinned, beside what we do instead. A
difference that goes away, or changes, fails here, so the list stays true."""

import sys

import pytest

from differential import compare, upstream_available

pytestmark = [
    pytest.mark.skipif(not upstream_available(), reason="upstream asgiref is not installed"),
    pytest.mark.timeout(180),
]


def test_threads_are_reused_across_request_contexts():
    upstream, ours = compare("""
        import asyncio, re, threading
        from asgiref.local import Local
        from asgiref.sync import ThreadSensitiveContext, sync_to_async

        state = threading.local()
        critical = Local(thread_critical=True)

        def leave_state():
            state.connection = "opened by the first request"
            critical.connection = "opened by the first request"

        def find_state():
            return [getattr(state, "connection", None), getattr(critical, "connection", None),
                    re.sub(r"\\d+", "N", threading.current_thread().name)]

        async def main():
            async with ThreadSensitiveContext():
                await sync_to_async(leave_state)()
            async with ThreadSensitiveContext():
                record("second context sees", await sync_to_async(find_state)())

        asyncio.run(main())
    """)
    assert upstream == {"second context sees": [None, None, "ThreadPoolExecutor-N_N"]}
    assert ours == {"second context sees": [
        "opened by the first request", "opened by the first request", "asgiref_fast-lane-N"]}


def test_a_sync_function_raising_stop_iteration():
    upstream, ours = compare("""
        import asyncio
        from asgiref.sync import sync_to_async

        def stop():
            raise StopIteration("done")

        async def main():
            try:
                await asyncio.wait_for(sync_to_async(stop)(), 5)
            except asyncio.TimeoutError:
                record("outcome", "waits forever")
            except Exception as exc:
                record("outcome", [type(exc).__name__, str(exc), type(exc.__cause__).__name__])

        asyncio.run(main())
    """, timeout=60)
    # From 3.13 on, asyncio's futures turn it into this RuntimeError; before,
    # upstream's caller waits forever and ours gets what 3.13 gives.
    assert ours == {
        "outcome": [
            "RuntimeError",
            "StopIteration interacts badly with generators and cannot be raised into a Future",
            "StopIteration",
        ]
    }
    if sys.version_info >= (3, 13):
        assert upstream == ours
    else:
        assert upstream == {"outcome": "waits forever"}


def test_a_query_string_with_non_ascii_bytes():
    upstream, ours = compare("""
        import asyncio
        from asgiref.wsgi import WsgiToAsgi

        seen = []

        def app(environ, start_response):
            seen.append(environ["QUERY_STRING"])
            start_response("200 OK", [])
            return [b""]

        async def main():
            scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/",
                     "query_string": "q=café".encode(), "headers": []}

            async def receive():
                return {"type": "http.request"}

            sent = []

            async def send(message):
                sent.append(message.get("status", message.get("body", b"")))

            await WsgiToAsgi(app)(scope, receive, send)
            record("app saw", [q.encode("latin1").decode() for q in seen])
            record("response", [m if isinstance(m, int) else m.decode() for m in sent])

        asyncio.run(main())
    """)
    # Upstream decodes it as ASCII, and refuses the request as if it had too
    # many duplicate headers.
    assert upstream == {"app saw": [], "response": [400, "Bad Request: Too many duplicate headers"]}
    assert ours == {"app saw": ["q=café"], "response": [200, "", ""]}


def test_stateless_server_with_a_cancelled_instance():
    upstream, ours = compare("""
        import asyncio
        from asgiref.server import StatelessServer

        async def app(scope, receive, send):
            await receive()

        class Server(StatelessServer):
            application_checker_interval = 0.01

            async def handle(self):
                self.get_or_create_application_instance("a", {"type": "test"})
                self.application_instances["a"]["future"].cancel()
                for _ in range(100):
                    await asyncio.sleep(0.01)
                    if not self.application_instances:
                        break
                # A new instance still gets reaped once done.
                queue = self.get_or_create_application_instance("b", {"type": "test"})
                queue.put_nowait({"type": "go"})
                for _ in range(100):
                    await asyncio.sleep(0.01)
                    if not self.application_instances:
                        record("second instance", "reaped")
                        return
                record("second instance", "never reaped")

            async def application_send(self, scope, message):
                pass

        try:
            asyncio.run(Server(app).arun())
            record("server", "ran to the end")
        except asyncio.CancelledError:
            record("server", "stopped by CancelledError")
    """, timeout=60)
    assert upstream == {"server": "stopped by CancelledError"}
    assert ours == {"second instance": "reaped", "server": "ran to the end"}


def test_stateless_server_keeps_at_most_max_applications():
    upstream, ours = compare("""
        import asyncio
        from asgiref.server import StatelessServer

        async def app(scope, receive, send):
            await asyncio.Future()

        class Server(StatelessServer):
            async def handle(self):
                peak = 0
                for i in range(5):
                    self.get_or_create_application_instance(i, {"type": "test"})
                    peak = max(peak, len(self.application_instances))
                record("most at once", peak)
                for details in self.application_instances.values():
                    details["future"].cancel()

            async def application_send(self, scope, message):
                pass

        async def main():
            await Server(app, max_applications=2).handle()

        asyncio.run(main())
    """)
    assert upstream == {"most at once": 3}
    assert ours == {"most at once": 2}


def test_the_response_iterables_close_is_called():
    upstream, ours = compare("""
        import asyncio
        from asgiref.wsgi import WsgiToAsgi

        class Body:
            closed = 0

            def __iter__(self):
                yield b"hello"

            def close(self):
                Body.closed += 1

        def app(environ, start_response):
            start_response("200 OK", [])
            return Body()

        async def main():
            scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/",
                     "query_string": b"", "headers": []}

            async def receive():
                return {"type": "http.request"}

            async def send(message):
                pass

            await WsgiToAsgi(app)(scope, receive, send)
            record("close() calls", Body.closed)

        asyncio.run(main())
    """)
    assert upstream == {"close() calls": 0}
    assert ours == {"close() calls": 1}  # PEP 3333
