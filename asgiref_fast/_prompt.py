"""``PromptFuture``: the future a hop's caller awaits, woken without a wait.

asyncio hands a future's outcome to the task awaiting it one loop pass later:
``set_result()`` only schedules the task's wake-up. For a hop that is a second
pass of the loop after the one that took the outcome from the inbox.
"""

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any


class PromptFuture(asyncio.Future):  # type: ignore[type-arg]
    """A future that wakes the task awaiting it the moment it gets its
    outcome, rather than on the loop's next turn.

    An awaiting task registers its wake-up as the future's first callback;
    that one is kept aside and called at once by ``set_result()`` and
    ``set_exception()``, which the inbox calls from a loop callback of its
    own. A hop so costs one pass of the loop instead of two. Any other
    callback, and every callback of a cancelled future, runs soon, as usual.
    """

    # Class defaults rather than an __init__: asyncio.Future's own is all a
    # new one needs, and twice as fast without a Python frame on top.
    _first: "Callable[[Any], Any] | None" = None
    _first_context: "contextvars.Context | None" = None

    def add_done_callback(self, fn: Any, *, context: "contextvars.Context | None" = None) -> None:
        if self._first is None and not self.done():
            self._first = fn
            self._first_context = contextvars.copy_context() if context is None else context
        else:
            super().add_done_callback(fn, context=context)

    def remove_done_callback(self, fn: Any) -> int:
        removed = super().remove_done_callback(fn)
        if self._first is not None and self._first == fn:
            self._first = self._first_context = None
            removed += 1
        return removed

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self._wake_first()

    def set_exception(self, exception: Any) -> None:
        super().set_exception(exception)
        self._wake_first()

    def cancel(self, msg: Any = None) -> bool:
        if not super().cancel(msg):
            return False
        self._wake_first(soon=True)
        return True

    def _wake_first(self, soon: bool = False) -> None:
        fn, context = self._first, self._first_context
        if fn is None:
            return
        self._first = self._first_context = None
        if soon or asyncio.current_task(self.get_loop()) is not None:
            # Not from a plain loop callback: a task cannot be stepped
            # inside another, so leave it to the loop.
            super().add_done_callback(fn, context=context)
        else:
            context.run(fn, self)  # type: ignore[union-attr]
