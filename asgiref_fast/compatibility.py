"""Adapters between ASGI 2 ("double-callable") and ASGI 3 ("single-callable") apps."""

import inspect
from typing import Any

from .sync import iscoroutinefunction


def is_double_callable(application: Any) -> bool:
    """Whether ``application`` looks like an ASGI 2 app: ``app(scope)(receive, send)``."""
    # Explicit markers win over any guessing.
    if getattr(application, "_asgi_single_callable", False):
        return False
    if getattr(application, "_asgi_double_callable", False):
        return True
    # A class is instantiated with the scope, so it is ASGI 2 by construction.
    if inspect.isclass(application):
        return True
    # An instance whose __call__ is async is a single-callable app; otherwise
    # the object itself may still be an async function.
    # (hasattr, not callable(): asgiref also honours an instance-level __call__.)
    if hasattr(application, "__call__") and iscoroutinefunction(application.__call__):  # noqa: B004
        return False
    return not iscoroutinefunction(application)


def double_to_single_callable(application: Any) -> Any:
    """Wrap an ASGI 2 app so it can be called the ASGI 3 way."""

    async def new_application(scope: Any, receive: Any, send: Any) -> Any:
        return await application(scope)(receive, send)

    return new_application


def guarantee_single_callable(application: Any) -> Any:
    """Return ``application`` as an ASGI 3 app, wrapping it if it is ASGI 2."""
    if is_double_callable(application):
        return double_to_single_callable(application)
    return application
