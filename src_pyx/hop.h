/* The C of hop.pyx (declared there): a call's ticket, and a doorbell's ring,
   answer and close (see asgiref_fast/_doorbell.py). */

#ifndef ASGIREF_FAST_HOP_H
#define ASGIREF_FAST_HOP_H

/* Sets *ticket to 0 and returns what it held, in one atomic step: of the
   threads racing for a ticket, exactly one sees 1, with or without a GIL. */
#if defined(_MSC_VER)
#include <intrin.h>
#define asgiref_fast_claim(ticket) _InterlockedExchange((volatile long *)(ticket), 0)
#else
#define asgiref_fast_claim(ticket) __atomic_exchange_n((ticket), 0L, __ATOMIC_ACQ_REL)
#endif

#if defined(_WIN32)
/* Windows loops get no bell (select() there watches sockets only), so none
   is ever rung, answered or closed. */
static int asgiref_fast_ring(int fd) { (void)fd; return -1; }
static int asgiref_fast_answer(int fd) { (void)fd; return -1; }
static int asgiref_fast_close_fd(int fd) { (void)fd; return -1; }
#else
#include <stdint.h>
#include <unistd.h>

/* One ring: 8 bytes, an eventfd's increment. A failure can only be a full
   pipe: the loop is waking anyway. */
static int asgiref_fast_ring(int fd) {
    static const uint64_t one = 1;
    return (int)write(fd, &one, sizeof one);
}

/* An eventfd's read takes every ring at once; a pipe's, up to 512. A failure
   can only be "nothing to read": an earlier answer took it. */
static int asgiref_fast_answer(int fd) {
    char rings[4096];
    return (int)read(fd, rings, sizeof rings);
}

/* Closing from C, where no Python code may run (an inbox's __dealloc__). */
static int asgiref_fast_close_fd(int fd) { return close(fd); }
#endif

#endif /* ASGIREF_FAST_HOP_H */
