cimport cython

from capi cimport PyThread_type_lock


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

    cdef object _take(self)
