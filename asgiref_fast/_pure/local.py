"""The pure-Python twin of ``Local``: per-context storage, tagged by thread."""

import asyncio
import contextvars
import threading
from threading import get_ident
from typing import Any, final

from .context import OWNER

_running_loop = asyncio._get_running_loop  # returns None instead of raising
_object_new = object.__new__


class _Storage:
    """One Local's data in one context, tagged with the thread that wrote it.

    Never mutated after it is published in a context variable: a write makes
    a new ``_Storage``, so contexts that shared the old one are unaffected.
    """

    __slots__ = ("thread_id", "data")
    thread_id: int
    data: "dict[str, Any]"

    def __init__(self, thread_id: int, data: "dict[str, Any]") -> None:
        self.thread_id = thread_id
        self.data = data


def _visible_data(var: "contextvars.ContextVar[_Storage]") -> "dict[str, Any] | None":
    # A thread sees data it wrote, and data in a context asgiref moved to it.
    storage = var.get(None)
    if storage is None:
        return None
    me = get_ident()
    if storage.thread_id == me or OWNER.get(None) == me:
        return storage.data
    return None


def _missing(local: object, key: str) -> AttributeError:
    return AttributeError(f"{local!r} object has no attribute {key!r}")


_NO_DATA: "dict[str, Any]" = {}


def _get(local: object, var: "contextvars.ContextVar[_Storage]", key: str) -> Any:
    data = _visible_data(var)
    try:
        return (_NO_DATA if data is None else data)[key]
    except KeyError:
        # Raised from the KeyError, as asgiref's is.
        raise _missing(local, key)


def _set(var: "contextvars.ContextVar[_Storage]", key: str, value: Any) -> None:
    data = _visible_data(var)
    data = {key: value} if data is None else {**data, key: value}
    var.set(_Storage(get_ident(), data))


def _delete(local: object, var: "contextvars.ContextVar[_Storage]", key: str) -> None:
    data = _visible_data(var)
    if data is None or key not in data:
        raise _missing(local, key)
    data = data.copy()
    del data[key]
    var.set(_Storage(get_ident(), data))


class Local:
    """Attribute storage local to the current task in async code, and to the
    current thread (and the async code it calls through async_to_sync) in
    sync code. ``Local(thread_critical=True)`` never shares data between
    threads. Not subclassable.
    """

    __slots__ = ()

    def __new__(cls, thread_critical: bool = False) -> "Local":
        if cls is not Local:
            raise TypeError("asgiref.local.Local cannot be subclassed")
        return _object_new(_ThreadCriticalLocal if thread_critical else _DefaultLocal)

    def __init__(self, thread_critical: bool = False) -> None:
        pass

    # For type checkers: attributes are dynamic.
    def __getattr__(self, key: str) -> Any: ...

    def __setattr__(self, key: str, value: Any) -> None: ...

    def __delattr__(self, key: str) -> None: ...


@final
class _DefaultLocal(Local):
    # ``_data`` is the backing ContextVar; it is reserved, as in asgiref.
    # ``_lock`` and ``_storage`` read as asgiref's internals of those names
    # do (its lock, and storage whose attributes are this Local's), and
    # setting them does not replace them. Nothing here takes that lock.
    __slots__ = ("_data", "_lock")
    _data: "contextvars.ContextVar[_Storage]"
    _lock: "threading.RLock"

    def __init__(self, thread_critical: bool = False) -> None:
        object.__setattr__(self, "_data", contextvars.ContextVar("asgiref.local"))
        object.__setattr__(self, "_lock", threading.RLock())

    @property
    def _storage(self) -> "_DefaultLocal":
        return self

    def __getattr__(self, key: str) -> Any:
        return _get(self, self._data, key)

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "_data":
            raise AttributeError("Cannot set attribute '_data' on Local")
        _set(self._data, key, value)

    def __delattr__(self, key: str) -> None:
        _delete(self, self._data, key)


@final
class _ThreadCriticalLocal(Local):
    # In sync code: a plain threading.local (``_storage``, as asgiref names
    # it). In async code: per-thread context-local storage, so tasks on one
    # loop do not share data either.
    __slots__ = ("_storage", "_task_vars")
    _storage: threading.local
    _task_vars: threading.local

    def __init__(self, thread_critical: bool = False) -> None:  # Local's signature (the stub's)
        object.__setattr__(self, "_storage", threading.local())
        object.__setattr__(self, "_task_vars", threading.local())

    def _task_var(self) -> "contextvars.ContextVar[_Storage]":
        vars_ = self._task_vars
        try:
            return vars_.var  # type: ignore[no-any-return]
        except AttributeError:
            vars_.var = var = contextvars.ContextVar("asgiref.local")  # type: ignore[var-annotated]
            return var

    def __getattr__(self, key: str) -> Any:
        if _running_loop() is None:
            return getattr(self._storage, key)
        return _get(self, self._task_var(), key)

    def __setattr__(self, key: str, value: Any) -> None:
        if _running_loop() is None:
            setattr(self._storage, key, value)
        elif key == "_data":
            raise AttributeError("Cannot set attribute '_data' on Local")
        else:
            _set(self._task_var(), key, value)

    def __delattr__(self, key: str) -> None:
        if _running_loop() is None:
            delattr(self._storage, key)
        else:
            _delete(self, self._task_var(), key)


def peek(local: "Local", key: str, default: Any = None) -> Any:
    """``getattr(local, key, default)``, without raising AttributeError inside:
    for asgiref_fast's own hot lookups."""
    if type(local) is _ThreadCriticalLocal:
        if _running_loop() is None:
            return getattr(local._storage, key, default)
        var = local._task_var()
    else:
        var = local._data
    data = _visible_data(var)
    return default if data is None else data.get(key, default)
