/* See gil.h. Its own translation unit, compiled with CPython's internal
   headers (which must come before Python.h): the Cython modules never see
   them. Where those headers are missing, this builds without them and
   returns NULL; where they are there but differ (a renamed field, ...), the
   build fails and setup.py builds it again with ASGIREF_FAST_NO_GIL_FLAG
   defined, which also returns NULL. */

#define Py_BUILD_CORE_MODULE 1
#include "Python.h"
#include "gil.h"

#if PY_VERSION_HEX >= 0x030C0000
#define ASGIREF_FAST_GIL_HOST "internal/pycore_interp.h"
#else
#define ASGIREF_FAST_GIL_HOST "internal/pycore_runtime.h"
#endif

#if ASGIREF_FAST_SEES_GIL && defined(__has_include)
#if !__has_include(ASGIREF_FAST_GIL_HOST) || !__has_include("internal/pycore_gil.h")
#undef ASGIREF_FAST_SEES_GIL
#define ASGIREF_FAST_SEES_GIL 0
#endif
#endif

#if ASGIREF_FAST_SEES_GIL
#ifdef ASGIREF_FAST_TEST_BAD_GIL_HEADERS  /* tests/test_build.py: headers that differ */
#error "internal headers that do not compile (ASGIREF_FAST_TEST_BAD_GIL_HEADERS)"
#endif
#include ASGIREF_FAST_GIL_HOST
#include "internal/pycore_gil.h"
#endif

int *asgiref_fast_gil_locked_flag(void) {
#if ASGIREF_FAST_SEES_GIL && PY_VERSION_HEX >= 0x030C0000
    struct _gil_runtime_state *gil = PyInterpreterState_Get()->ceval.gil;
    return gil == NULL ? NULL : (int *)&gil->locked;
#elif ASGIREF_FAST_SEES_GIL
    return (int *)&_PyRuntime.ceval.gil.locked;
#else
    return NULL;
#endif
}
