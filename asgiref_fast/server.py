"""Base class for servers of stateless protocols (no connections, just messages)."""

import asyncio
import logging
import time
import traceback
from typing import Any

from .compatibility import guarantee_single_callable

logger = logging.getLogger(__name__)


class StatelessServer:
    """Keeps one application instance per ``scope_id`` and routes messages to it.

    Subclasses implement :meth:`handle` (the receive loop, which calls
    :meth:`get_or_create_application_instance` and puts messages on the
    returned queue) and :meth:`application_send` (what to do with messages
    the application sends). At most ``max_applications`` instances are kept;
    the least recently used one is dropped to make room. Finished instances
    are reaped, and their errors reported, every
    ``application_checker_interval`` seconds; no instance's failure or
    cancellation stops that.
    """

    application_checker_interval = 0.1

    def __init__(self, application: Any, max_applications: int = 1000) -> None:
        self.application = application
        self.max_applications = max_applications
        # scope_id -> {"input_queue", "future", "scope", "last_used"}
        self.application_instances: dict[Any, dict[str, Any]] = {}

    # -- Running -------------------------------------------------------------

    def run(self) -> None:
        """Run the server on a new event loop until handle() returns."""
        try:
            asyncio.run(self.arun())
        except KeyboardInterrupt:
            logger.info("Exiting due to Ctrl-C/interrupt")

    async def arun(self) -> None:
        """Run handle() and the instance checker until handle() returns."""

        class _HandleReturned(Exception):
            pass

        async def handle_then_stop() -> None:
            await self.handle()
            # gather() only stops early on an exception, and the checker
            # never returns, so signal completion this way.
            raise _HandleReturned

        try:
            await asyncio.gather(self.application_checker(), handle_then_stop())
        except _HandleReturned:
            pass

    async def handle(self) -> None:
        raise NotImplementedError("You must implement handle()")

    async def application_send(self, scope: Any, message: Any) -> None:
        """Called with every message an application instance sends."""
        raise NotImplementedError("You must implement application_send()")

    # -- Application instances -----------------------------------------------

    def get_or_create_application_instance(self, scope_id: Any, scope: Any) -> "asyncio.Queue[Any]":
        """Return the input queue of ``scope_id``'s instance, starting one if needed."""
        instances = self.application_instances
        details = instances.pop(scope_id, None)
        if details is not None:
            details["last_used"] = time.time()
            # Moved to the end: dict order is then least recently used first,
            # which breaks ties between equal timestamps the right way.
            instances[scope_id] = details
            return details["input_queue"]  # type: ignore[no-any-return]
        # Make room: never more than max_applications at once (asgiref
        # allowed one more than its documentation says).
        while instances and len(instances) >= self.max_applications:
            self.delete_oldest_application_instance()
        input_queue: "asyncio.Queue[Any]" = asyncio.Queue()

        def send(message: Any) -> Any:
            return self.application_send(scope, message)

        app = guarantee_single_callable(self.application)
        future = asyncio.ensure_future(
            app(scope=scope, receive=input_queue.get, send=send)
        )
        self.application_instances[scope_id] = {
            "input_queue": input_queue,
            "future": future,
            "scope": scope,
            "last_used": time.time(),
        }
        return input_queue

    def delete_oldest_application_instance(self) -> None:
        """Drop the least recently used instance (the first one on a tie)."""
        oldest = min(
            self.application_instances,
            key=lambda scope_id: self.application_instances[scope_id]["last_used"],
        )
        self.delete_application_instance(oldest)

    def delete_application_instance(self, scope_id: Any) -> None:
        """Forget ``scope_id``'s instance and cancel it if it is still running."""
        future = self.application_instances.pop(scope_id)["future"]
        if not future.done():
            future.cancel()

    async def application_checker(self) -> None:
        """Forever: reap finished instances and report the ones that failed."""
        while True:
            await asyncio.sleep(self.application_checker_interval)
            for scope_id, details in list(self.application_instances.items()):
                future = details["future"]
                if not future.done():
                    continue
                # A cancelled instance is just reaped. (asgiref asks it for
                # its exception, which raises CancelledError and stops this
                # checker, and with it the server.)
                exception = None if future.cancelled() else future.exception()
                if exception:
                    try:
                        await self.application_exception(exception, details)
                    except Exception:
                        logger.exception("application_exception() failed")
                # application_exception() may have removed or replaced it.
                if self.application_instances.get(scope_id) is details:
                    del self.application_instances[scope_id]

    async def application_exception(
        self, exception: BaseException, application_details: dict[str, Any]
    ) -> None:
        """Called when an instance raised; logs it (to the root logger, like asgiref)."""
        tb = "".join(traceback.format_tb(exception.__traceback__))
        logging.error("Exception inside application: %s\n%s  %s", exception, tb, exception)
