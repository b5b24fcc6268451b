cimport cython

from capi cimport PyThread_type_lock
from spin cimport asf_spin_state, asf_waiter


cdef class WorkQueue:
    cdef cython.pymutex _lock  # guards every field below but _wakeup
    # Held while nobody has signalled the parked consumer: a binary semaphore
    # that is released only when _parked was set.
    cdef PyThread_type_lock _wakeup
    cdef list _items  # queued from index _head on; taken slots hold None
    cdef Py_ssize_t _head
    cdef bint _parked
    cdef bint _busy  # the consumer runs an item it popped
    cdef bint _closed
    # Bumped (atomically, under _lock) by every push and close: what a
    # spinning consumer watches without the lock.
    cdef long _signals
    cdef asf_waiter _waiter  # the consumer's spinning record

    cdef object _take(self)


# The spinning state the compiled twins share (see spin.h).
cdef asf_spin_state* spin_state() noexcept nogil
