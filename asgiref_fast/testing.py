"""Drive an ASGI application from tests: feed it messages, read what it sends."""

import asyncio
import contextvars
import time
from typing import Any

from .compatibility import guarantee_single_callable


class ApplicationCommunicator:
    """Runs one ASGI application instance as a task and talks to it via queues.

    The task is created on first use (see :attr:`future`), so the communicator
    itself can be built outside of an event loop.
    """

    def __init__(self, application: Any, scope: Any) -> None:
        self.application = guarantee_single_callable(application)
        self.scope = scope
        self._future: "asyncio.Task[Any] | None" = None
        self._input_queue: "asyncio.Queue[Any] | None" = None
        self._output_queue: "asyncio.Queue[Any] | None" = None

    @property
    def input_queue(self) -> "asyncio.Queue[Any]":
        if self._input_queue is None:
            self._input_queue = asyncio.Queue()
        return self._input_queue

    @property
    def output_queue(self) -> "asyncio.Queue[Any]":
        if self._output_queue is None:
            self._output_queue = asyncio.Queue()
        return self._output_queue

    @property
    def future(self) -> "asyncio.Task[Any]":
        if self._future is None:
            coro = self.application(
                self.scope, self.input_queue.get, self.output_queue.put
            )
            # A real server starts each app with no context variables set, so
            # nothing from the test's own context may leak into it.
            self._future = asyncio.create_task(coro, context=contextvars.Context())
        return self._future

    def _raise_if_finished(self) -> None:
        # Surfaces the app's exception (or cancellation) as early as possible.
        if self.future.done():
            self.future.result()

    async def _cancel_and_reap(self) -> None:
        self.future.cancel()
        try:
            await self.future
        except asyncio.CancelledError:
            pass

    async def wait(self, timeout: float = 1) -> None:
        """Wait for the app to finish and re-raise its exception, if any.

        If ``timeout`` runs out first the app is cancelled and this returns
        quietly, as asgiref does.
        """
        try:
            async with asyncio.timeout(timeout):
                try:
                    await self.future
                except asyncio.CancelledError:
                    # Either the app was cancelled or our timeout fired (which
                    # cancels the awaited task too): both end the wait.
                    pass
        finally:
            if not self.future.done():
                await self._cancel_and_reap()

    def stop(self, exceptions: bool = True) -> None:
        """Cancel the app if it is running; else re-raise its outcome if asked."""
        if self._future is None:
            return
        if not self._future.done():
            self._future.cancel()
        elif exceptions:
            self._future.result()

    def __del__(self) -> None:
        try:
            self.stop(exceptions=False)
        except RuntimeError:
            # The loop the task belonged to is already closed.
            pass

    async def send_input(self, message: Any) -> None:
        """Queue one message for the app's ``receive()``."""
        self._raise_if_finished()
        await self.input_queue.put(message)

    async def receive_output(self, timeout: float = 1) -> Any:
        """Return the next message the app sends, waiting at most ``timeout``.

        On timeout the app's own exception wins if it has one; otherwise the
        app is cancelled and ``TimeoutError`` propagates.
        """
        self._raise_if_finished()
        try:
            async with asyncio.timeout(timeout):
                return await self.output_queue.get()
        except TimeoutError:
            if self.future.done():
                self.future.result()
            else:
                await self._cancel_and_reap()
            raise

    async def receive_nothing(self, timeout: float = 0.1, interval: float = 0.01) -> bool:
        """True if the app sends nothing within ``timeout`` (polled every ``interval``)."""
        self._raise_if_finished()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.output_queue.empty():
                return False
            await asyncio.sleep(interval)
        return self.output_queue.empty()
