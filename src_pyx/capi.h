/* The C behind capi.pxd's declarations, shared by the compiled twins. */

#ifndef ASGIREF_FAST_CAPI_H
#define ASGIREF_FAST_CAPI_H

#include <Python.h>

/* dict[key] as a new reference in *result: 1 found, 0 missing, -1 error.
   Safe against a concurrent writer on free-threaded builds (3.13+). Before
   3.13 the borrowed reference is taken under the GIL, which every build
   there has. */
static inline int asgiref_fast_dict_get(PyObject *d, PyObject *key, PyObject **result) {
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

/* The head of CPython's PyContext (Include/internal/pycore_context.h),
   unchanged from 3.7 through 3.15: only ctx_vars, the context's immutable
   HAMT of variables, is read. context.pyx checks at import that this reads
   what the interpreter it runs in holds, or refuses to load. */
typedef struct {
    PyObject_HEAD
    PyObject *ctx_prev;
    PyObject *ctx_vars;
} asgiref_fast_PyContextHead;

#define asgiref_fast_context_vars(ctx) \
    (((asgiref_fast_PyContextHead *)(ctx))->ctx_vars)
/* The field before: what a layout moved by one pointer would make ctx_vars
   read (context.pyx's import check, under its test hook). */
#define asgiref_fast_context_prev(ctx) \
    (((asgiref_fast_PyContextHead *)(ctx))->ctx_prev)

#endif /* ASGIREF_FAST_CAPI_H */
