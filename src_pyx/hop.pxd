cimport cython

from spin cimport asf_waiter


cdef class Inbox:
    cdef object _loop_ref  # weak: the inbox lives in a dict keyed weakly by its loop
    cdef cython.pymutex _lock
    cdef list _ready
    cdef object _bell  # an asgiref_fast._doorbell.Bell, or None
    cdef int _bell_fd  # its write end, rung from C; -1 once closed
    cdef int _bell_answer_fd  # its read end, answered from C; -1 once closed
    cdef bint _closed
    # Bumped (atomically, under _lock) by every delivery: what the loop
    # watches while it spins in select (see _SpinningSelect).
    cdef long _deliveries
    # Calls made for this loop whose outcome has not been settled, nor will
    # be (cancelled, dropped); changed atomically, from any thread.
    cdef long _outstanding
    cdef asf_waiter _waiter  # the loop's spinning record
    cdef object __weakref__

    cpdef deliver(self, object call)
    cdef object _take_bell(self)


cdef class Call:
    cdef object _fn
    cdef Inbox _inbox
    cdef public object future
    cdef public object settled
    cdef bint _ok
    cdef object _value
    # 1 until run or cancel() claims it, atomically; see claim() in hop.pyx.
    cdef long _ticket
    # 1 while the call counts in its inbox's _outstanding; claimed like _ticket.
    cdef long _counted

    cpdef settle(self)
    cdef void _uncount(self) noexcept
