# Declarations of spin.h: brief spinning before sleeping, where the machine
# has a core to spare (see there), and of gil.h, which tells spinning whether
# the GIL is free. The shared state lives in workqueue.pyx.

cdef extern from "gil.h":
    int* asf_gil_locked_flag "asgiref_fast_gil_locked_flag" ()

cdef extern from "spin.h":
    ctypedef struct asf_spin_state:
        int* gil_locked
        long spinners
        long max_spinners
        long spin_ns
        long handoff_ns
        long busy
        long probe_fd
        long cores
        long long probed_ns
        long runnable
        long spins
        long spins_moved
        long refused_busy
        long handoffs
        long handoffs_late

    ctypedef struct asf_waiter:
        unsigned int skip
        unsigned int penalty

    long long asf_now_ns() nogil
    long asf_load(long* p) nogil
    void asf_store(long* p, long v) nogil
    void asf_store_ll(long long* p, long long v) nogil
    long asf_add(long* p, long v) nogil
    long asf_open_probe() nogil
    long asf_read_runnable(long fd) nogil
    bint asf_core_to_spare(asf_spin_state* s) nogil
    void asf_handoff(asf_spin_state* s) nogil
    long long asf_spin_budget(asf_spin_state* s, asf_waiter* w, long long limit_ns) nogil
    bint asf_spin(asf_spin_state* s, asf_waiter* w, long* word, long seen, long long budget) nogil
