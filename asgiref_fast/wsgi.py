"""Serve a WSGI application over ASGI (HTTP only)."""

import sys
from collections.abc import Callable, Iterable
from tempfile import SpooledTemporaryFile
from typing import Any

from .sync import AsyncToSync, sync_to_async

# Request bodies up to this size stay in memory; larger ones go to disk.
_SPOOL_MAX_SIZE = 65536


def _as_wsgi_str(text: str) -> str:
    # PEP 3333 "native strings": the UTF-8 bytes, each seen as one latin-1 char.
    return text.encode("utf8").decode("latin1")


def _environ_key(header_name: str) -> str:
    if header_name == "content-length":
        return "CONTENT_LENGTH"
    if header_name == "content-type":
        return "CONTENT_TYPE"
    return "HTTP_" + header_name.upper().replace("-", "_")


class WsgiToAsgi:
    """An ASGI 3 application that runs ``wsgi_application`` for each HTTP request.

    A request with more than ``duplicate_header_limit`` copies of one header
    gets a 400 response; a falsy limit disables the check.
    """

    def __init__(
        self, wsgi_application: Callable, duplicate_header_limit: int | None = 100
    ) -> None:
        self.wsgi_application = wsgi_application
        self.duplicate_header_limit = duplicate_header_limit

    async def __call__(self, scope, receive, send) -> None:
        instance = WsgiToAsgiInstance(self.wsgi_application, self.duplicate_header_limit)
        await instance(scope, receive, send)


class WsgiToAsgiInstance:
    """Handles one request: reads the whole body, then runs the WSGI app in a thread."""

    def __init__(
        self, wsgi_application: Callable, duplicate_header_limit: int | None = 100
    ) -> None:
        self.wsgi_application = wsgi_application
        self.duplicate_header_limit = duplicate_header_limit
        self.response_started = False
        self.response_content_length: int | None = None
        # Set later: scope and sync_send in __call__, response_start by
        # start_response (whose presence marks "start_response was called").

    async def __call__(self, scope, receive, send) -> None:
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
            self.sync_send = AsyncToSync(send)
            await self.run_wsgi_app(body)

    def build_environ(self, scope, body) -> dict[str, Any]:
        """Build the WSGI environ for ``scope`` with ``body`` as ``wsgi.input``.

        Raises ValueError if a header is repeated more than the limit allows.
        """
        script_name = _as_wsgi_str(scope.get("root_path", ""))
        path_info = _as_wsgi_str(scope["path"])
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
            "QUERY_STRING": scope["query_string"].decode("ascii"),
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
        values_by_key: dict[str, list[str]] = {}
        for name, value in self.scope.get("headers", []):
            key = _environ_key(name.decode("latin1"))
            values = values_by_key.setdefault(key, [])
            if limit and len(values) >= limit:
                raise ValueError(
                    f"Too many duplicate headers: {key} exceeds limit of {limit}"
                )
            values.append(value.decode("latin1"))
        for key, values in values_by_key.items():
            environ[key] = ",".join(values)
        return environ

    def start_response(self, status: str, response_headers: Iterable, exc_info=None) -> None:
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
    def run_wsgi_app(self, body) -> None:
        """Run the WSGI app and stream its response (runs in a worker thread).

        Unlike asgiref, the response iterable's ``close()`` is always called
        once the response is over, as PEP 3333 requires.
        """
        try:
            environ = self.build_environ(self.scope, body)
        except ValueError:
            self.sync_send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            self.sync_send(
                {
                    "type": "http.response.body",
                    "body": b"Bad Request: Too many duplicate headers",
                }
            )
            return

        result = self.wsgi_application(environ, self.start_response)
        try:
            sent = 0
            for chunk in result:
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
            self._ensure_response_started()
            self.sync_send({"type": "http.response.body"})
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _ensure_response_started(self) -> None:
        if not self.response_started:
            self.response_started = True
            self.sync_send(self.response_start)
