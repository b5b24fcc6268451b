import asyncio

import pytest

from asgiref_fast.compatibility import (
    double_to_single_callable,
    guarantee_single_callable,
    is_double_callable,
)
from asgiref_fast.testing import ApplicationCommunicator


def asgi2_function(scope):
    async def instance(receive, send):
        message = await receive()
        await send({"scope": scope["name"], "got": message["n"]})

    return instance


class ASGI2Class:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        message = await receive()
        await send({"scope": self.scope["name"], "got": message["n"] * 2})


class ASGI2Factory:
    """An instance whose sync __call__ returns the per-scope coroutine function."""

    def __call__(self, scope):
        return asgi2_function(scope)


async def asgi3_function(scope, receive, send):
    message = await receive()
    await send({"scope": scope["name"], "got": message["n"] + 1})


class ASGI3Class:
    async def __call__(self, scope, receive, send):
        await asgi3_function(scope, receive, send)


@pytest.mark.parametrize(
    "app, expected",
    [
        (asgi2_function, True),
        (ASGI2Class, True),
        (ASGI2Factory(), True),
        (asgi3_function, False),
        (ASGI3Class(), False),
        (object(), True),
    ],
    ids=["asgi2-func", "asgi2-class", "asgi2-factory", "asgi3-func", "asgi3-instance", "object"],
)
def test_is_double_callable_detects_style(app, expected):
    assert is_double_callable(app) is expected


def test_markers_override_detection():
    class MarkedSingle:
        _asgi_single_callable = True

    async def marked_double(scope, receive, send):
        pass

    marked_double._asgi_double_callable = True

    assert is_double_callable(MarkedSingle) is False
    assert is_double_callable(marked_double) is True

    # The single marker is checked first.
    marked_double._asgi_single_callable = True
    assert is_double_callable(marked_double) is False

    # Falsy markers are ignored.
    class FalsyMarkers:
        _asgi_single_callable = False
        _asgi_double_callable = False

    assert is_double_callable(FalsyMarkers) is True


def test_double_to_single_produces_single_callable():
    wrapped = double_to_single_callable(asgi2_function)
    assert wrapped is not asgi2_function
    assert is_double_callable(wrapped) is False


def test_guarantee_single_callable_only_wraps_asgi2():
    assert guarantee_single_callable(asgi3_function) is asgi3_function
    instance = ASGI3Class()
    assert guarantee_single_callable(instance) is instance
    wrapped = guarantee_single_callable(ASGI2Class)
    assert wrapped is not ASGI2Class
    assert is_double_callable(wrapped) is False


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "app, expected",
    [
        (double_to_single_callable(asgi2_function), 7),
        (guarantee_single_callable(ASGI2Class), 14),
        (guarantee_single_callable(ASGI2Factory()), 7),
        (guarantee_single_callable(asgi3_function), 8),
        (guarantee_single_callable(ASGI3Class()), 8),
    ],
)
async def test_converted_apps_run(app, expected):
    communicator = ApplicationCommunicator(app, {"name": "s"})
    await communicator.send_input({"n": 7})
    assert await communicator.receive_output() == {"scope": "s", "got": expected}
    await communicator.wait()


@pytest.mark.asyncio
async def test_wrapper_accepts_keyword_arguments_and_returns_result():
    seen = {}

    def app(scope):
        seen["scope"] = scope

        async def instance(receive, send):
            return (await receive(), send)

        return instance

    async def receive():
        return "msg"

    wrapped = double_to_single_callable(app)
    result = await asyncio.wait_for(
        wrapped(scope={"x": 1}, receive=receive, send="send"), 5
    )
    assert result == ("msg", "send")
    assert seen["scope"] == {"x": 1}
