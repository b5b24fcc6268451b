"""Serve a WSGI application over ASGI (HTTP only)."""

import asyncio
import re
import sys
import threading
from collections import defaultdict, deque  # noqa: F401  (defaultdict: asgiref's module has the name)
from collections.abc import Callable, Iterable
from tempfile import SpooledTemporaryFile
from typing import Any

from .sync import AsyncToSync, SyncToAsync, sync_to_async  # noqa: F401  (AsyncToSync: asgiref's module has the name)

# Request bodies up to this size stay in memory; larger ones go to disk.
_SPOOL_MAX_SIZE = 65536

# Default bounds on one request's headers. Front servers pass far less (h11
# and nginx: 16-32 KiB in all; Apache: 100 fields), so these only stop a head
# that no real server would send from turning into a huge environ.
HEADER_COUNT_LIMIT = 1000
HEADER_BYTES_LIMIT = 256 * 1024

# RFC 9110 5.1: a field name is a token. 5.5: CR, LF and NUL are never
# valid in a field value.
_is_token = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_bad_value_char = re.compile(rb"[\r\n\x00]").search

_DUPLICATES_BODY = b"Bad Request: Too many duplicate headers"

# Iterators over response bodies that hold every chunk already.
_MATERIALIZED: "tuple[type, ...]" = (type(iter([])), type(iter(())))


class _Rejected(ValueError):
    """The request is refused: the client gets ``status`` and ``body``."""

    def __init__(self, message: str, status: int, body: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _as_wsgi_str(text: str) -> str:
    # PEP 3333 "native strings": the UTF-8 bytes, each seen as one latin-1
    # char. Surrogate escapes give back the raw bytes they stand for.
    return text.encode("utf8", "surrogateescape").decode("latin1")


def _environ_key(header_name: str) -> str:
    if header_name == "content-length":
        return "CONTENT_LENGTH"
    if header_name == "content-type":
        return "CONTENT_TYPE"
    return "HTTP_" + header_name.upper().replace("-", "_")


class _WsgiSettings:
    # What WsgiToAsgi is given, and hands on to each WsgiToAsgiInstance:
    # one __init__, one signature (asgiref's two arguments, then our limits).
    def __init__(
        self,
        wsgi_application: Callable[..., Any],
        duplicate_header_limit: int | None = 100,
        *,
        header_count_limit: int | None = HEADER_COUNT_LIMIT,
        header_bytes_limit: int | None = HEADER_BYTES_LIMIT,
    ) -> None:
        self.wsgi_application = wsgi_application
        self.duplicate_header_limit = duplicate_header_limit
        self.header_count_limit = header_count_limit
        self.header_bytes_limit = header_bytes_limit


class WsgiToAsgi(_WsgiSettings):
    """An ASGI 3 application that runs ``wsgi_application`` for each HTTP request.

    Requests are checked before the application sees them:

    - more than ``duplicate_header_limit`` copies of one header: 400;
    - more than ``header_count_limit`` headers, or more than
      ``header_bytes_limit`` bytes of header names and values: 431;
    - a header name that is not an RFC 9110 token, a header value holding
      CR, LF or NUL, or a path that no bytes could encode: 400.

    A falsy limit disables that check. The request body is spooled to a
    temporary file once it outgrows 64 KiB, so memory stays bounded however
    large it is.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        instance = WsgiToAsgiInstance(
            self.wsgi_application,
            self.duplicate_header_limit,
            header_count_limit=self.header_count_limit,
            header_bytes_limit=self.header_bytes_limit,
        )
        await instance(scope, receive, send)


class WsgiToAsgiInstance(_WsgiSettings):
    """Handles one request: reads the whole body, then runs the WSGI app in a thread."""

    # Until start_response says otherwise. Set later: scope and sync_send in
    # __call__, response_start by start_response (whose presence marks
    # "start_response was called").
    response_started = False
    response_content_length: int | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("WSGI wrapper received a non-HTTP scope")
        self.scope = scope
        with SpooledTemporaryFile(max_size=_SPOOL_MAX_SIZE) as body:
            more_body = True
            while more_body:
                message = await receive()
                if message["type"] != "http.request":
                    raise ValueError("WSGI wrapper received a non-HTTP-request message")
                body.write(message.get("body", b""))
                more_body = message.get("more_body", False)
            body.seek(0)
            # The WSGI app runs in a worker thread and sends through this.
            outbox = _Outbox(send, asyncio.get_running_loop())
            self.sync_send = outbox.put
            try:
                await self.run_wsgi_app(body)
            except asyncio.CancelledError:
                # Nothing may reach send() once we are gone: a thread still
                # running gets the CancelledError at its next message.
                outbox.close()
                raise
            finally:
                if not outbox.closed:
                    await outbox.flush()

    def build_environ(self, scope: Any, body: Any) -> dict[str, Any]:
        """Build the WSGI environ for ``scope`` with ``body`` as ``wsgi.input``.

        Raises ValueError if the request breaks one of the limits or is
        malformed (see WsgiToAsgi).
        """
        try:
            script_name = _as_wsgi_str(scope.get("root_path", ""))
            path_info = _as_wsgi_str(scope["path"])
        except UnicodeEncodeError:
            # Lone surrogates that no bytes on the wire could have made.
            raise _Rejected(
                "Path is not valid Unicode", 400, b"Bad Request: malformed path"
            ) from None
        if path_info.startswith(script_name):
            path_info = path_info[len(script_name):]

        # WSGI requires a server name and port; ASGI makes them optional and
        # uses a None port for unix sockets.
        server = scope.get("server")
        if server is None:
            server_name, server_port = "localhost", "80"
        else:
            server_name = server[0]
            server_port = str(0 if server[1] is None else server[1])

        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path_info,
            # Servers may pass raw non-ASCII bytes; WSGI wants them as latin-1.
            "QUERY_STRING": scope["query_string"].decode("latin1"),
            "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
        }
        if scope.get("client") is not None:
            environ["REMOTE_ADDR"] = scope["client"][0]

        # Repeated headers are joined with commas (RFC 9110, section 5.3).
        # Like asgiref, headers are read from self.scope.
        limit = self.duplicate_header_limit
        count_limit = self.header_count_limit
        bytes_limit = self.header_bytes_limit
        total_bytes = 0
        values_by_key: dict[str, list[str]] = {}
        for count, header in enumerate(self.scope.get("headers", []), 1):
            if count_limit and count > count_limit:
                raise _Rejected(
                    f"More than {count_limit} headers", 431, b"Request Header Fields Too Large"
                )
            name, value = _checked_header(header)
            total_bytes += len(name) + len(value)
            if bytes_limit and total_bytes > bytes_limit:
                raise _Rejected(
                    f"More than {bytes_limit} bytes of headers",
                    431,
                    b"Request Header Fields Too Large",
                )
            key = _environ_key(name.decode("latin1"))
            values = values_by_key.setdefault(key, [])
            if limit and len(values) >= limit:
                raise _Rejected(
                    f"Too many duplicate headers: {key} exceeds limit of {limit}",
                    400,
                    _DUPLICATES_BODY,
                )
            values.append(value.decode("latin1"))
        for key, values in values_by_key.items():
            environ[key] = ",".join(values)
        return environ

    def start_response(
        self, status: str, response_headers: "Iterable[tuple[str, str]]", exc_info: Any = None
    ) -> None:
        """The WSGI ``start_response`` callable; the response is sent lazily."""
        if self.response_started:
            # Too late to change anything: re-raise the app's error (PEP 3333).
            raise exc_info[1].with_traceback(exc_info[2])
        if hasattr(self, "response_start") and exc_info is None:
            raise ValueError(
                "You cannot call start_response a second time without exc_info"
            )
        code, _reason = status.split(" ", 1)
        status_code = int(code)
        headers = [
            (name.lower().encode("ascii"), value.encode("ascii"))
            for name, value in response_headers
        ]
        # Only the latest call's Content-Length counts.
        self.response_content_length = None
        for name, value in response_headers:
            if name.lower() == "content-length":
                self.response_content_length = int(value)
        self.response_start = {
            "type": "http.response.start",
            "status": status_code,
            "headers": headers,
        }

    @sync_to_async
    def run_wsgi_app(self, body: Any) -> None:
        """Run the WSGI app and stream its response (runs in a worker thread).

        Unlike asgiref, the response iterable's ``close()`` is always called
        once the response is over, as PEP 3333 requires.
        """
        outbox = self._outbox()
        if outbox is not None:
            # While a send is in flight, cancelling this call cancels that
            # send first, as asgiref's would: this thread then gets the
            # CancelledError, and the call ends once the thread is done.
            outbox.task_context = getattr(SyncToAsync.threadlocal, "task_context", None)
        try:
            environ = self.build_environ(self.scope, body)
        except ValueError as exc:
            # Like asgiref, any ValueError here refuses the request.
            refusal: "tuple[int, bytes] | None" = (
                (exc.status, exc.body) if isinstance(exc, _Rejected) else (400, _DUPLICATES_BODY)
            )
        else:
            refusal = None
        if refusal is not None:
            # Sent outside the except block: async_to_sync would carry the
            # exception along, and its traceback would make a reference cycle.
            status, message = refusal
            self.sync_send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            self.sync_send({"type": "http.response.body", "body": message})
            return

        result = self.wsgi_application(environ, self.start_response)
        try:
            sent = 0
            chunks = iter(result)
            # Advancing a lazy iterable runs app code: as upstream, do that
            # only once the last chunk is out (a gone client stops the app).
            # A list or tuple has nothing left to run, so send ahead.
            lazy = type(chunks) not in _MATERIALIZED
            for chunk in chunks:
                self._ensure_response_started()
                limit = self.response_content_length
                if limit is not None and len(chunk) > limit - sent:
                    # Never send more than the app's Content-Length promised.
                    chunk = chunk[: limit - sent]
                self.sync_send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
                sent += len(chunk)
                if sent == limit:
                    break
                if lazy:
                    self._outbox_wait()
            self._ensure_response_started()
            self.sync_send({"type": "http.response.body"})
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _outbox(self) -> "_Outbox | None":
        # sync_send is the outbox's put, unless a subclass replaced it.
        outbox = getattr(self.sync_send, "__self__", None)
        return outbox if isinstance(outbox, _Outbox) else None

    def _outbox_wait(self) -> None:
        outbox = self._outbox()
        if outbox is not None:
            outbox.wait_sent()

    def _ensure_response_started(self) -> None:
        if not self.response_started:
            self.response_started = True
            # An app that never called start_response gets asgiref's error:
            # this instance has no attribute 'response_start'.
            self.sync_send(self.response_start)


class _Outbox:
    """Response messages from the WSGI thread to the ASGI ``send``, in order.

    Upstream asgiref makes the thread wait for every message to be sent (an
    ``async_to_sync`` round trip each). Here the thread hands messages over
    and goes on; it waits only when ``AHEAD`` messages are still unsent (so
    memory stays bounded), or when told to (``wait_sent``). A failed ``send``
    is raised in the thread at its next message or wait, or by ``flush()``
    once the app is done. ``close()`` (the ASGI call was cancelled) cancels
    the send in flight and drops the rest: the thread gets a CancelledError.
    """

    AHEAD = 4

    def __init__(self, send: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._send = send
        self._loop = loop
        self._ready = threading.Condition(threading.Lock())
        self._pending: "deque[Any]" = deque()
        self._unsent = 0  # pending, or being sent
        self._pumping = False  # a pump task is scheduled or running
        self._pump_task: "asyncio.Task[None] | None" = None
        self._error: "BaseException | None" = None
        self._error_seen = False
        self._caught_up: "asyncio.Event | None" = None
        self.closed = False
        # The sync_to_async call's task_context (set by the WSGI thread): a
        # running pump is listed there, so that cancelling the call cancels
        # its send, as asgiref's async_to_sync(send) task would be.
        self.task_context: "list[asyncio.Task[Any]] | None" = None

    def put(self, message: Any) -> None:
        """Send *message*; called on the WSGI thread."""
        with self._ready:
            while self._error is None and len(self._pending) >= self.AHEAD:
                self._ready.wait()
            self._raise_error()
            self._pending.append(message)
            self._unsent += 1
            if self._pumping:
                return
            self._pumping = True
        self._loop.call_soon_threadsafe(self._start_pump)

    def wait_sent(self) -> None:
        """Wait until all messages are sent; called on the WSGI thread."""
        with self._ready:
            while self._error is None and self._unsent:
                self._ready.wait()
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            self._error_seen = True
            raise self._error

    def _start_pump(self) -> None:
        if not self.closed:
            self._pump_task = self._loop.create_task(self._pump())

    async def _pump(self) -> None:
        task_context, task = self.task_context, asyncio.current_task()
        if task_context is not None:
            task_context.append(task)  # type: ignore[arg-type]
        try:
            while True:
                with self._ready:
                    if not self._pending or self._error is not None:
                        # Under the lock that put() takes: a message put
                        # after this starts a new pump.
                        self._pumping = False
                        self._ready.notify_all()
                        break
                    message = self._pending.popleft()
                    self._ready.notify_all()
                try:
                    await self._send(message)
                except BaseException as exc:
                    with self._ready:
                        self._error = exc
                        self._pending.clear()
                with self._ready:
                    self._unsent -= 1
                    if not self._unsent:
                        self._ready.notify_all()
        finally:
            self._pump_task = None
            if task_context is not None:
                task_context.remove(task)  # type: ignore[arg-type]
            if self._caught_up is not None:
                self._caught_up.set()

    async def flush(self) -> None:
        """Wait until every message is sent (on the loop, once the app is
        done); raise a send failure the WSGI thread has not seen."""
        try:
            while True:
                with self._ready:
                    if not self._pumping:
                        break
                    self._caught_up = asyncio.Event()
                await self._caught_up.wait()
        except asyncio.CancelledError:
            self.close()
            raise
        error, self._error = self._error, None  # no cycle through the outbox
        if error is not None and not self._error_seen:
            raise error

    def close(self) -> None:
        """On the loop, once the ASGI call is cancelled: cancel the send in
        flight, drop unsent messages; the WSGI thread's next message or wait
        raises CancelledError."""
        self.closed = True
        with self._ready:
            if self._error is None:
                self._error = asyncio.CancelledError()
            self._pending.clear()
            self._ready.notify_all()
        if self._pump_task is not None:
            self._pump_task.cancel()


def _checked_header(header: Any) -> "tuple[bytes, bytes]":
    """The (name, value) of one ASGI header; _Rejected if it is malformed."""
    try:
        name, value = header
    except (TypeError, ValueError):
        raise _Rejected("Malformed header", 400, b"Bad Request: malformed header") from None
    if not (isinstance(name, bytes) and _is_token(name)):
        raise _Rejected(
            f"Malformed header name {name!r}", 400, b"Bad Request: malformed header name"
        )
    if not isinstance(value, bytes) or _bad_value_char(value):
        raise _Rejected(
            f"Malformed value of header {name!r}", 400, b"Bad Request: malformed header value"
        )
    return name, value
