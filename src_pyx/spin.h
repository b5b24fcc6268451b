/* Brief spinning before sleeping, shared by the compiled twins (declared by
   spin.pxd; the state they share lives in workqueue.pyx).

   On a VM, waking a sleeping thread costs tens of microseconds each way, more
   than a whole hop's Python work. So a thread about to sleep on work from
   another thread (a lane on its queue, a loop on its inbox) may first watch a
   counter for a short while, without the GIL. Seeing it move (or woken from
   sleep), it also waits briefly for the GIL to be free (gil.h): asking for it
   while the signaller still holds it would put it to sleep on the GIL, and
   the hand-off would cost the very wake-up we spun to avoid.

   A spin only pays where its core is idle: the signaller runs meanwhile on
   another core, and nobody else wanted this one. On a busy machine (workers =
   cores, a neighbour's load) it takes the core from a thread that would have
   done work there, the signaller included. So a thread spins only when the
   machine shows a core to spare: on Linux, the kernel's count of runnable
   threads machine-wide (/proc/loadavg, sampled at most every
   ASF_PROBE_EVERY_NS) is at most the number of cores, the would-be spinner
   counted. Where there is no such count, nobody spins.

   The fields are read and written with atomic operations, but for
   gil_locked and cores, set at import before any thread can wait here:
   nothing here leans on the GIL. At most ``max_spinners`` threads spin at
   once, a spin never outlasts its budget, and a waiter whose spins find
   nothing soon stops spinning. */

#ifndef ASGIREF_FAST_SPIN_H
#define ASGIREF_FAST_SPIN_H

/* The fields' atomic operations: the compiler's. */
#if defined(_MSC_VER)
/* Interlocked intrinsics, as hop.pyx's ticket claim: each atomic and a full
   barrier. They take `long` (32 bits on Windows, as the fields are), and a
   64-bit integer for asf_store_ll (x64 and ARM64; the Windows wheels are
   AMD64). Never compiled on this project's Linux CI, hence one intrinsic
   per operation. An OR with 0 reads without changing. */
#include <intrin.h>
#define asf_load(p) _InterlockedOr((volatile long *)(p), 0)
#define asf_store(p, v) ((void)_InterlockedExchange((volatile long *)(p), (v)))
#define asf_store_ll(p, v) ((void)_InterlockedExchange64((volatile __int64 *)(p), (v)))
static inline long asf_add_interlocked(volatile long *p, long v) {
    return _InterlockedExchangeAdd(p, v) + v;  /* the new value, as __atomic_add_fetch */
}
#define asf_add(p, v) asf_add_interlocked((volatile long *)(p), (v))
#elif defined(__GNUC__) || defined(__clang__)
#define asf_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define asf_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define asf_store_ll(p, v) asf_store((p), (v))
#define asf_add(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define asf_cas(p, expected, v) \
    __atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#else
/* No atomics known here, so never spin (below): the counters then only feed
   decisions to spin, all of them "no", and plain (racy) updates are
   harmless, GIL or none. */
#define asf_load(p) (*(p))
#define asf_store(p, v) (*(p) = (v))
#define asf_store_ll(p, v) asf_store((p), (v))
#define asf_add(p, v) (*(p) += (v))
#endif

#if (defined(__GNUC__) || defined(__clang__)) && !defined(_MSC_VER) && defined(__linux__)
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#define ASGIREF_FAST_CAN_SPIN 1
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
/* No machine-wide count of runnable threads (not Linux): never spin. */
#define ASGIREF_FAST_CAN_SPIN 0
#define asf_pause() ((void)0)
static inline long long asf_now_ns(void) { return 0; }
#endif

typedef struct {
    int *gil_locked;     /* the GIL's "held" flag (gil.h), or NULL: no hand-off waits */
    long spinners;       /* threads spinning now */
    long max_spinners;   /* 0: never spin */
    long spin_ns;        /* how long to watch for a signal */
    long handoff_ns;     /* how long to wait, after it, for the GIL's release */
    long busy;           /* queue consumers running an item they took */
    /* The machine-wide probe: */
    long probe_fd;       /* /proc/loadavg, or -1: no evidence, no spinning */
    long cores;          /* CPUs online machine-wide */
    long long probed_ns; /* when `runnable` was read */
    long runnable;       /* threads runnable machine-wide then, or -1 */
    /* What waiters decided, for doctor and the tests (counts since start): */
    long spins;          /* spins granted */
    long spins_moved;    /* ... that saw their signal */
    long refused_busy;   /* spins refused: no core to spare machine-wide */
    long handoffs;       /* hand-off waits */
    long handoffs_late;  /* ... that gave up before the signaller let go */
} asf_spin_state;

/* With more consumers than this busy, others are likely waiting for the
   GIL, and a spinner would take the core they need to run on. */
#define ASF_MAX_BUSY 2

/* A reading of the probe is used for this long: a read costs about a
   microsecond, and load changes on the scale of scheduler ticks anyway. */
#define ASF_PROBE_EVERY_NS 200000LL

/* Opens the probe; -1 where there is none. */
static inline long asf_open_probe(void) {
#if ASGIREF_FAST_CAN_SPIN
    return (long)open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
#else
    return -1;
#endif
}

/* Threads runnable machine-wide now (the caller included), or -1. The fourth
   field of /proc/loadavg: "runnable/total". */
static inline long asf_read_runnable(long fd) {
#if ASGIREF_FAST_CAN_SPIN
    char text[128];
    ssize_t n;
    int fields = 0;
    long runnable = 0;
    char *p;
    if (fd < 0)
        return -1;
    n = pread((int)fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    for (p = text; *p && fields < 3; p++)
        if (*p == ' ')
            fields++;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++)
        runnable = 10 * runnable + (*p - '0');
    return runnable;
#else
    (void)fd;
    return -1;
#endif
}

/* Is a core idle machine-wide, for this thread to spin on? Reads the probe
   when the last reading is stale; one thread re-reads, others use the last
   reading meanwhile. Without the GIL or with it. */
static inline int asf_core_to_spare(asf_spin_state *s) {
#if ASGIREF_FAST_CAN_SPIN
    long long now, probed;
    long runnable;
    if (asf_load(&s->probe_fd) < 0)
        return 0;
    now = asf_now_ns();
    probed = asf_load(&s->probed_ns);
    if (now - probed >= ASF_PROBE_EVERY_NS && asf_cas(&s->probed_ns, &probed, now)) {
        runnable = asf_read_runnable(asf_load(&s->probe_fd));
        asf_store(&s->runnable, runnable);
    } else {
        runnable = asf_load(&s->runnable);
    }
    return runnable >= 0 && runnable <= asf_load(&s->cores);
#else
    (void)s;
    return 0;
#endif
}

/* Without the GIL, just signalled: wait (briefly) until the GIL is free, so
   that taking it does not mean sleeping on it. Only with a core to spare:
   otherwise the holder may need this very core to let go. */
static inline void asf_handoff(asf_spin_state *s) {
#if ASGIREF_FAST_CAN_SPIN
    long long budget, start;
    unsigned int i;
    int *held = s->gil_locked;
    if (held == NULL || __atomic_load_n(held, __ATOMIC_RELAXED) == 0)
        return;
    budget = asf_load(&s->handoff_ns);
    /* Short, and taking no slot: the holder must find one free to spin in
       once it lets go. */
    if (budget <= 0 || asf_load(&s->max_spinners) <= 0 || !asf_core_to_spare(s))
        return;
    asf_add(&s->handoffs, 1);
    start = asf_now_ns();
    for (i = 1; __atomic_load_n(held, __ATOMIC_RELAXED) != 0; i++) {
        asf_pause();
        if ((i & 31) == 0 && asf_now_ns() - start >= budget) {
            asf_add(&s->handoffs_late, 1);
            break;
        }
    }
#else
    (void)s;
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
static inline long long asf_spin_budget(asf_spin_state *s, asf_waiter *w, long long limit_ns) {
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
    if (budget <= 0 || asf_load(&s->max_spinners) <= 0 || asf_load(&s->busy) > ASF_MAX_BUSY)
        return 0;
    if (!asf_core_to_spare(s)) {
        asf_add(&s->refused_busy, 1);
        return 0;
    }
    if (asf_add(&s->spinners, 1) > asf_load(&s->max_spinners)) {
        asf_add(&s->spinners, -1);
        return 0;
    }
    asf_add(&s->spins, 1);
    return budget;
}

/* Without the GIL, with a budget from asf_spin_budget: watch *word
   until it differs from seen. 1 if it moved (and the GIL is free, or was
   held too long), 0 if the wait must go on asleep. */
static inline int asf_spin(asf_spin_state *s, asf_waiter *w, long *word, long seen, long long budget) {
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
    asf_add(&s->spins_moved, 1);
    w->penalty = 0;
    asf_handoff(s);
    return 1;
}

#endif /* ASGIREF_FAST_SPIN_H */
