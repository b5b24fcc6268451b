# Brief spinning before sleeping, shared by the compiled twins (declarations
# and static inline C only; the state they work on lives in workqueue.pyx).
#
# On a VM, waking a sleeping thread costs tens of microseconds each way, more
# than a whole hop's Python work. So a thread about to sleep on work from
# another thread (a lane on its queue, a loop on its inbox) first watches a
# counter for a short while, without the GIL. Seeing it move, it also waits
# (briefly) for the signalling thread to let go of the GIL: asking for it at
# once would put it to sleep on the GIL instead, and the hand-off would cost
# the very wake-up we spun to avoid. Every wait of ours announces the GIL's
# release by bumping an epoch, after the release.
#
# All fields are read and written with atomic operations: nothing here leans
# on the GIL. At most ``max_spinners`` threads spin at once (about one per
# core, leaving one for the thread holding the GIL), a spin never outlasts
# its budget, and a waiter whose spins find nothing soon stops spinning.

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #include <time.h>
    #define ASGIREF_FAST_CAN_SPIN 1
    #define asf_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
    #define asf_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
    #define asf_add(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
    #if defined(__x86_64__) || defined(__i386__)
    #define asf_pause() __builtin_ia32_pause()
    #elif defined(__aarch64__)
    #define asf_pause() __asm__ __volatile__("yield")
    #else
    #define asf_pause() ((void)0)
    #endif
    static inline long long asf_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    #else
    /* No atomics we rely on (MSVC): never spin; only the epoch is kept. */
    #define ASGIREF_FAST_CAN_SPIN 0
    #define asf_load(p) (*(volatile long *)(p))
    #define asf_store(p, v) (*(volatile long *)(p) = (v))
    #define asf_add(p, v) (*(volatile long *)(p) += (v))
    #define asf_pause() ((void)0)
    static long long asf_now_ns(void) { return 0; }
    #endif

    typedef struct {
        long epoch;          /* bumped each time one of our waits releases the GIL */
        long spinners;       /* threads spinning now */
        long max_spinners;   /* 0: never spin */
        long spin_ns;        /* how long to watch for a signal */
        long handoff_ns;     /* how long to wait, after it, for the GIL's release */
        long busy;           /* queue consumers running an item they took */
    } asf_spin_state;

    /* With more consumers than this busy, others are likely waiting for the
       GIL, and a spinner would take the core they need to run on. */
    #define ASF_MAX_BUSY 2

    /* Call right after releasing the GIL to wait. */
    static inline void asf_released(asf_spin_state *s) {
        asf_add(&s->epoch, 1);
    }

    /* Call, holding the GIL, as you signal a waiter: notes the epoch, for
       asf_handoff. Before the signal itself (the store releases). */
    static inline void asf_signalling(asf_spin_state *s, long *signal_epoch) {
        asf_store(signal_epoch, asf_load(&s->epoch));
    }

    /* Without the GIL, just signalled: wait (briefly) until the signaller,
       which held the GIL when it signalled, says it let go; asking for the
       GIL before would put this thread to sleep on it. */
    static inline void asf_handoff(asf_spin_state *s, long *signal_epoch) {
    #ifndef Py_GIL_DISABLED
        long long budget, start;
        unsigned int i;
        if (!ASGIREF_FAST_CAN_SPIN || asf_load(&s->epoch) != asf_load(signal_epoch))
            return;
        budget = asf_load(&s->handoff_ns);
        if (budget <= 0)
            return;
        /* Short, and taking no slot: the signaller must find one free to
           spin in once it lets go. */
        if (asf_load(&s->max_spinners) <= 0)
            return;
        start = asf_now_ns();
        for (i = 1; asf_load(&s->epoch) == asf_load(signal_epoch); i++) {
            asf_pause();
            if ((i & 31) == 0 && asf_now_ns() - start >= budget)
                break;
        }
    #endif
    }

    /* One waiting thread's record (touched by that thread only): spins
       that find nothing make it skip the next ones, for exponentially
       longer, so a waiter whose work comes late stops burning a core. */
    typedef struct {
        unsigned int skip;     /* waits left to go straight to sleep */
        unsigned int penalty;  /* the next skip, after another fruitless spin */
    } asf_waiter;

    /* Before releasing the GIL to wait (releasing it costs a waiter of the
       GIL a wake-up, so only do so to spin): how long to spin, at most
       limit_ns if that is >= 0; 0 if not at all. A spin so granted holds a
       slot until asf_spin ends it. */
    static long long asf_spin_budget(asf_spin_state *s, asf_waiter *w, long long limit_ns) {
        long long budget;
        if (!ASGIREF_FAST_CAN_SPIN)
            return 0;
        if (w->skip > 0) {
            w->skip--;
            return 0;
        }
        budget = asf_load(&s->spin_ns);
        if (limit_ns >= 0 && limit_ns < budget)
            budget = limit_ns;
        if (budget <= 0 || asf_load(&s->busy) > ASF_MAX_BUSY)
            return 0;
        if (asf_add(&s->spinners, 1) > asf_load(&s->max_spinners)) {
            asf_add(&s->spinners, -1);
            return 0;
        }
        return budget;
    }

    /* Without the GIL, with a budget from asf_spin_budget: watch *word
       until it differs from seen. 1 if it moved (and the signaller let go of
       the GIL, or took too long to), 0 if the wait must go on asleep. */
    static int asf_spin(asf_spin_state *s, asf_waiter *w, long *word, long seen, long long budget,
                        long *signal_epoch) {
        long long start;
        unsigned int i;
        int moved = 0;
        start = asf_now_ns();
        for (i = 1;; i++) {
            if (asf_load(word) != seen) {
                moved = 1;
                break;
            }
            asf_pause();
            if ((i & 31) == 0 && asf_now_ns() - start >= budget)
                break;
        }
        /* Give up the slot at once: the thread that signalled us is about
           to wait, and may want to spin in it. */
        asf_add(&s->spinners, -1);
        if (!moved) {
            w->skip = w->penalty;
            w->penalty = w->penalty ? (w->penalty < 64 ? 2 * w->penalty : 64) : 1;
            return 0;
        }
        w->penalty = 0;
        asf_handoff(s, signal_epoch);
        return 1;
    }
    """
    ctypedef struct asf_spin_state:
        long epoch
        long spinners
        long max_spinners
        long spin_ns
        long handoff_ns
        long busy

    ctypedef struct asf_waiter:
        unsigned int skip
        unsigned int penalty

    long long asf_now_ns() nogil
    long asf_load(long* p) nogil
    void asf_store(long* p, long v) nogil
    long asf_add(long* p, long v) nogil
    void asf_released(asf_spin_state* s) nogil
    void asf_signalling(asf_spin_state* s, long* signal_epoch) nogil
    void asf_handoff(asf_spin_state* s, long* signal_epoch) nogil
    long long asf_spin_budget(asf_spin_state* s, asf_waiter* w, long long limit_ns) nogil
    bint asf_spin(asf_spin_state* s, asf_waiter* w, long* word, long seen, long long budget,
                  long* signal_epoch) nogil
