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
    asgiref_fast_context_prev,
    asgiref_fast_context_vars,
)
from ident cimport compare_ident

import contextvars
import gc
import os
import sys

# One OWNER per process, whichever twins are in use.
from asgiref_fast._pure.context import OWNER

cdef object _OWNER = OWNER
cdef object _MISSING = object()


# -- The layout check ----------------------------------------------------------
# ctx_vars is a private field of CPython's contexts (capi.pxd), laid out as
# the headers this module was compiled with say. Before anything reads it,
# check on the interpreter at hand that it reads what a context holds, by
# what the public API shows: otherwise refuse to import, and asgiref_fast
# falls back to the pure twins (asgiref_fast._impl), keeping the reason.


cdef size_t _vars_address(object context, bint misread):
    # misread: the field before ctx_vars, as a layout moved by a pointer would.
    if misread:
        return <size_t>asgiref_fast_context_prev(context)
    return <size_t>asgiref_fast_context_vars(context)


def _layout_problem():
    """What is wrong with reading this interpreter's contexts as capi.pxd
    does, or None. ASGIREF_FAST_TEST_MISREAD_CONTEXT=1 (a test hook) checks
    the wrong field instead."""
    cdef bint misread = os.environ.get("ASGIREF_FAST_TEST_MISREAD_CONTEXT", "") not in ("", "0")
    var = contextvars.ContextVar("asgiref_fast.layout_check")
    marker = object()
    context = contextvars.Context()
    context.run(var.set, marker)
    before = _vars_address(context, misread)
    # The collector sees what a context holds: its variables are one of
    # those objects, and only such an object is ever dereferenced here.
    held = [o for o in gc.get_referents(context) if id(o) == before]
    if not held:
        return "ctx_vars is not any object the context holds"
    if held[0].get(var, None) is not marker:
        return "ctx_vars does not hold the variable set in the context"
    if _vars_address(context.copy(), misread) != before:
        return "a copy of the context does not share its ctx_vars"
    context.run(var.set, None)
    if _vars_address(context, misread) == before:
        return "setting a variable does not replace ctx_vars"
    return None


_problem = _layout_problem()
if _problem is not None:
    raise ImportError(
        f"asgiref_fast._cy.context cannot read the contexts of this CPython "
        f"({sys.version.split()[0]}) with the PyContext layout it was built with: {_problem}"
    )
del _problem


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
