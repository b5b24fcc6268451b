# Comparing an object with a thread identity as ``value == ident`` (or ``!=``)
# would in Python, without making an int in the common case.

from cpython.long cimport PyLong_CheckExact, PyLong_FromUnsignedLong
from cpython.object cimport PyObject_RichCompareBool, Py_EQ
from cpython.exc cimport PyErr_Clear, PyErr_Occurred


cdef extern from "Python.h":
    unsigned long _as_ulong "PyLong_AsUnsignedLong" (object value)


cdef inline bint compare_ident(object value, unsigned long ident, int op) except -1:
    """``value == ident`` for op Py_EQ, ``value != ident`` for Py_NE."""
    cdef unsigned long number
    if PyLong_CheckExact(value):
        number = _as_ulong(value)
        if number == <unsigned long>-1 and PyErr_Occurred():
            PyErr_Clear()  # negative or too large: no thread has that identity
            return op != Py_EQ
        return (number == ident) == (op == Py_EQ)
    return PyObject_RichCompareBool(value, PyLong_FromUnsignedLong(ident), op)
