import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, NotRequired, get_args, get_origin, get_type_hints

import pytest

import asgiref_fast.typing as at

HEADERS = Iterable[tuple[bytes, bytes]]
EXTENSIONS = dict[str, dict[object, object]] | None

# name -> (ASGI "type" value, remaining field names in declaration order)
TYPED_DICTS = {
    "ASGIVersions": (None, ["spec_version", "version"]),
    "HTTPScope": ("http", ["asgi", "http_version", "method", "scheme", "path", "raw_path",
                           "query_string", "root_path", "headers", "client", "server",
                           "state", "extensions"]),
    "WebSocketScope": ("websocket", ["asgi", "http_version", "scheme", "path", "raw_path",
                                     "query_string", "root_path", "headers", "client",
                                     "server", "subprotocols", "state", "extensions"]),
    "LifespanScope": ("lifespan", ["asgi", "state"]),
    "HTTPRequestEvent": ("http.request", ["body", "more_body"]),
    "HTTPResponseDebugEvent": ("http.response.debug", ["info"]),
    "HTTPResponseStartEvent": ("http.response.start", ["status", "headers", "trailers"]),
    "HTTPResponseBodyEvent": ("http.response.body", ["body", "more_body"]),
    "HTTPResponseTrailersEvent": ("http.response.trailers", ["headers", "more_trailers"]),
    "HTTPResponsePathsendEvent": ("http.response.pathsend", ["path"]),
    "HTTPServerPushEvent": ("http.response.push", ["path", "headers"]),
    "HTTPDisconnectEvent": ("http.disconnect", []),
    "WebSocketConnectEvent": ("websocket.connect", []),
    "WebSocketAcceptEvent": ("websocket.accept", ["subprotocol", "headers"]),
    "WebSocketReceiveEvent": ("websocket.receive", ["bytes", "text"]),
    "WebSocketSendEvent": ("websocket.send", ["bytes", "text"]),
    "WebSocketResponseStartEvent": ("websocket.http.response.start", ["status", "headers"]),
    "WebSocketResponseBodyEvent": ("websocket.http.response.body", ["body", "more_body"]),
    "WebSocketDisconnectEvent": ("websocket.disconnect", ["code", "reason"]),
    "WebSocketCloseEvent": ("websocket.close", ["code", "reason"]),
    "LifespanStartupEvent": ("lifespan.startup", []),
    "LifespanShutdownEvent": ("lifespan.shutdown", []),
    "LifespanStartupCompleteEvent": ("lifespan.startup.complete", []),
    "LifespanStartupFailedEvent": ("lifespan.startup.failed", ["message"]),
    "LifespanShutdownCompleteEvent": ("lifespan.shutdown.complete", []),
    "LifespanShutdownFailedEvent": ("lifespan.shutdown.failed", ["message"]),
}

EXPECTED_ALL = [
    "ASGIVersions", "HTTPScope", "WebSocketScope", "LifespanScope", "WWWScope", "Scope",
    "HTTPRequestEvent", "HTTPResponseStartEvent", "HTTPResponseBodyEvent",
    "HTTPResponseTrailersEvent", "HTTPResponsePathsendEvent", "HTTPServerPushEvent",
    "HTTPDisconnectEvent", "WebSocketConnectEvent", "WebSocketAcceptEvent",
    "WebSocketReceiveEvent", "WebSocketSendEvent", "WebSocketResponseStartEvent",
    "WebSocketResponseBodyEvent", "WebSocketDisconnectEvent", "WebSocketCloseEvent",
    "LifespanStartupEvent", "LifespanShutdownEvent", "LifespanStartupCompleteEvent",
    "LifespanStartupFailedEvent", "LifespanShutdownCompleteEvent",
    "LifespanShutdownFailedEvent", "ASGIReceiveEvent", "ASGISendEvent",
    "ASGIReceiveCallable", "ASGISendCallable", "ASGI2Protocol", "ASGI2Application",
    "ASGI3Application", "ASGIApplication",
]


def test_all_lists_the_public_names_in_order():
    assert isinstance(at.__all__, tuple)
    assert list(at.__all__) == EXPECTED_ALL
    for name in at.__all__:
        assert hasattr(at, name), name
    # Defined, but (as in asgiref) not exported.
    assert "HTTPResponseDebugEvent" not in at.__all__
    assert typing.is_typeddict(at.HTTPResponseDebugEvent)


@pytest.mark.parametrize("name", sorted(TYPED_DICTS))
def test_typed_dict_fields(name):
    cls = getattr(at, name)
    assert typing.is_typeddict(cls)
    type_value, rest = TYPED_DICTS[name]
    hints = get_type_hints(cls)  # every annotation must resolve
    expected = rest if type_value is None else ["type", *rest]
    assert list(hints) == expected
    if type_value is not None:
        assert hints["type"] == Literal[type_value]
    # Only "state" may be left out.
    assert cls.__optional_keys__ == ({"state"} & set(expected))
    assert cls.__required_keys__ == set(expected) - {"state"}


def test_scope_field_types():
    http = get_type_hints(at.HTTPScope, include_extras=True)
    assert http["asgi"] is at.ASGIVersions
    assert http["headers"] == HEADERS
    assert http["client"] == tuple[str, int] | None
    assert http["server"] == tuple[str, int | None] | None
    assert http["state"] == NotRequired[dict[str, Any]]
    assert http["extensions"] == EXTENSIONS
    assert http["raw_path"] is bytes and http["query_string"] is bytes
    ws = get_type_hints(at.WebSocketScope, include_extras=True)
    assert ws["subprotocols"] == Iterable[str]
    assert ws["extensions"] == EXTENSIONS
    versions = get_type_hints(at.ASGIVersions)
    assert set(get_args(versions["version"])) == {Literal["2.0"], Literal["3.0"]}


def test_event_field_types():
    hints = {name: get_type_hints(getattr(at, name)) for name in TYPED_DICTS}
    assert hints["HTTPRequestEvent"]["body"] is bytes
    assert hints["HTTPRequestEvent"]["more_body"] is bool
    assert hints["HTTPResponseStartEvent"]["status"] is int
    assert hints["HTTPResponseStartEvent"]["headers"] == HEADERS
    assert hints["HTTPResponseStartEvent"]["trailers"] is bool
    assert hints["HTTPResponseDebugEvent"]["info"] == dict[str, object]
    assert hints["HTTPResponsePathsendEvent"]["path"] is str
    assert hints["WebSocketAcceptEvent"]["subprotocol"] == str | None
    assert hints["WebSocketReceiveEvent"]["bytes"] == bytes | None
    assert hints["WebSocketSendEvent"]["text"] == str | None
    assert hints["WebSocketCloseEvent"]["code"] is int
    assert hints["WebSocketDisconnectEvent"]["reason"] == str | None
    assert hints["LifespanShutdownFailedEvent"]["message"] is str


def test_unions():
    assert get_origin(at.Scope) is typing.Union
    assert get_args(at.WWWScope) == (at.HTTPScope, at.WebSocketScope)
    assert get_args(at.Scope) == (at.HTTPScope, at.WebSocketScope, at.LifespanScope)
    assert get_args(at.ASGIReceiveEvent) == (
        at.HTTPRequestEvent, at.HTTPDisconnectEvent, at.WebSocketConnectEvent,
        at.WebSocketReceiveEvent, at.WebSocketDisconnectEvent,
        at.LifespanStartupEvent, at.LifespanShutdownEvent,
    )
    assert get_args(at.ASGISendEvent) == (
        at.HTTPResponseStartEvent, at.HTTPResponseBodyEvent,
        at.HTTPResponseTrailersEvent, at.HTTPServerPushEvent, at.HTTPDisconnectEvent,
        at.WebSocketAcceptEvent, at.WebSocketSendEvent, at.WebSocketResponseStartEvent,
        at.WebSocketResponseBodyEvent, at.WebSocketCloseEvent,
        at.LifespanStartupCompleteEvent, at.LifespanStartupFailedEvent,
        at.LifespanShutdownCompleteEvent, at.LifespanShutdownFailedEvent,
    )


def test_callables_and_applications():
    assert at.ASGIReceiveCallable == Callable[[], Awaitable[at.ASGIReceiveEvent]]
    assert at.ASGISendCallable == Callable[[at.ASGISendEvent], Awaitable[None]]
    assert at.ASGI3Application == Callable[
        [at.Scope, at.ASGIReceiveCallable, at.ASGISendCallable], Awaitable[None]
    ]
    assert at.ASGI2Application == type[at.ASGI2Protocol]
    assert get_args(at.ASGIApplication) == (at.ASGI2Application, at.ASGI3Application)
    assert getattr(at.ASGI2Protocol, "_is_protocol", False) is True
    call_hints = get_type_hints(at.ASGI2Protocol.__call__)
    assert call_hints == {
        "receive": at.ASGIReceiveCallable,
        "send": at.ASGISendCallable,
        "return": type(None),
    }
    assert get_type_hints(at.ASGI2Protocol.__init__)["scope"] == at.Scope
