cdef class ContextCarrier:
    cdef object _context
    # The context's variables (its HAMT) when the carrier was made, and just
    # after the worker adopted it; None when unknown. Strong references, so
    # an identity match can never be a recycled address.
    cdef object _made
    cdef object _adopted
