# cython: language_level=3, freethreading_compatible=True
"""The compiled twin of ``asgiref_fast._pure.local``: per-context storage,
tagged by thread.

Attribute access goes through typed slots (``tp_getattro``/``tp_setattro``)
straight to the context variable and the data dict. ``Local(...)`` must hand
back an instance of one of its two concrete subclasses, which a ``cdef class``
cannot do from ``__cinit__``: the three classes' ``tp_new`` slot is replaced,
once at import, by ``_local_new`` below.

Free-threading: a Local's fields are set once, before the Local is returned,
and a ``_Storage`` is never changed once published (every write publishes a
new one), so reads need no lock. Its data dict is never changed either once
published (writes copy it), so copying it races no writer. Context variables
are per thread (each thread runs its own context), and a thread-critical
Local's storage is a ``threading.local``. The type slots are patched once,
at import, before any thread can make a Local. Cython disables ``freelist``
on free-threaded builds (it would need the GIL). Rebinding a published
``_Storage``'s attributes by hand while another thread reads them would be a
data race here (not in the pure twin); nothing in asgiref_fast does that.
"""

cimport cython
from cpython.object cimport (
    PyObject,
    PyObject_GenericGetAttr,
    Py_EQ,
    Py_TYPE,
    newfunc,
)
from cpython.dict cimport PyDict_CheckExact, PyDict_Copy
from cpython.long cimport PyLong_CheckExact, PyLong_FromUnsignedLong
from cpython.ref cimport Py_DECREF
from cpython.unicode cimport PyUnicode_Check

from capi cimport (
    dict_get,
    PyContextVar_Get,
    PyContextVar_Set,
    PyThread_get_thread_ident,
    _PyType_Lookup,
)
from ident cimport compare_ident

import asyncio
import contextvars
import threading

# The same OWNER object the context twin adopts with.
from asgiref_fast._cy.context import OWNER

cdef object _OWNER = OWNER
# asyncio's C accelerator: None when no loop runs in this thread.
cdef object _running_loop = asyncio._get_running_loop
cdef object _ContextVar = contextvars.ContextVar
cdef object _thread_local = threading.local
cdef object _RLock = threading.RLock


@cython.freelist(32)
cdef class _Storage:
    """One Local's data in one context, tagged with the thread that wrote it.

    Never mutated after it is published in a context variable: a write makes
    a new ``_Storage``, so contexts that shared the old one are unaffected.
    """

    def __init__(self, thread_id, data):
        self.thread_id = thread_id
        self.data = data


cdef inline object _visible_storage(object var, unsigned long me):
    # A thread sees data it wrote, and data in a context asgiref moved to it.
    cdef PyObject* raw
    PyContextVar_Get(var, <PyObject*>None, &raw)
    storage = <object>raw
    Py_DECREF(storage)
    if storage is None:
        return None
    if type(storage) is _Storage:
        thread_id = (<_Storage>storage).thread_id
    else:  # not one of ours (set through ``_data`` by hand): duck-typed
        thread_id = storage.thread_id
    if compare_ident(thread_id, me, Py_EQ) or _owned_by(me):
        return storage
    return None


cdef inline bint _owned_by(unsigned long me) except -1:
    cdef PyObject* raw
    PyContextVar_Get(_OWNER, <PyObject*>None, &raw)
    owner = <object>raw
    Py_DECREF(owner)
    return compare_ident(owner, me, Py_EQ)


cdef inline object _data_of(object storage):
    if storage is None:
        return None
    if type(storage) is _Storage:
        return (<_Storage>storage).data
    return storage.data


cdef inline object _visible_data(object var, unsigned long me):
    return _data_of(_visible_storage(var, me))


cdef inline object _missing(object local, object key):
    return AttributeError(f"{local!r} object has no attribute {key!r}")


cdef object _get(object local, object var, object key):
    cdef PyObject* value
    data = _visible_data(var, PyThread_get_thread_ident())
    if data is not None:
        if PyDict_CheckExact(data):
            if dict_get(data, key, &value):
                result = <object>value
                Py_DECREF(result)
                return result
        else:
            try:
                return data[key]
            except KeyError:
                raise _missing(local, key)
    # Raised from a KeyError, as asgiref's is (off the hot path).
    try:
        raise KeyError(key)
    except KeyError:
        raise _missing(local, key)


cdef int _store(object var, object storage, unsigned long me, object data) except -1:
    # Publish *data* as this thread's, in a new _Storage. The thread id of
    # storage written by this thread before is reused: no new int.
    new = <_Storage>_Storage.__new__(_Storage)
    if type(storage) is _Storage and PyLong_CheckExact((<_Storage>storage).thread_id) and (
        compare_ident((<_Storage>storage).thread_id, me, Py_EQ)
    ):
        new.thread_id = (<_Storage>storage).thread_id
    else:
        new.thread_id = PyLong_FromUnsignedLong(me)
    new.data = data
    PyContextVar_Set(var, new)
    return 0


cdef int _set(object var, object key, object value) except -1:
    cdef unsigned long me = PyThread_get_thread_ident()
    storage = _visible_storage(var, me)
    data = _data_of(storage)
    if data is None:
        data = {key: value}
    elif PyDict_CheckExact(data):
        data = PyDict_Copy(data)  # far cheaper than {**data} for small dicts
        data[key] = value
    else:
        data = {**data, key: value}
    return _store(var, storage, me, data)


cdef int _delete(object local, object var, object key) except -1:
    cdef unsigned long me = PyThread_get_thread_ident()
    storage = _visible_storage(var, me)
    data = _data_of(storage)
    if data is None or key not in data:
        raise _missing(local, key)
    data = PyDict_Copy(data) if PyDict_CheckExact(data) else data.copy()
    del data[key]
    return _store(var, storage, me, data)


cdef inline bint _on_type(object local, object key):
    # Names the type itself has (``_data``, ``__class__``, ...) come first, as
    # they do for a Python class with ``__getattr__``; the instance has no
    # ``__dict__``, so everything else is Local data. The lookup is the
    # cached one generic getattr starts with; the types are immutable.
    return PyUnicode_Check(key) and _PyType_Lookup(Py_TYPE(local), key) != NULL


cdef inline object _generic_getattr(object local, object key):
    return PyObject_GenericGetAttr(local, key)


cdef class Local:
    """Attribute storage local to the current task in async code, and to the
    current thread (and the async code it calls through async_to_sync) in
    sync code. ``Local(thread_critical=True)`` never shares data between
    threads. Not subclassable.
    """

    def __init__(self, thread_critical=False):
        pass


cdef class _DefaultLocal(Local):
    # ``_data`` is the backing ContextVar; it is reserved, as in asgiref. It is
    # made once, by _local_new (the pure twin makes it in __init__).
    # ``_lock`` and ``_storage`` read as asgiref's internals of those names
    # do (its lock, and storage whose attributes are this Local's), and
    # setting them does not replace them. Nothing here takes that lock.

    @property
    def _storage(self):
        return self

    def __getattribute__(self, key):
        if not PyUnicode_Check(key):
            return _generic_getattr(self, key)  # raises the usual TypeError
        if _on_type(self, key):
            try:
                return _generic_getattr(self, key)
            except AttributeError:
                pass
        return _get(self, self._data, key)

    def __setattr__(self, key, value):
        if key == "_data":
            raise AttributeError("Cannot set attribute '_data' on Local")
        _set(self._data, key, value)

    def __delattr__(self, key):
        _delete(self, self._data, key)


cdef object _task_var_of(_ThreadCriticalLocal local):
    vars_ = local._task_vars
    try:
        return vars_.var
    except AttributeError:
        vars_.var = var = _ContextVar("asgiref.local")
        return var


cdef class _ThreadCriticalLocal(Local):
    # In sync code: a plain threading.local (``_storage``, as asgiref names
    # it). In async code: per-thread context-local storage, so tasks on one
    # loop do not share data either.

    def _task_var(self):
        return _task_var_of(self)

    def __getattribute__(self, key):
        if not PyUnicode_Check(key):
            return _generic_getattr(self, key)
        if _on_type(self, key):
            try:
                return _generic_getattr(self, key)
            except AttributeError:
                pass
        if _running_loop() is None:
            return getattr(self._storage, key)
        return _get(self, _task_var_of(self), key)

    def __setattr__(self, key, value):
        if _running_loop() is None:
            setattr(self._storage, key, value)
        elif key == "_data":
            raise AttributeError("Cannot set attribute '_data' on Local")
        else:
            _set(_task_var_of(self), key, value)

    def __delattr__(self, key):
        if _running_loop() is None:
            delattr(self._storage, key)
        else:
            _delete(self, _task_var_of(self), key)


def peek(local, key, default=None):
    """``getattr(local, key, default)``, without raising AttributeError inside:
    for asgiref_fast's own hot lookups."""
    if type(local) is _ThreadCriticalLocal:
        if _running_loop() is None:
            return getattr((<_ThreadCriticalLocal>local)._storage, key, default)
        var = _task_var_of(local)
    elif type(local) is _DefaultLocal:
        var = (<_DefaultLocal>local)._data
    else:
        var = local._data
    data = _visible_data(var, PyThread_get_thread_ident())
    return default if data is None else data.get(key, default)


def _new_args(thread_critical=False):
    return thread_critical


cdef object _local_new(type cls, PyObject* args, PyObject* kwargs):
    # Local.__new__: the one way to make a Local, of either concrete kind.
    cdef _DefaultLocal default
    cdef _ThreadCriticalLocal critical
    thread_critical = _new_args(*<tuple>args, **(<dict>kwargs if kwargs != NULL else {}))
    if cls is not Local:
        raise TypeError("asgiref.local.Local cannot be subclassed")
    # Each kind's own tp_new, called directly, not through the patched slot.
    if thread_critical:
        critical = _ThreadCriticalLocal.__new__(_ThreadCriticalLocal)
        critical._storage = _thread_local()
        critical._task_vars = _thread_local()
        return critical
    default = _DefaultLocal.__new__(_DefaultLocal)
    default._data = _ContextVar("asgiref.local")
    default._lock = _RLock()
    return default


cdef extern from "local.h":
    void _set_new "asgiref_fast_set_new" (type t, newfunc new_)


# Before any subclass exists: a Python subclass inherits the patched slot, so
# instantiating it raises, as it does with the pure twin.
_set_new(Local, <newfunc>_local_new)
_set_new(_DefaultLocal, <newfunc>_local_new)
_set_new(_ThreadCriticalLocal, <newfunc>_local_new)
