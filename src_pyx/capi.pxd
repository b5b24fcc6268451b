# C declarations shared by the compiled twins (declarations only: cimporting
# this file imports nothing at run time).

from cpython.object cimport PyObject, PyTypeObject


cdef extern from "Python.h":
    # Borrowed reference or NULL, never an exception: the type-attribute
    # lookup that generic getattr starts with.
    PyObject* _PyType_Lookup(PyTypeObject* type, object name)

    # New reference in *value (NULL when unset and no default).
    int PyContextVar_Get(object var, PyObject* default_value, PyObject** value) except -1
    object PyContextVar_Set(object var, object value)
    object PyContext_CopyCurrent()
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    bint PyContext_CheckExact(object obj)

    int Py_MakePendingCalls() except -1


cdef extern from "pythread.h":
    ctypedef void* PyThread_type_lock
    ctypedef long long PY_TIMEOUT_T
    ctypedef enum PyLockStatus:
        PY_LOCK_FAILURE
        PY_LOCK_ACQUIRED
        PY_LOCK_INTR

    unsigned long PyThread_get_thread_ident() nogil
    PyThread_type_lock PyThread_allocate_lock()
    void PyThread_free_lock(PyThread_type_lock lock)
    PyLockStatus PyThread_acquire_lock_timed(
        PyThread_type_lock lock, PY_TIMEOUT_T microseconds, int intr_flag) nogil
    void PyThread_release_lock(PyThread_type_lock lock) nogil


cdef extern from "capi.h":
    int dict_get "asgiref_fast_dict_get" (object d, object key, PyObject** result) except -1
    # Borrowed; ctx must be an exact contextvars.Context.
    PyObject* asgiref_fast_context_vars(object ctx)
    PyObject* asgiref_fast_context_prev(object ctx)
