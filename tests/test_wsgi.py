import asyncio
import sys
import threading
from tempfile import SpooledTemporaryFile

import pytest

from asgiref_fast.sync import SyncToAsync, ThreadSensitiveContext, async_to_sync
from asgiref_fast.testing import ApplicationCommunicator
from asgiref_fast.wsgi import WsgiToAsgi, WsgiToAsgiInstance

END = {"type": "http.response.body"}


def scope_for(**overrides):
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [],
    }
    scope.update(overrides)
    return scope


def start(status=200, headers=()):
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def chunk(body):
    return {"type": "http.response.body", "body": body, "more_body": True}


def requests(*bodies):
    """http.request messages carrying ``bodies``, all but the last with more_body."""
    bodies = bodies or (b"",)
    return [
        {"type": "http.request", "body": body, "more_body": i < len(bodies) - 1}
        for i, body in enumerate(bodies)
    ]


async def call(app, scope, incoming=None, sent=None):
    """Run ASGI ``app`` once; return what it sent (also filled in on error)."""
    inbox = list(requests() if incoming is None else incoming)
    sent = [] if sent is None else sent

    async def receive():
        return inbox.pop(0)

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 10)
    return sent


class Recorder:
    """A WSGI app that keeps its environ (and a copy of the body) and says hello."""

    def __init__(self, response=(b"hello",), status="200 OK", headers=()):
        self.response = response
        self.status = status
        self.headers = list(headers)
        self.environ = None
        self.body = None
        self.thread = None

    def __call__(self, environ, start_response):
        self.environ = environ
        self.body = environ["wsgi.input"].read()
        self.thread = threading.get_ident()
        start_response(self.status, self.headers)
        return list(self.response)


class ClosingIterable:
    """A response iterable with close(), which records how it was used."""

    def __init__(self, chunks, fail_at=None):
        self.chunks = chunks
        self.fail_at = fail_at
        self.yielded = 0
        self.close_calls = 0

    def __iter__(self):
        for index, body in enumerate(self.chunks):
            if index == self.fail_at:
                raise RuntimeError("iteration failed")
            self.yielded += 1
            yield body

    def close(self):
        self.close_calls += 1


# --- environ ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_basic_request_and_environ():
    app = Recorder(response=[b"first ", b"second"], headers=[("X-Colour", "Blue")])
    sent = await call(
        WsgiToAsgi(app), scope_for(method="PUT", path="/items/7", query_string=b"a=1&b=%20")
    )
    assert sent == [
        start(200, [(b"x-colour", b"Blue")]),
        chunk(b"first "),
        chunk(b"second"),
        END,
    ]
    environ = app.environ
    assert {key: environ[key] for key in environ if key != "wsgi.input"} == {
        "REQUEST_METHOD": "PUT",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/items/7",
        "QUERY_STRING": "a=1&b=%20",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    assert isinstance(environ["wsgi.input"], SpooledTemporaryFile)
    # The spooled body only lives as long as the request.
    assert environ["wsgi.input"].closed


@pytest.mark.asyncio
async def test_headers_become_environ_keys():
    app = Recorder()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"2"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"accept", b"text/html"),
        (b"x-forwarded-for", b"10.0.0.2"),
        [b"accept", b"application/xml"],
        (b"x-latin", "caf\xe9".encode("latin1")),
    ]
    await call(WsgiToAsgi(app), scope_for(method="POST", headers=headers), requests(b"{}"))
    environ = app.environ
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1,10.0.0.2"
    assert environ["HTTP_ACCEPT"] == "text/html,application/xml"
    assert environ["HTTP_X_LATIN"] == "caf\xe9"
    assert app.body == b"{}"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "root_path, path, script_name, path_info",
    [
        ("/base", "/base/foo/", "/base", "/foo/"),
        ("/base", "/other/foo", "/base", "/other/foo"),
        ("", "/plain", "", "/plain"),
        ("/中国", "/中国/中文", "/\xe4\xb8\xad\xe5\x9b\xbd", "/\xe4\xb8\xad\xe6\x96\x87"),
    ],
)
async def test_root_path_and_script_name(root_path, path, script_name, path_info):
    app = Recorder()
    await call(WsgiToAsgi(app), scope_for(root_path=root_path, path=path))
    assert app.environ["SCRIPT_NAME"] == script_name
    assert app.environ["PATH_INFO"] == path_info


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"server": ("example.com", 8443)}, {"SERVER_NAME": "example.com", "SERVER_PORT": "8443"}),
        ({"server": ["/run/app.sock", None]}, {"SERVER_NAME": "/run/app.sock", "SERVER_PORT": "0"}),
        ({"server": None}, {"SERVER_NAME": "localhost", "SERVER_PORT": "80"}),
        ({"client": ("192.0.2.9", 51000)}, {"REMOTE_ADDR": "192.0.2.9"}),
        ({"client": None}, {"REMOTE_ADDR": None}),
        ({"scheme": "https"}, {"wsgi.url_scheme": "https"}),
        ({"http_version": "2"}, {"SERVER_PROTOCOL": "HTTP/2"}),
    ],
)
async def test_server_client_and_scheme(extra, expected):
    app = Recorder()
    await call(WsgiToAsgi(app), scope_for(**extra))
    for key, value in expected.items():
        assert app.environ.get(key) == value


def test_build_environ_can_be_called_directly():
    scope = scope_for(root_path="/r", path="/r/x", headers=[(b"a-b", b"1")])
    adapter = WsgiToAsgiInstance(None)
    adapter.scope = scope
    body = object()
    environ = adapter.build_environ(scope, body)
    assert environ["wsgi.input"] is body
    assert environ["SCRIPT_NAME"] == "/r"
    assert environ["PATH_INFO"] == "/x"
    assert environ["HTTP_A_B"] == "1"


def test_build_environ_enforces_duplicate_limit():
    adapter = WsgiToAsgiInstance(None, duplicate_header_limit=2)
    adapter.scope = scope_for(headers=[(b"x-dup", b"v")] * 3)
    with pytest.raises(ValueError, match="HTTP_X_DUP"):
        adapter.build_environ(adapter.scope, None)
    adapter.scope = scope_for(headers=[(b"x-dup", b"v")] * 2 + [(b"x-other", b"w")])
    assert adapter.build_environ(adapter.scope, None)["HTTP_X_DUP"] == "v,v"


# --- request body -------------------------------------------------------------


@pytest.mark.asyncio
async def test_body_in_several_chunks():
    app = Recorder()
    parts = [b"Hello", b", ", b"", b"World", b"!"]
    incoming = requests(*parts)
    # A missing "body" key counts as empty.
    incoming.insert(2, {"type": "http.request", "more_body": True})
    sent = await call(WsgiToAsgi(app), scope_for(method="POST"), incoming)
    assert app.body == b"Hello, World!"
    assert sent[0] == start(200)


@pytest.mark.asyncio
@pytest.mark.parametrize("size, on_disk", [(65536, False), (65537, True), (300_000, True)])
async def test_large_bodies_are_spooled_to_disk(size, on_disk):
    captured = {}

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        captured["rolled"] = stream._rolled
        captured["body"] = stream.read()
        start_response("200 OK", [])
        return [b"ok"]

    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    pieces = [payload[i:i + 10_000] for i in range(0, size, 10_000)]
    await call(WsgiToAsgi(app), scope_for(method="POST"), requests(*pieces))
    assert captured["body"] == payload
    assert captured["rolled"] is on_disk


@pytest.mark.asyncio
async def test_non_http_scope_is_rejected():
    app = Recorder()
    with pytest.raises(ValueError, match="non-HTTP scope"):
        await call(WsgiToAsgi(app), scope_for(type="websocket"))
    assert app.environ is None


@pytest.mark.asyncio
async def test_non_request_message_is_rejected():
    app = Recorder()
    incoming = [
        {"type": "http.request", "body": b"x", "more_body": True},
        {"type": "http.disconnect"},
    ]
    with pytest.raises(ValueError, match="non-HTTP-request message"):
        await call(WsgiToAsgi(app), scope_for(), incoming)
    assert app.environ is None


# --- duplicate header limit -----------------------------------------------------

BAD_REQUEST = [
    start(400, [(b"content-type", b"text/plain")]),
    {"type": "http.response.body", "body": b"Bad Request: Too many duplicate headers"},
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "limit, copies, rejected",
    [
        (5, 6, True),
        (5, 5, False),
        (100, 101, True),
        (100, 100, False),
        (None, 300, False),
        (0, 300, False),
    ],
)
async def test_duplicate_header_limit(limit, copies, rejected):
    app = Recorder(response=[b"OK"])
    wrapper = WsgiToAsgi(app) if limit == 100 else WsgiToAsgi(app, duplicate_header_limit=limit)
    assert wrapper.duplicate_header_limit == limit
    headers = [(b"x-test", b"v")] * copies + [(b"x-once", b"1")]
    sent = await call(wrapper, scope_for(headers=headers))
    if rejected:
        assert sent == BAD_REQUEST
        assert app.environ is None
    else:
        assert sent == [start(200), chunk(b"OK"), END]
        assert app.environ["HTTP_X_TEST"] == ",".join(["v"] * copies)


# --- response -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_status_and_header_translation():
    app = Recorder(
        response=[],
        status="404 Not Found",
        headers=[("Content-Type", "text/plain"), ("X-A", "b c")],
    )
    sent = await call(WsgiToAsgi(app), scope_for())
    # Start is still sent for an empty body.
    assert sent == [start(404, [(b"content-type", b"text/plain"), (b"x-a", b"b c")]), END]


@pytest.mark.asyncio
async def test_empty_chunks_are_forwarded():
    app = Recorder(response=[b"", b"x", b""])
    sent = await call(WsgiToAsgi(app), scope_for())
    assert sent == [start(200), chunk(b""), chunk(b"x"), chunk(b""), END]


@pytest.mark.asyncio
async def test_content_length_truncates_body():
    app = Recorder(response=[b"0123", b"45", b"6789", b"never"], headers=[("Content-Length", "8")])
    sent = await call(WsgiToAsgi(app), scope_for())
    assert sent == [
        start(200, [(b"content-length", b"8")]),
        chunk(b"0123"),
        chunk(b"45"),
        chunk(b"67"),
        END,
    ]


@pytest.mark.asyncio
async def test_content_length_stops_iteration_early():
    resumed = []

    def app(environ, start_response):
        start_response("200 OK", [("content-length", "4")])
        yield b"01"
        yield b"23"
        resumed.append(True)
        yield b"45"

    sent = await call(WsgiToAsgi(app), scope_for())
    assert sent == [start(200, [(b"content-length", b"4")]), chunk(b"01"), chunk(b"23"), END]
    assert resumed == []


@pytest.mark.asyncio
async def test_zero_content_length():
    app = Recorder(response=[b"abc", b"def"], headers=[("Content-Length", "0")])
    sent = await call(WsgiToAsgi(app), scope_for())
    assert sent == [start(200, [(b"content-length", b"0")]), chunk(b""), END]


@pytest.mark.asyncio
async def test_only_the_latest_start_response_counts():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "3")])
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
        return [b"a longer error page"]

    sent = await call(WsgiToAsgi(app), scope_for())
    assert sent == [start(500, [(b"x-error", b"1")]), chunk(b"a longer error page"), END]


@pytest.mark.asyncio
async def test_start_response_twice_without_exc_info_is_an_error():
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b"unreachable"]

    sent = []
    with pytest.raises(ValueError, match="second time without exc_info"):
        await call(WsgiToAsgi(app), scope_for(), sent=sent)
    assert sent == []


@pytest.mark.asyncio
async def test_exc_info_after_response_started_reraises():
    class AppError(Exception):
        pass

    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"partial"
        try:
            raise AppError("late failure")
        except AppError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"unreachable"

    sent = []
    with pytest.raises(AppError, match="late failure"):
        await call(WsgiToAsgi(app), scope_for(), sent=sent)
    assert sent == [start(200), chunk(b"partial")]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "stage", ["before_start_response", "before_first_chunk", "after_first_chunk"]
)
async def test_application_errors_propagate(stage):
    def app(environ, start_response):
        if stage == "before_start_response":
            raise KeyError(stage)
        start_response("200 OK", [])
        if stage == "before_first_chunk":
            raise KeyError(stage)
        yield b"one"
        raise KeyError(stage)

    sent = []
    with pytest.raises(KeyError, match=stage):
        await call(WsgiToAsgi(app), scope_for(), sent=sent)
    expected = [start(200), chunk(b"one")] if stage == "after_first_chunk" else []
    assert sent == expected


@pytest.mark.asyncio
async def test_returning_without_start_response_is_an_error():
    def app(environ, start_response):
        return [b"no headers"]

    with pytest.raises(AttributeError):
        await call(WsgiToAsgi(app), scope_for())


# --- close() (PEP 3333; asgiref itself does not call it) --------------------------


@pytest.mark.asyncio
async def test_close_called_once_after_full_response():
    sent = []
    seen_at_close = []

    class Iterable(ClosingIterable):
        def close(self):
            seen_at_close.append(list(sent))
            super().close()

    body = Iterable([b"a", b"b"])

    def app(environ, start_response):
        start_response("200 OK", [])
        return body

    await call(WsgiToAsgi(app), scope_for(), sent=sent)
    assert sent == [start(200), chunk(b"a"), chunk(b"b"), END]
    assert body.close_calls == 1
    # Closed once the app's whole response was handed over (PEP 3333: the
    # server is done with the iterable; sending may still be under way).
    assert len(seen_at_close) == 1 and seen_at_close[0] == sent[: len(seen_at_close[0])]


@pytest.mark.asyncio
async def test_close_called_when_content_length_cuts_response_short():
    body = ClosingIterable([b"0123", b"4567", b"89"])

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "6")])
        return body

    sent = await call(WsgiToAsgi(app), scope_for())
    assert sent == [start(200, [(b"content-length", b"6")]), chunk(b"0123"), chunk(b"45"), END]
    assert body.yielded == 2
    assert body.close_calls == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("fail_at", [0, 1])
async def test_close_called_when_iteration_fails(fail_at):
    body = ClosingIterable([b"a", b"b"], fail_at=fail_at)

    def app(environ, start_response):
        start_response("200 OK", [])
        return body

    with pytest.raises(RuntimeError, match="iteration failed"):
        await call(WsgiToAsgi(app), scope_for())
    assert body.close_calls == 1


@pytest.mark.asyncio
async def test_close_called_when_sending_fails():
    body = ClosingIterable([b"a", b"b"])

    def app(environ, start_response):
        start_response("200 OK", [])
        return body

    async def receive():
        return {"type": "http.request"}

    async def send(message):
        if message["type"] == "http.response.body":
            raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(WsgiToAsgi(app)(scope_for(), receive, send), 10)
    assert body.yielded == 1
    assert body.close_calls == 1


@pytest.mark.asyncio
async def test_generator_cleanup_runs_on_early_stop():
    cleaned_up = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "1")])
        try:
            yield b"x"
            yield b"y"
        finally:
            cleaned_up.append(threading.get_ident())

    sent = await call(WsgiToAsgi(app), scope_for())
    assert sent == [start(200, [(b"content-length", b"1")]), chunk(b"x"), END]
    assert len(cleaned_up) == 1
    assert cleaned_up[0] != threading.get_ident()  # closed in the worker thread


# --- threads and plumbing ---------------------------------------------------------


def test_run_wsgi_app_is_sync_to_async():
    assert isinstance(WsgiToAsgiInstance.__dict__["run_wsgi_app"], SyncToAsync)


@pytest.mark.asyncio
async def test_wsgi_app_runs_in_one_worker_thread():
    first, second = Recorder(), Recorder()
    await call(WsgiToAsgi(first), scope_for())
    await call(WsgiToAsgi(second), scope_for())
    assert first.thread != threading.get_ident()
    # Thread-sensitive: every request uses the same thread.
    assert first.thread == second.thread


def test_wsgi_app_runs_in_the_calling_thread_under_async_to_sync():
    app = Recorder()
    sent = []

    async def receive():
        return {"type": "http.request"}

    async def send(message):
        sent.append(message)

    async_to_sync(WsgiToAsgi(app))(scope_for(), receive, send)
    assert sent == [start(200), chunk(b"hello"), END]
    assert app.thread == threading.get_ident()


def test_both_adapters_take_asgirefs_arguments_then_the_limits():
    import inspect

    from asgiref import wsgi as upstream

    from asgiref_fast.wsgi import HEADER_BYTES_LIMIT, HEADER_COUNT_LIMIT

    for ours, theirs in ((WsgiToAsgi, upstream.WsgiToAsgi), (WsgiToAsgiInstance, upstream.WsgiToAsgiInstance)):
        params = list(inspect.signature(ours).parameters.values())
        described = [(p.name, p.kind, p.default) for p in params]
        expected = [(p.name, p.kind, p.default) for p in inspect.signature(theirs).parameters.values()]
        assert described[:2] == expected
        assert described[2:] == [
            ("header_count_limit", inspect.Parameter.KEYWORD_ONLY, HEADER_COUNT_LIMIT),
            ("header_bytes_limit", inspect.Parameter.KEYWORD_ONLY, HEADER_BYTES_LIMIT),
        ]
        adapter = ours("app", 3, header_count_limit=4, header_bytes_limit=5)
        assert (adapter.wsgi_application, adapter.duplicate_header_limit,
                adapter.header_count_limit, adapter.header_bytes_limit) == ("app", 3, 4, 5)


@pytest.mark.asyncio
async def test_instance_state():
    instance = WsgiToAsgiInstance(Recorder(), duplicate_header_limit=7)
    assert instance.duplicate_header_limit == 7
    assert instance.response_started is False
    assert instance.response_content_length is None
    assert not hasattr(instance, "response_start")
    scope = scope_for()
    instance.wsgi_application.headers = [("Content-Length", "5")]
    await call(instance, scope)
    assert instance.scope is scope
    assert callable(instance.sync_send)
    assert instance.response_started is True
    assert instance.response_content_length == 5
    assert instance.response_start == start(200, [(b"content-length", b"5")])


@pytest.mark.asyncio
async def test_with_application_communicator():
    def app(environ, start_response):
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.upper()]

    communicator = ApplicationCommunicator(WsgiToAsgi(app), scope_for(method="POST"))
    for message in requests(b"ping ", b"pong"):
        await communicator.send_input(message)
    assert await communicator.receive_output(5) == start(200, [(b"content-type", b"text/plain")])
    assert await communicator.receive_output(5) == chunk(b"PING PONG")
    assert await communicator.receive_output(5) == END
    await communicator.wait(5)
    assert communicator.future.done() and communicator.future.exception() is None


# --- cancellation (see also test_differential_wsgi.py) ------------------------------


@pytest.fixture
def small_pool(monkeypatch):
    import _reliability

    pool = _reliability.small_pool(monkeypatch)
    yield pool
    _reliability.retire_idle_lanes(pool)


async def stalled_request(app, in_context=False, stall_at=0):
    """Start a request whose send() never completes from message *stall_at* on;
    return its task once that send is waiting, and the messages sent."""
    stalled = asyncio.Event()
    sent = []

    async def receive():
        return {"type": "http.request"}

    async def send(message):
        sent.append(message)
        if len(sent) > stall_at:
            stalled.set()
            await asyncio.Future()  # a client that never reads

    async def request():
        if in_context:
            async with ThreadSensitiveContext():
                await WsgiToAsgi(app)(scope_for(), receive, send)
        else:
            await WsgiToAsgi(app)(scope_for(), receive, send)

    task = asyncio.ensure_future(request())
    await asyncio.wait_for(stalled.wait(), 10)
    return task, sent


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_cancelled_while_sending_hands_its_lane_back(small_pool):
    from _reliability import lane_threads, pool_lanes_settle

    before = lane_threads()
    body = ClosingIterable([b"a", b"b"])

    def app(environ, start_response):
        start_response("200 OK", [])
        return body

    task, _ = await stalled_request(app, in_context=True)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done and task.cancelled()
    assert body.close_calls == 1
    assert await pool_lanes_settle(small_pool, before)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("in_context", [False, True])
async def test_cancelled_while_the_thread_waits_for_room(in_context):
    # Many chunks, all there already, and a stalled send: the thread runs
    # ahead until the outbox is full, and waits for room; cancelling wakes it
    # with the CancelledError.
    class ClosingList(list):
        close_calls = 0

        def close(self):
            self.close_calls += 1

    body = ClosingList([b"x"] * 50)
    outcome = []

    def app(environ, start_response):
        start_response("200 OK", [])
        return body

    task, sent = await stalled_request(app, in_context, stall_at=1)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done and task.cancelled()
    assert body.close_calls == 1
    assert len(sent) == 2
    # The thread is free for the next call.
    assert await asyncio.wait_for(SyncToAsync(outcome.append)(1), 10) is None


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_nothing_reaches_send_once_cancelled():
    running, release, finished = asyncio.Event(), threading.Event(), threading.Event()
    loop = asyncio.get_running_loop()
    body = ClosingIterable([b"a", b"b"])
    sent = []

    def app(environ, start_response):
        loop.call_soon_threadsafe(running.set)
        try:
            release.wait(10)
            start_response("200 OK", [])
            return body
        finally:
            finished.set()

    async def receive():
        return {"type": "http.request"}

    async def send(message):
        sent.append(message)

    task = asyncio.ensure_future(WsgiToAsgi(app)(scope_for(), receive, send))
    await asyncio.wait_for(running.wait(), 10)
    task.cancel()
    # The task ends at once, as asgiref's does, with the app still running...
    done, _ = await asyncio.wait([task], timeout=10)
    assert done and task.cancelled()
    release.set()
    # ...and the app, once it responds, is stopped at its first message.
    assert await asyncio.wait_for(SyncToAsync(lambda: body.close_calls)(), 10) == 1
    assert sent == [] and body.yielded == 1
