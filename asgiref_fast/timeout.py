"""A deprecated timeout context manager, kept for code that still imports it.

New code should use :func:`asyncio.timeout`.
"""

import asyncio
import warnings
from types import TracebackType
from typing import Any, Optional  # noqa: F401  (Optional: asgiref's module has the name)


class timeout:
    """Cancel the current task after ``timeout`` seconds and raise ``TimeoutError``.

    Works with both ``with`` and ``async with`` inside a running task;
    ``timeout=None`` disables it.
    """

    def __init__(
        self,
        timeout: float | None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        warnings.warn(
            "asgiref.timeout.timeout is deprecated. Use asyncio.timeout() instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        if loop is None:
            loop = asyncio.get_running_loop()
        else:
            warnings.warn(
                "The loop argument to timeout() is deprecated.",
                DeprecationWarning,
                stacklevel=1,
            )
        self._timeout = timeout
        self._loop = loop
        self._task: "asyncio.Task[Any] | None" = None
        self._cancelled = False
        self._cancel_handler: asyncio.Handle | None = None
        self._cancel_at: float | None = None

    def __enter__(self) -> "timeout":
        return self._do_enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        self._do_exit(exc_type)
        return None

    async def __aenter__(self) -> "timeout":
        return self._do_enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self._do_exit(exc_type)

    @property
    def expired(self) -> bool:
        """True once the deadline passed and the task was cancelled."""
        return self._cancelled

    @property
    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None if unarmed."""
        if self._cancel_at is None:
            return None
        return max(self._cancel_at - self._loop.time(), 0.0)

    def _do_enter(self) -> "timeout":
        if self._timeout is None:
            return self
        self._task = asyncio.current_task(self._loop)
        if self._task is None:
            raise RuntimeError("Timeout context manager should be used inside a task")
        if self._timeout <= 0:
            # Already due: cancel on the next loop iteration.
            self._loop.call_soon(self._cancel_task)
        else:
            self._cancel_at = self._loop.time() + self._timeout
            self._cancel_handler = self._loop.call_at(self._cancel_at, self._cancel_task)
        return self

    def _do_exit(self, exc_type: type[BaseException] | None) -> None:
        timed_out = exc_type is asyncio.CancelledError and self._cancelled
        if self._cancel_handler is not None and not timed_out:
            self._cancel_handler.cancel()
        self._cancel_handler = None
        self._task = None
        if timed_out:
            raise TimeoutError

    def _cancel_task(self) -> None:
        # The block may have exited already; then there is nothing to cancel.
        if self._task is not None:
            self._task.cancel()
            self._cancelled = True
