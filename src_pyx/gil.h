/* Where CPython keeps "the GIL is held": a thread woken with work (spin.h)
   watches it, so that it asks for the GIL only once whoever held it when it
   was woken has let go. Asking before would put it to sleep on the GIL, and
   the hand-off would cost a second wake-up.

   This reads a private field of CPython (struct _gil_runtime_state's
   `locked`, Include/internal/pycore_gil.h): in _PyRuntime on 3.11, behind
   the interpreter's ceval.gil from 3.12 on (gil.c). The layout is that of
   the headers the module was compiled against, and a module is built for one
   CPython minor version; the module checks at import that the flag reads
   "held" while it holds the GIL. Where the internal headers are missing or
   do not compile, there is no flag (NULL, gil.c). It is only read, and only
   to decide how long to spin: were it wrong, a hand-off would merely be
   slower.
   Free-threaded builds have no GIL to wait for. */

#ifndef ASGIREF_FAST_GIL_H
#define ASGIREF_FAST_GIL_H

/* ASGIREF_FAST_NO_GIL_FLAG: built without CPython's internal headers (setup.py
   defines it when building with them fails). */
#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030B0000 && !defined(_MSC_VER) \
    && !defined(ASGIREF_FAST_NO_GIL_FLAG)
#define ASGIREF_FAST_SEES_GIL 1
#else
#define ASGIREF_FAST_SEES_GIL 0
#endif

/* The GIL's `locked` flag of the calling thread's interpreter, or NULL
   where there is none to see. Call holding the GIL. */
int *asgiref_fast_gil_locked_flag(void);

#endif /* ASGIREF_FAST_GIL_H */
