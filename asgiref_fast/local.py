"""Local: attribute storage local to the current async task or sync thread."""

# Unused here: asgiref's module has these names, and code may reach them here.
import asyncio  # noqa: F401
import contextvars  # noqa: F401
import threading  # noqa: F401
from typing import Any, final  # noqa: F401

from ._impl import Local, _DefaultLocal, _Storage, _ThreadCriticalLocal

__all__ = ["Local"]

# Named here because asgiref's tests and type checks reach them.
_ = (_DefaultLocal, _ThreadCriticalLocal, _Storage)
