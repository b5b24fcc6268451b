"""Local: attribute storage local to the current async task or sync thread."""

from ._impl import Local, _DefaultLocal, _Storage, _ThreadCriticalLocal

__all__ = ["Local"]

# Named here because asgiref's tests and type checks reach them.
_ = (_DefaultLocal, _ThreadCriticalLocal, _Storage)
