"""Local: attribute storage local to the current async task or sync thread."""

# Unused here: asgiref's module has these names, and code may reach them here.
import asyncio  # noqa: F401
import contextvars  # noqa: F401
import threading  # noqa: F401
from typing import Any, final  # noqa: F401

from ._impl import local as _twin

__all__ = ["Local"]

Local = _twin.Local
# Named here because asgiref's tests and type checks reach them.
_DefaultLocal = _twin._DefaultLocal
_ThreadCriticalLocal = _twin._ThreadCriticalLocal
_Storage = _twin._Storage
