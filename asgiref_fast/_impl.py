"""Picks the compiled twins of the hot paths, or their pure-Python twins, once.

The compiled twins are used unless ``ASGIREF_FAST_NO_EXTENSIONS`` is set to a
non-empty value other than ``0`` or they fail to import; ``IMPORT_ERROR``
keeps the reason in the latter case.
"""

import os

IMPORT_ERROR: "ImportError | None" = None

if os.environ.get("ASGIREF_FAST_NO_EXTENSIONS", "") not in ("", "0"):
    COMPILED = False
else:
    try:
        # Only the compiled twins land here; see src_pyx/.
        from . import _cy  # type: ignore[attr-defined]  # noqa: F401
    except ImportError as exc:
        IMPORT_ERROR = exc
        COMPILED = False
    else:
        COMPILED = True

if COMPILED:  # pragma: no cover - wired up with the Cython twins
    from ._cy import (  # type: ignore[attr-defined]  # noqa: F401
        Call,
        ContextCarrier,
        Local,
        WorkQueue,
        _DefaultLocal,
        _Storage,
        _ThreadCriticalLocal,
        adopt_context,
        inbox_for,
        restore_context,
    )
else:
    from ._pure.context import ContextCarrier, adopt_context, restore_context  # noqa: F401
    from ._pure.hop import Call, inbox_for  # noqa: F401
    from ._pure.local import (  # noqa: F401
        Local,
        _DefaultLocal,
        _Storage,
        _ThreadCriticalLocal,
    )
    from ._pure.workqueue import WorkQueue  # noqa: F401
