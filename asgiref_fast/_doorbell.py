"""A doorbell: the cheapest way for another thread to wake an event loop.

``loop.call_soon_threadsafe`` wakes the loop through its self-pipe, a socket
pair: the ring allocates a socket buffer, and the loop then reads until the
socket runs dry, raising and catching BlockingIOError each time. A bell is an
eventfd (a pipe where there is none) that the loop watches with ``add_reader``:
one ``write`` to ring, one ``read`` to answer, about 40% off a hop's round
trip. Loops that cannot watch a file descriptor (Windows, the proactor loop)
get no bell, and their inboxes fall back to ``call_soon_threadsafe``.

Used by both twins' inboxes, which ring under their own lock so that a bell is
never rung after it was closed (its descriptor number may be reused by then).
"""

import asyncio
import contextvars
import os
import sys
from collections.abc import Callable
from typing import Any

# An eventfd adds this to its counter; a pipe just holds the bytes.
_RING = (1).to_bytes(8, sys.byteorder)


class Bell:
    """A descriptor pair watched by one loop: ``ring()`` from any thread
    makes the loop call the bell's callback."""

    __slots__ = ("read_fd", "write_fd")

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def ring(self) -> None:
        try:
            os.write(self.write_fd, _RING)
        except BlockingIOError:
            pass  # full of unanswered rings: the loop is waking anyway

    def answer(self) -> None:
        """Loop thread: silence the bell before looking at what it rang for,
        so a ring that comes after the look wakes the loop again."""
        try:
            # An eventfd's read takes every ring at once; a pipe's, up to
            # 512 (more than an inbox rings between two answers).
            os.read(self.read_fd, 4096)
        except BlockingIOError:
            pass  # rung for something an earlier answer already took

    def close(self) -> None:
        """Close the descriptors, once the loop no longer watches them (it
        is closed, or gone); the owner makes sure nobody rings it after."""
        if self.read_fd < 0:
            return
        os.close(self.read_fd)
        if self.write_fd != self.read_fd:
            os.close(self.write_fd)
        self.read_fd = self.write_fd = -1


def open_bell(loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> "Bell | None":
    """A bell on *loop* that calls *callback*; None if the loop cannot watch
    a descriptor. Call on the loop's own thread."""
    if sys.platform == "win32":  # select() there watches sockets only
        return None
    if hasattr(os, "eventfd"):
        read_fd = write_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    else:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
    bell = Bell(read_fd, write_fd)
    try:
        # In an empty context: the handle keeps the context it is made in
        # for as long as the loop lives, and it is made during some request.
        contextvars.Context().run(loop.add_reader, read_fd, callback)
    except (NotImplementedError, RuntimeError, AttributeError):  # no fds, or closed
        bell.close()
        return None
    return bell
