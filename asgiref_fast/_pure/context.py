"""Carrying a context across threads, and adopting it on arrival.

``Local`` data is tagged with the thread that wrote it, so that a thread which
merely inherits a context (Python 3.14's ``thread_inherit_context``) does not
see it. When asgiref itself moves a context to another thread, that thread
*adopts* the context: it records its identity in ``OWNER``, and from then on
every ``Local`` value in the context is visible to it. Adoption costs one
context variable, however many ``Local`` objects the context holds.
"""

import contextvars
from collections.abc import Callable
from threading import get_ident
from typing import TypeVar

_T = TypeVar("_T")

# The identity of the thread that adopted the current context last.
OWNER: "contextvars.ContextVar[int]" = contextvars.ContextVar("asgiref_fast.owner")

_MISSING = object()


def adopt_context() -> None:
    """Make the current context's Local data visible to this thread."""
    me = get_ident()
    if OWNER.get(None) != me:
        OWNER.set(me)


def restore_context(context: contextvars.Context) -> None:
    """Copy every variable that differs in *context* into the current context.

    Values are compared by identity only: third-party ``__eq__`` never runs.
    """
    for var, value in context.items():
        if var.get(_MISSING) is not value and var is not OWNER:
            var.set(value)
    adopt_context()


def _adopted_call(child: Callable[[], _T]) -> _T:
    adopt_context()
    return child()


class ContextCarrier:
    """Runs a call in *context* on a worker thread, and brings changes back.

    ``carrier(child)`` runs on the worker: it enters the context, adopts it and
    calls ``child()``. ``carrier.restore()`` runs on the caller's thread
    afterwards and copies what the call changed into the caller's context.
    """

    __slots__ = ("context",)
    context: contextvars.Context

    def __init__(self, context: contextvars.Context) -> None:
        self.context = context

    def __call__(self, child: Callable[[], _T]) -> _T:
        return self.context.run(_adopted_call, child)

    def restore(self) -> None:
        restore_context(self.context)
