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


cdef extern from *:
    """
    /* dict[key] as a new reference in *result: 1 found, 0 missing, -1 error.
       Safe against a concurrent writer on free-threaded builds (3.13+).
       Before 3.13 the borrowed reference is taken under the GIL, which
       every build there has. */
    static CYTHON_INLINE int asgiref_fast_dict_get(PyObject *d, PyObject *key, PyObject **result) {
    #if PY_VERSION_HEX >= 0x030D0000
        return PyDict_GetItemRef(d, key, result);
    #else
        *result = PyDict_GetItemWithError(d, key);
        if (*result != NULL) {
            Py_INCREF(*result);
            return 1;
        }
        return PyErr_Occurred() ? -1 : 0;
    #endif
    }
    """
    int dict_get "asgiref_fast_dict_get" (object d, object key, PyObject** result) except -1


cdef extern from *:
    """
    /* The head of CPython's PyContext (Include/internal/pycore_context.h),
       unchanged from 3.7 through 3.15: only ctx_vars, the context's immutable
       HAMT of variables, is read. context.pyx checks at import that this
       reads what the interpreter it runs in holds, or refuses to load. */
    typedef struct {
        PyObject_HEAD
        PyObject *ctx_prev;
        PyObject *ctx_vars;
    } asgiref_fast_PyContextHead;

    #define asgiref_fast_context_vars(ctx) \\
        (((asgiref_fast_PyContextHead *)(ctx))->ctx_vars)
    /* The field before: what a layout moved by one pointer would make
       ctx_vars read (context.pyx's import check, under its test hook). */
    #define asgiref_fast_context_prev(ctx) \\
        (((asgiref_fast_PyContextHead *)(ctx))->ctx_prev)
    """
    # Borrowed; ctx must be an exact contextvars.Context.
    PyObject* asgiref_fast_context_vars(object ctx)
    PyObject* asgiref_fast_context_prev(object ctx)
