# cython: language_level=3, freethreading_compatible=True
"""The compiled twin of ``asgiref_fast._pure.context``.

Beyond the pure twin: a context's variables live in an immutable HAMT that a
``ContextVar.set`` replaces, so two contexts holding the very same HAMT hold
the same values. ``restore_context`` and ``ContextCarrier.restore`` use that
to skip the walk over every variable when nothing changed: a hop costs the
same however many context variables the sync code left alone.

Free-threading: a context runs in one thread at a time, and a carrier's
``_adopted`` is written on the worker before the outcome is handed to the
caller (through the inbox's mutex), which reads it afterwards. The one
exception is a call cancelled while it runs: restore() then races the worker,
as the pure twin's walk does; it only compares pointers, never dereferences
``_adopted``, so the race can cost the fast path but not correctness. (The
walk then reads the context while the worker may set variables in it, as
upstream's restore does: on a free-threaded build that is CPython's Context
read from two threads, which its own locking must make safe, not ours.)
"""

from cpython.object cimport PyObject, Py_NE
from cpython.ref cimport Py_DECREF
from cpython.long cimport PyLong_FromUnsignedLong

from capi cimport (
    PyContext_CheckExact,
    PyContext_CopyCurrent,
    PyContext_Enter,
    PyContext_Exit,
    PyContextVar_Get,
    PyContextVar_Set,
    PyThread_get_thread_ident,
    asgiref_fast_context_vars,
)
from ident cimport compare_ident

# One OWNER per process, whichever twins are in use.
from asgiref_fast._pure.context import OWNER

cdef object _OWNER = OWNER
cdef object _MISSING = object()


cdef int _adopt() except -1:
    cdef unsigned long me = PyThread_get_thread_ident()
    cdef PyObject* raw
    PyContextVar_Get(_OWNER, NULL, &raw)
    if raw != NULL:
        owner = <object>raw
        Py_DECREF(owner)
        if not compare_ident(owner, me, Py_NE):
            return 0
    PyContextVar_Set(_OWNER, PyLong_FromUnsignedLong(me))
    return 0


cdef inline PyObject* _current_vars() except NULL:
    # Borrowed: the current context keeps it alive.
    return asgiref_fast_context_vars(PyContext_CopyCurrent())


cdef int _restore(object context) except -1:
    cdef PyObject* raw
    if PyContext_CheckExact(context) and asgiref_fast_context_vars(context) == _current_vars():
        return _adopt()  # the very same variables: nothing to copy
    for var, value in context.items():
        if var is _OWNER:
            continue
        PyContextVar_Get(var, <PyObject*>_MISSING, &raw)
        Py_DECREF(<object>raw)  # only its identity is needed, and var still holds it
        if raw != <PyObject*>value:
            PyContextVar_Set(var, value)
    return _adopt()


def adopt_context():
    """Make the current context's Local data visible to this thread."""
    _adopt()


def restore_context(context):
    """Copy every variable that differs in *context* into the current context.

    Values are compared by identity only: third-party ``__eq__`` never runs.
    """
    _restore(context)


def _adopted_call(child):
    _adopt()
    return child()


cdef class ContextCarrier:
    """Runs a call in *context* on a worker thread, and brings changes back.

    ``carrier(child)`` runs on the worker: it enters the context, adopts it and
    calls ``child()``. ``carrier.restore()`` runs on the caller's thread
    afterwards and copies what the call changed into the caller's context.
    """

    def __init__(self, context):
        self.context = context

    @property
    def context(self):
        return self._context

    @context.setter
    def context(self, context):
        self._context = context
        self._made = (
            <object>asgiref_fast_context_vars(context) if PyContext_CheckExact(context) else None
        )
        self._adopted = None

    def __call__(self, child):
        cdef bint made
        context = self._context
        if not PyContext_CheckExact(context):
            return context.run(_adopted_call, child)
        PyContext_Enter(context)
        try:
            made = self._made is not None and (
                asgiref_fast_context_vars(context) == <PyObject*>self._made
            )
            _adopt()
            # What restore() will find if the call changes nothing.
            self._adopted = <object>asgiref_fast_context_vars(context) if made else None
            return child()
        finally:
            PyContext_Exit(context)

    def restore(self):
        cdef PyObject* now
        cdef PyObject* current
        context = self._context
        if PyContext_CheckExact(context) and self._adopted is not None:
            now = asgiref_fast_context_vars(context)
            current = _current_vars()
            # The call changed nothing but OWNER, and neither did the caller:
            # the walk would copy nothing.
            if now == <PyObject*>self._adopted and current == <PyObject*>self._made:
                _adopt()
                return
        _restore(context)
