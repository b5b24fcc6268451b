"""Type hints for ASGI applications, written from the ASGI specification
(https://asgi.readthedocs.io/en/latest/specs/).

Each scope and each event is a TypedDict named after the message it types;
the names, keys and value types are those asgiref.typing exports, so either
module can annotate the same code. Sections below follow the spec's pages:
the core spec, HTTP, WebSocket, Lifespan, then the application types.

Scopes are classes (a docstring each); events use the functional TypedDict
form, a ``key: type`` map like the spec's tables, a few lines each.
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, NotRequired, Protocol, TypedDict, Union

# Public names in asgiref's order (star-imports and introspection see it).
__all__ = (
    "ASGIVersions", "HTTPScope", "WebSocketScope", "LifespanScope", "WWWScope", "Scope",
    "HTTPRequestEvent", "HTTPResponseStartEvent", "HTTPResponseBodyEvent",
    "HTTPResponseTrailersEvent", "HTTPResponsePathsendEvent", "HTTPServerPushEvent",
    "HTTPDisconnectEvent",
    "WebSocketConnectEvent", "WebSocketAcceptEvent", "WebSocketReceiveEvent",
    "WebSocketSendEvent", "WebSocketResponseStartEvent", "WebSocketResponseBodyEvent",
    "WebSocketDisconnectEvent", "WebSocketCloseEvent",
    "LifespanStartupEvent", "LifespanShutdownEvent", "LifespanStartupCompleteEvent",
    "LifespanStartupFailedEvent", "LifespanShutdownCompleteEvent", "LifespanShutdownFailedEvent",
    "ASGIReceiveEvent", "ASGISendEvent", "ASGIReceiveCallable", "ASGISendCallable",
    "ASGI2Protocol", "ASGI2Application", "ASGI3Application", "ASGIApplication",
)


# ===== Core spec ("Version Specification"; "Connection Scope") =====

class ASGIVersions(TypedDict):
    """``scope["asgi"]``: the ASGI version the server speaks, and the
    version of the protocol's own spec."""

    spec_version: str
    version: Literal["2.0"] | Literal["3.0"]


# Value types several protocols share. Headers are (name, value) byte pairs,
# in the order received; "extensions" maps an extension's name to its data.
_HeaderPairs = Iterable[tuple[bytes, bytes]]
_ExtensionData = dict[str, dict[object, object]] | None
# (host, port) of the peer; the server's port is None on a Unix socket.
_Client = tuple[str, int] | None
_Server = tuple[str, int | None] | None


# ===== HTTP ("HTTP" in the HTTP & WebSocket message format) =====

class HTTPScope(TypedDict):
    """"HTTP Connection Scope"."""

    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: _HeaderPairs
    client: _Client
    server: _Server
    # A copy of the lifespan "state" namespace; servers may leave it out.
    state: NotRequired[dict[str, Any]]
    extensions: _ExtensionData


# "Request - receive event".
HTTPRequestEvent = TypedDict("HTTPRequestEvent", {
    "type": Literal["http.request"], "body": bytes, "more_body": bool,
})
# "Response Start - send event"; "trailers" is the HTTP Trailers extension's.
HTTPResponseStartEvent = TypedDict("HTTPResponseStartEvent", {
    "type": Literal["http.response.start"],
    "status": int, "headers": _HeaderPairs, "trailers": bool,
})
# "Response Body - send event".
HTTPResponseBodyEvent = TypedDict("HTTPResponseBodyEvent", {
    "type": Literal["http.response.body"], "body": bytes, "more_body": bool,
})
# "Disconnect - receive event".
HTTPDisconnectEvent = TypedDict("HTTPDisconnectEvent", {
    "type": Literal["http.disconnect"],
})

# Extensions ("ASGI Extensions" page), each announced in scope["extensions"].
# HTTP Trailers.
HTTPResponseTrailersEvent = TypedDict("HTTPResponseTrailersEvent", {
    "type": Literal["http.response.trailers"],
    "headers": _HeaderPairs, "more_trailers": bool,
})
# Path Send: the server sends the file at an absolute path.
HTTPResponsePathsendEvent = TypedDict("HTTPResponsePathsendEvent", {
    "type": Literal["http.response.pathsend"], "path": str,
})
# HTTP/2 Server Push.
HTTPServerPushEvent = TypedDict("HTTPServerPushEvent", {
    "type": Literal["http.response.push"], "path": str, "headers": _HeaderPairs,
})
# Debug: for test clients; typed here but, as in asgiref, not in __all__.
HTTPResponseDebugEvent = TypedDict("HTTPResponseDebugEvent", {
    "type": Literal["http.response.debug"], "info": dict[str, object],
})


# ===== WebSocket ("WebSocket" in the HTTP & WebSocket message format) =====

class WebSocketScope(TypedDict):
    """"WebSocket Connection Scope": an HTTP scope without "method", plus
    the subprotocols the client offered."""

    type: Literal["websocket"]
    asgi: ASGIVersions
    http_version: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: _HeaderPairs
    client: _Client
    server: _Server
    subprotocols: Iterable[str]
    # A copy of the lifespan "state" namespace; servers may leave it out.
    state: NotRequired[dict[str, Any]]
    extensions: _ExtensionData


# "Connect - receive event".
WebSocketConnectEvent = TypedDict("WebSocketConnectEvent", {
    "type": Literal["websocket.connect"],
})
# "Accept - send event".
WebSocketAcceptEvent = TypedDict("WebSocketAcceptEvent", {
    "type": Literal["websocket.accept"],
    "subprotocol": str | None, "headers": _HeaderPairs,
})
# "Receive - receive event" and "Send - send event": a frame carries bytes or
# text, the other key is None.
WebSocketReceiveEvent = TypedDict("WebSocketReceiveEvent", {
    "type": Literal["websocket.receive"], "bytes": bytes | None, "text": str | None,
})
WebSocketSendEvent = TypedDict("WebSocketSendEvent", {
    "type": Literal["websocket.send"], "bytes": bytes | None, "text": str | None,
})
# WebSocket Denial Response extension: an HTTP response instead of accepting.
WebSocketResponseStartEvent = TypedDict("WebSocketResponseStartEvent", {
    "type": Literal["websocket.http.response.start"],
    "status": int, "headers": _HeaderPairs,
})
WebSocketResponseBodyEvent = TypedDict("WebSocketResponseBodyEvent", {
    "type": Literal["websocket.http.response.body"], "body": bytes, "more_body": bool,
})
# "Disconnect - receive event" and "Close - send event".
WebSocketDisconnectEvent = TypedDict("WebSocketDisconnectEvent", {
    "type": Literal["websocket.disconnect"], "code": int, "reason": str | None,
})
WebSocketCloseEvent = TypedDict("WebSocketCloseEvent", {
    "type": Literal["websocket.close"], "code": int, "reason": str | None,
})


# ===== Lifespan ("Lifespan Protocol") =====

class LifespanScope(TypedDict):
    """"Scope" of the lifespan protocol; "state" is "Lifespan State"."""

    type: Literal["lifespan"]
    asgi: ASGIVersions
    # The namespace the application fills at startup; servers may lack it.
    state: NotRequired[dict[str, Any]]


# "Startup - receive event", "Shutdown - receive event".
LifespanStartupEvent = TypedDict("LifespanStartupEvent", {
    "type": Literal["lifespan.startup"],
})
LifespanShutdownEvent = TypedDict("LifespanShutdownEvent", {
    "type": Literal["lifespan.shutdown"],
})
# The application's answers: "... Complete" / "... Failed - send event".
LifespanStartupCompleteEvent = TypedDict("LifespanStartupCompleteEvent", {
    "type": Literal["lifespan.startup.complete"],
})
LifespanStartupFailedEvent = TypedDict("LifespanStartupFailedEvent", {
    "type": Literal["lifespan.startup.failed"], "message": str,
})
LifespanShutdownCompleteEvent = TypedDict("LifespanShutdownCompleteEvent", {
    "type": Literal["lifespan.shutdown.complete"],
})
LifespanShutdownFailedEvent = TypedDict("LifespanShutdownFailedEvent", {
    "type": Literal["lifespan.shutdown.failed"], "message": str,
})


# ===== Applications (core spec: "Applications", "Legacy Applications") =====

WWWScope = Union[HTTPScope, WebSocketScope]
Scope = Union[HTTPScope, WebSocketScope, LifespanScope]

# What receive() may return and send() may be given, across the protocols
# above (the order is asgiref's, which introspecting code may see).
ASGIReceiveEvent = Union[
    HTTPRequestEvent, HTTPDisconnectEvent,
    WebSocketConnectEvent, WebSocketReceiveEvent, WebSocketDisconnectEvent,
    LifespanStartupEvent, LifespanShutdownEvent,
]
ASGISendEvent = Union[
    HTTPResponseStartEvent, HTTPResponseBodyEvent, HTTPResponseTrailersEvent,
    HTTPServerPushEvent, HTTPDisconnectEvent,
    WebSocketAcceptEvent, WebSocketSendEvent, WebSocketResponseStartEvent,
    WebSocketResponseBodyEvent, WebSocketCloseEvent,
    LifespanStartupCompleteEvent, LifespanStartupFailedEvent,
    LifespanShutdownCompleteEvent, LifespanShutdownFailedEvent,
]

ASGIReceiveCallable = Callable[[], Awaitable[ASGIReceiveEvent]]
ASGISendCallable = Callable[[ASGISendEvent], Awaitable[None]]

# ASGI 3: one coroutine callable taking (scope, receive, send).
ASGI3Application = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]


class ASGI2Protocol(Protocol):
    """ASGI 2 ("Legacy Applications"): a class instantiated with the scope,
    whose instance is then awaited with (receive, send)."""

    def __init__(self, scope: Scope) -> None: ...

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None: ...


ASGI2Application = type[ASGI2Protocol]
ASGIApplication = Union[ASGI2Application, ASGI3Application]
