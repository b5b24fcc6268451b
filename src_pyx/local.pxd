cdef class _Storage:
    cdef public object thread_id
    cdef public object data


cdef class Local:
    pass


cdef class _DefaultLocal(Local):
    cdef readonly object _data  # the backing ContextVar
    cdef readonly object _lock  # asgiref's name: an RLock, never taken here


cdef class _ThreadCriticalLocal(Local):
    cdef readonly object _storage  # a threading.local, for sync code (asgiref's name)
    cdef readonly object _task_vars  # a threading.local holding .var, for async code
