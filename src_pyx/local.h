/* The C of local.pyx (declared there). */

#ifndef ASGIREF_FAST_LOCAL_H
#define ASGIREF_FAST_LOCAL_H

#include <Python.h>

/* Make t(...) go through tp_new: a type's vectorcall (Cython sets one) would
   bypass it. */
static void asgiref_fast_set_new(PyTypeObject *t, newfunc new_) {
    t->tp_new = new_;
    t->tp_vectorcall = NULL;
    PyType_Modified(t);
}

#endif /* ASGIREF_FAST_LOCAL_H */
