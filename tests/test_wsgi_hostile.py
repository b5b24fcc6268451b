"""Hostile input to WsgiToAsgi: every case ends in a clear error or a proper
HTTP error response, the WSGI iterable is always closed, and nothing leaks."""

import asyncio
import gc
import hashlib
import sys
import threading
import tracemalloc
import weakref

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgiref_fast import wsgi
from asgiref_fast.sync import sync_to_async
from asgiref_fast.wsgi import WsgiToAsgi, WsgiToAsgiInstance

from _reliability import Garbage, eventually, open_fds, rss_bytes

TEXT = [(b"content-type", b"text/plain")]
END = {"type": "http.response.body"}


def scope_for(**overrides):
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "path": "/",
        "query_string": b"", "headers": [],
    }
    scope.update(overrides)
    return scope


def refused(status, body):
    return [
        {"type": "http.response.start", "status": status, "headers": TEXT},
        {"type": "http.response.body", "body": body},
    ]


def ok(body=b"ok"):
    return [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": body, "more_body": True},
        END,
    ]


async def call(app, scope, incoming=None, sent=None, send_fails_at=None):
    """Run ASGI *app* once, bounded; return what it sent (kept on error too)."""
    incoming = iter(incoming or [{"type": "http.request"}])
    sent = [] if sent is None else sent

    async def receive():
        return next(incoming)

    async def send(message):
        if len(sent) == send_fails_at:
            raise ConnectionResetError("client went away")
        sent.append(message)

    async with asyncio.timeout(10):
        await app(scope, receive, send)
    return sent


class Hello:
    """A WSGI app that says ok, and remembers whether it was called."""

    def __init__(self):
        self.environ = None

    def __call__(self, environ, start_response):
        self.environ = environ
        start_response("200 OK", [])
        return [b"ok"]


# --- header floods ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_flood_of_duplicate_headers_is_a_400(stress):
    app = Hello()
    copies = 1_000_000 if stress else 50_000
    headers = [(b"x-dup", b"v")] * copies
    sent = await call(WsgiToAsgi(app), scope_for(headers=headers))
    assert sent == refused(400, b"Bad Request: Too many duplicate headers")
    assert app.environ is None


@pytest.mark.asyncio
async def test_flood_of_distinct_headers_is_a_431(stress):
    app = Hello()
    count = 1_000_000 if stress else 50_000
    headers = [(b"x-%d" % i, b"v") for i in range(count)]
    sent = await call(WsgiToAsgi(app), scope_for(headers=headers))
    assert sent == refused(431, b"Request Header Fields Too Large")
    assert app.environ is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kwargs, headers, status",
    [
        # the defaults: 1000 headers, 256 KiB of names and values
        ({}, [(b"x-%d" % i, b"v") for i in range(1000)], 200),
        ({}, [(b"x-%d" % i, b"v") for i in range(1001)], 431),
        ({}, [(b"a", b"v" * (256 * 1024 - 1))], 200),
        ({}, [(b"a", b"v" * (256 * 1024))], 431),
        ({}, [(b"cookie", b"c" * 4000)] * 70, 431),  # few headers, many bytes
        # custom and disabled limits
        ({"header_count_limit": 3}, [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], 200),
        ({"header_count_limit": 3}, [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"")], 431),
        ({"header_bytes_limit": 10}, [(b"abc", b"1234567")], 200),
        ({"header_bytes_limit": 10}, [(b"abc", b"12345678")], 431),
        ({"header_count_limit": None}, [(b"x-%d" % i, b"v") for i in range(5000)], 200),
        ({"header_count_limit": 0, "header_bytes_limit": 0}, [(b"a", b"v" * 300_000)] * 2, 200),
        # the duplicate limit is checked as upstream does, and comes first here
        ({"duplicate_header_limit": 2, "header_count_limit": 3}, [(b"a", b"1")] * 4, 400),
    ],
)
async def test_header_bounds(kwargs, headers, status):
    app = Hello()
    sent = await call(WsgiToAsgi(app, **kwargs), scope_for(headers=headers))
    if status == 200:
        assert sent == ok()
    else:
        assert [m.get("status") for m in sent] == [status, None]
        assert app.environ is None


def test_limits_are_keyword_arguments_with_documented_defaults():
    wrapper = WsgiToAsgi(Hello(), 7)  # upstream's positional signature still works
    assert wrapper.duplicate_header_limit == 7
    assert (wrapper.header_count_limit, wrapper.header_bytes_limit) == (1000, 256 * 1024)
    assert (wsgi.HEADER_COUNT_LIMIT, wsgi.HEADER_BYTES_LIMIT) == (1000, 256 * 1024)
    with pytest.raises(TypeError):
        WsgiToAsgi(Hello(), 7, 8)
    instance = WsgiToAsgiInstance(Hello(), header_count_limit=5, header_bytes_limit=6)
    assert (instance.header_count_limit, instance.header_bytes_limit) == (5, 6)


# --- malformed and non-latin-1 input ------------------------------------------------

MALFORMED = {
    "empty name": [(b"", b"v")],
    "space in name": [(b"x y", b"v")],
    "colon in name": [(b"x:y", b"v")],
    "http/2 pseudo-header": [(b":authority", b"example.com")],
    "latin-1 name": [(b"caf\xe9", b"v")],
    "CRLF in name": [(b"x\r\ny", b"v")],
    "NUL in name": [(b"x\x00", b"v")],
    "str name": [("x-str", b"v")],
    "None name": [(None, b"v")],
    "CRLF in value": [(b"x", b"a\r\nx-injected: 1")],
    "LF in value": [(b"x", b"a\nb")],
    "NUL in value": [(b"x", b"a\x00b")],
    "str value": [(b"x", "v")],
    "None value": [(b"x", None)],
    "one-item header": [(b"x",)],
    "three-item header": [(b"x", b"v", b"w")],
    "bytes as header": [b"xv"],
    "int as header": [7],
    "bad after good": [(b"a", b"1")] * 5 + [(b"b c", b"2")],
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_headers_are_a_400(case):
    app = Hello()
    sent = await call(WsgiToAsgi(app), scope_for(headers=MALFORMED[case]))
    assert [m.get("status") for m in sent] == [400, None]
    assert sent[1]["body"].startswith(b"Bad Request: malformed header")
    assert app.environ is None


@pytest.mark.asyncio
async def test_non_ascii_bytes_reach_the_app_as_latin1():
    app = Hello()
    value = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t"
    query = "q=é&emoji=😀".encode()
    scope = scope_for(
        path="/caf\u00e9/😀", root_path="/caf\u00e9", query_string=query,
        headers=[(b"x-raw", value), (b"X-Upper_Case", b"1")],
    )
    assert await call(WsgiToAsgi(app), scope) == ok()
    environ = app.environ
    assert environ["HTTP_X_RAW"].encode("latin1") == value
    assert environ["HTTP_X_UPPER_CASE"] == "1"
    assert environ["QUERY_STRING"].encode("latin1") == query
    assert environ["SCRIPT_NAME"].encode("latin1") == "/café".encode()
    assert environ["PATH_INFO"].encode("latin1") == "/😀".encode()


@pytest.mark.asyncio
async def test_surrogate_escaped_path_gives_back_its_bytes():
    app = Hello()
    raw = b"/caf\xe9/\xff"  # not UTF-8
    path = raw.decode("utf8", "surrogateescape")
    assert await call(WsgiToAsgi(app), scope_for(path=path)) == ok()
    assert app.environ["PATH_INFO"].encode("latin1") == raw


@pytest.mark.asyncio
@pytest.mark.parametrize("path, root", [("/\ud800", ""), ("/ok", "/\udfff"), ("/a\ud83dz", "")])
async def test_paths_no_bytes_could_encode_are_a_400(path, root):
    app = Hello()
    sent = await call(WsgiToAsgi(app), scope_for(path=path, root_path=root))
    assert sent == refused(400, b"Bad Request: malformed path")
    assert app.environ is None


# --- non-HTTP scopes and messages ---------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("scope_type", ["websocket", "lifespan", "HTTP", ""])
async def test_non_http_scopes_are_refused_before_anything_runs(scope_type):
    app = Hello()
    with pytest.raises(ValueError, match="non-HTTP scope"):
        await call(WsgiToAsgi(app), scope_for(type=scope_type))
    assert app.environ is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "message, error",
    [
        ({"type": "http.disconnect"}, "non-HTTP-request message"),
        ({"type": "websocket.receive", "text": "x"}, "non-HTTP-request message"),
        ({"type": "lifespan.startup"}, "non-HTTP-request message"),
    ],
)
async def test_non_request_messages_are_a_clear_error(message, error):
    app = Hello()
    fds = open_fds()
    incoming = [{"type": "http.request", "body": b"x" * 100_000, "more_body": True}, message]
    with pytest.raises(ValueError, match=error):
        await call(WsgiToAsgi(app), scope_for(method="POST"), incoming)
    assert app.environ is None
    assert open_fds() == fds  # the spooled body, already on disk, is gone


@pytest.mark.asyncio
async def test_non_bytes_body_is_a_clear_error():
    with pytest.raises(TypeError, match="bytes"):
        await call(WsgiToAsgi(Hello()), scope_for(), [{"type": "http.request", "body": "text"}])


# --- large bodies, arriving slowly --------------------------------------------------


@pytest.mark.asyncio
async def test_huge_slow_body_is_spooled_with_bounded_memory(stress):
    size = (2 << 30) if stress else (48 << 20)  # 2 GiB by hand, 48 MiB normally
    piece = bytes(range(256)) * 256  # 64 KiB
    pieces = size // len(piece)
    expected = hashlib.sha256()
    for _ in range(pieces):
        expected.update(piece)
    seen = {}

    def app(environ, start_response):
        body, digest, total = environ["wsgi.input"], hashlib.sha256(), 0
        while chunk := body.read(65536):
            digest.update(chunk)
            total += len(chunk)
        seen.update(size=total, digest=digest.hexdigest(), rolled=body._rolled)
        start_response("200 OK", [])
        return [b"ok"]

    sent_pieces = 0

    async def receive():
        nonlocal sent_pieces
        sent_pieces += 1
        if sent_pieces % 64 == 0:
            await asyncio.sleep(0.001)  # a slow client: the loop waits between pieces
        else:
            await asyncio.sleep(0)
        return {"type": "http.request", "body": piece, "more_body": sent_pieces < pieces}

    sent = []

    async def send(message):
        sent.append(message)

    # The loop's first hops give it a default executor (the first goes
    # through run_in_executor, which makes it) and a doorbell, for good: not
    # the request's.
    for _ in range(2):
        await sync_to_async(lambda: None, thread_sensitive=False)()
    fds, rss = open_fds(), rss_bytes()
    tracemalloc.start()
    try:
        async with asyncio.timeout(600 if stress else 30):
            await WsgiToAsgi(app)(scope_for(method="POST"), receive, send)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent == ok()
    assert seen == {"size": size, "digest": expected.hexdigest(), "rolled": True}
    # Memory stays within a few pieces, however large the body.
    assert peak < 2 << 20, peak
    assert rss_bytes() - rss < 32 << 20
    assert open_fds() == fds  # and the temporary file is gone


# --- applications that fail, and close() --------------------------------------------


class Body:
    """A response iterable with close(), which can fail while iterating or closing."""

    def __init__(self, chunks=(b"a", b"b", b"c"), fail_at=None, close_fails=False):
        self.chunks, self.fail_at, self.close_fails = chunks, fail_at, close_fails
        self.closed = 0

    def __iter__(self):
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise RuntimeError("iteration failed")
            yield chunk

    def close(self):
        self.closed += 1
        if self.close_fails:
            raise OSError("close failed")


def start(status=200):
    return {"type": "http.response.start", "status": status, "headers": []}


def part(body):
    return {"type": "http.response.body", "body": body, "more_body": True}


def make_app(case, body):
    """A WSGI app misbehaving as *case* says, returning *body* if it gets that far."""

    def app(environ, start_response):
        if case == "raises before start_response":
            raise KeyError(case)
        start_response("200 OK", [])
        if case == "raises after start_response":
            raise KeyError(case)
        if case == "second start_response without exc_info":
            start_response("500 Oops", [])
        if case == "exc_info before the response started":
            try:
                raise KeyError(case)
            except KeyError:
                start_response("500 Oops", [], sys.exc_info())
        if case == "returns without start_response":
            pass
        return body

    if case == "returns without start_response":
        return lambda environ, start_response: body
    if case == "exc_info after the response started":

        def late(environ, start_response):
            start_response("200 OK", [])
            yield b"a"
            try:
                raise KeyError(case)
            except KeyError:
                start_response("500 Oops", [], sys.exc_info())

        return late
    return app


# case -> (Body args, send fails at, expected error, what was sent, close() calls)
FAILURES = {
    "raises before start_response": ({}, None, KeyError, [], 0),
    "raises after start_response": ({}, None, KeyError, [], 0),
    "second start_response without exc_info": ({}, None, ValueError, [], 0),
    "exc_info before the response started": (
        {}, None, None, [start(500), part(b"a"), part(b"b"), part(b"c"), END], 1),
    "exc_info after the response started": ({}, None, KeyError, [start(), part(b"a")], 0),
    "returns without start_response": ({}, None, AttributeError, [], 1),
    "iteration fails at once": ({"fail_at": 0}, None, RuntimeError, [], 1),
    "iteration fails midway": (
        {"fail_at": 2}, None, RuntimeError, [start(), part(b"a"), part(b"b")], 1),
    "close() fails": (
        {"close_fails": True}, None, OSError,
        [start(), part(b"a"), part(b"b"), part(b"c"), END], 1),
    "iteration and close() fail": (
        {"fail_at": 1, "close_fails": True}, None, OSError, [start(), part(b"a")], 1),
    "client gone at start": ({}, 0, ConnectionResetError, [], 1),
    "client gone midway": ({}, 2, ConnectionResetError, [start(), part(b"a")], 1),
    "client gone at the end": (
        {}, 4, ConnectionResetError, [start(), part(b"a"), part(b"b"), part(b"c")], 1),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", FAILURES)
async def test_failing_apps_get_a_clear_error_and_are_closed(case):
    body_args, send_fails_at, error, expected, closes = FAILURES[case]
    body = Body(**body_args)
    sent = []
    request = call(WsgiToAsgi(make_app(case, body)), scope_for(), sent=sent,
                   send_fails_at=send_fails_at)
    if error is None:
        await request
    else:
        with pytest.raises(error) as caught:
            await request
        if case == "iteration and close() fail":
            assert isinstance(caught.value.__context__, RuntimeError)  # neither is lost
        if case == "returns without start_response":
            assert "'response_start'" in str(caught.value)  # asgiref's text
    assert sent == expected
    assert body.closed == closes
    # The worker thread is free for the next request.
    assert await call(WsgiToAsgi(Hello()), scope_for()) == ok()


REFUSED = {
    "duplicates": dict(headers=[(b"x", b"v")] * 101),
    "too many headers": dict(headers=[(b"x-%d" % i, b"") for i in range(1001)]),
    "too many header bytes": dict(headers=[(b"x", b"v" * 300_000)]),
    "bad header name": dict(headers=[(b"bad name", b"v")]),
    "bad header value": dict(headers=[(b"x", b"\r\n")]),
    "bad path": dict(path="/\ud800"),
}


async def quietly(request):
    try:
        await request
    except Exception:
        pass


@pytest.mark.asyncio
async def test_refused_requests_leave_no_garbage(stress):
    rounds = 500 if stress else 30

    async def one_round():
        for overrides in REFUSED.values():
            sent = await call(WsgiToAsgi(Hello()), scope_for(**overrides))
            assert sent[0]["status"] in (400, 431)
        disconnect = [{"type": "http.request", "body": b"x" * 70_000, "more_body": True},
                      {"type": "http.disconnect"}]
        await quietly(call(WsgiToAsgi(Hello()), scope_for(method="POST"), disconnect))
        await quietly(call(WsgiToAsgi(Hello()), scope_for(type="websocket")))

    await one_round()  # warm up
    threads, fds = threading.active_count(), open_fds()
    with Garbage() as garbage:
        for _ in range(rounds):
            await one_round()
    assert garbage.count == 0, garbage.sample
    assert (threading.active_count(), open_fds()) == (threads, fds)


@pytest.mark.asyncio
async def test_failing_apps_leak_nothing(stress):
    rounds = 300 if stress else 20
    alive = weakref.WeakSet()

    def request(case):
        body = Body(**FAILURES[case][0])
        instance = WsgiToAsgiInstance(make_app(case, body))
        alive.add(instance)
        alive.add(body)
        return call(instance, scope_for(), send_fails_at=FAILURES[case][1])

    for case in FAILURES:  # warm up
        await quietly(request(case))
    threads, fds, rss = threading.active_count(), open_fds(), rss_bytes()
    for _ in range(rounds):
        for case in FAILURES:
            await quietly(request(case))
    # Failed calls make reference cycles (see test_leaks), but all of it is
    # collectable: no instance, iterable, thread or file survives. (Polled:
    # a worker drops its last call a moment after delivering its outcome.)
    assert await eventually(lambda: gc.collect() >= 0 and not alive), len(alive)
    assert (threading.active_count(), open_fds()) == (threads, fds)
    assert rss_bytes() - rss < 8 << 20


# --- property-based: scope -> environ -----------------------------------------------

TOKEN = st.text(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1, max_size=12,
)
header_names = st.one_of(
    st.sampled_from(["content-length", "content-type", "host", "cookie", "x-a", "x_a"]), TOKEN
)
header_values = st.binary(max_size=30).filter(lambda v: not set(v) & {0, 10, 13})
HOST = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=15)
unicode_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
scopes = st.fixed_dictionaries(
    {
        "type": st.just("http"),
        "http_version": st.sampled_from(["1.0", "1.1", "2"]),
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"]),
        "path": unicode_text.map(lambda p: "/" + p),
        "query_string": st.binary(max_size=30),
        "headers": st.lists(st.tuples(header_names.map(str.encode), header_values), max_size=12),
    },
    optional={
        "root_path": st.one_of(st.just(""), unicode_text.map(lambda p: "/" + p)),
        "scheme": st.sampled_from(["http", "https"]),
        # Addresses come from the server, not the client: IPs, names, socket paths.
        "server": st.one_of(
            st.none(), st.tuples(HOST, st.one_of(st.none(), st.integers(0, 65535)))
        ),
        "client": st.one_of(st.none(), st.tuples(HOST, st.integers(0, 65535))),
    },
)


def environ_of(scope, **limits):
    instance = WsgiToAsgiInstance(None, **limits)
    instance.scope = scope
    return instance.build_environ(scope, body=None)


def wsgi_key(name):
    name = name.decode("latin1")
    if name in ("content-length", "content-type"):
        return name.upper().replace("-", "_")
    return "HTTP_" + name.upper().replace("-", "_")


@settings(max_examples=300, deadline=None)
@given(scopes)
def test_environ_follows_pep_3333(scope):
    environ = environ_of(scope)
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
                "SERVER_PORT", "SERVER_PROTOCOL"):
        assert isinstance(environ[key], str)
    # Native strings: every CGI value is latin-1, standing for the bytes.
    for key, value in environ.items():
        if not key.startswith("wsgi."):
            value.encode("latin1")
    assert environ["REQUEST_METHOD"] == scope["method"]
    assert environ["SERVER_PROTOCOL"] == "HTTP/" + scope["http_version"]
    assert environ["QUERY_STRING"].encode("latin1") == scope["query_string"]
    assert environ["wsgi.url_scheme"] == scope.get("scheme", "http")
    assert environ["wsgi.version"] == (1, 0) and environ["wsgi.input"] is None
    # SCRIPT_NAME + PATH_INFO is the path's UTF-8, split at root_path if it leads.
    path, root = scope["path"].encode(), scope.get("root_path", "").encode()
    script, info = environ["SCRIPT_NAME"].encode("latin1"), environ["PATH_INFO"].encode("latin1")
    assert script == root
    assert info == (path[len(root):] if path.startswith(root) else path)
    server = scope.get("server")
    assert environ["SERVER_NAME"] == (server[0] if server else "localhost")
    assert environ["SERVER_PORT"] == (str(server[1] or 0) if server else "80")
    client = scope.get("client")
    assert environ.get("REMOTE_ADDR") == (client[0] if client else None)
    # Headers: one key each, repeated ones joined with commas in order.
    expected = {}
    for name, value in scope["headers"]:
        expected.setdefault(wsgi_key(name), []).append(value)
    cgi = {k: v for k, v in environ.items() if k.startswith("HTTP_") or k.startswith("CONTENT_")}
    assert cgi == {k: b",".join(v).decode("latin1") for k, v in expected.items()}


hostile_headers = st.lists(
    st.tuples(
        st.one_of(header_names.map(str.encode), st.binary(max_size=6)),
        st.one_of(header_values, st.binary(max_size=8)),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=hostile_headers,
    duplicates=st.integers(0, 4),
    count=st.integers(0, 10),
    size=st.integers(0, 80),
)
def test_every_request_is_accepted_or_refused_for_a_reason(headers, duplicates, count, size):
    """Accepted exactly when no rule is broken; refused with a status that
    belongs to a rule the request does break."""
    broken = set()
    if any(not wsgi._is_token(n) or wsgi._bad_value_char(v) for n, v in headers):
        broken.add(400)
    keys = [wsgi_key(n) for n, v in headers if wsgi._is_token(n)]
    if duplicates and any(keys.count(k) > duplicates for k in keys):
        broken.add(400)
    if count and len(headers) > count:
        broken.add(431)
    if size and sum(len(n) + len(v) for n, v in headers) > size:
        broken.add(431)
    limits = dict(
        duplicate_header_limit=duplicates, header_count_limit=count, header_bytes_limit=size
    )
    try:
        environ_of(scope_for(headers=headers), **limits)
    except wsgi._Rejected as exc:
        assert exc.status in broken, (exc, broken)
    else:
        assert not broken
