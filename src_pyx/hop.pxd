cimport cython


cdef class Inbox:
    cdef object _loop_ref  # weak: the inbox lives in a dict keyed weakly by its loop
    cdef cython.pymutex _lock
    cdef list _ready
    cdef object __weakref__

    cpdef deliver(self, object call)


cdef class Call:
    cdef object _fn
    cdef Inbox _inbox
    cdef public object future
    cdef public object settled
    cdef bint _ok
    cdef object _value
    # 1 until run or cancel() claims it, atomically; see claim() in hop.pyx.
    cdef long _ticket

    cpdef settle(self)
