/* See gil.h. Its own translation unit, compiled with CPython's internal
   headers (which must come before Python.h): the Cython modules never see
   them. */

#define Py_BUILD_CORE_MODULE 1
#include "Python.h"
#include "gil.h"

#if ASGIREF_FAST_SEES_GIL
#if PY_VERSION_HEX >= 0x030C0000
#include "internal/pycore_interp.h"
#else
#include "internal/pycore_runtime.h"
#endif
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
