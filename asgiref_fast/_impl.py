"""Picks the compiled twins of the hot paths, or their pure-Python twins, once.

The compiled twins (``asgiref_fast._cy``, built from ``src_pyx/``) are used
unless ``ASGIREF_FAST_NO_EXTENSIONS`` is on or they fail to import;
``IMPORT_ERROR`` keeps the reason in the latter case, which is logged once at
INFO (logger ``asgiref_fast``) unless ``ASGIREF_FAST_REQUIRE_COMPILED`` is on.
``COMPILED`` tells which set is in use.
"""

from ._env import switch

IMPORT_ERROR: "ImportError | None" = None

if switch("ASGIREF_FAST_NO_EXTENSIONS"):
    COMPILED = False
else:
    try:
        # All four or none: the twins of one set work together.
        from ._cy import context as _context
        from ._cy import hop as _hop
        from ._cy import local as _local
        from ._cy import workqueue as _workqueue
    except ImportError as exc:
        IMPORT_ERROR = exc
        COMPILED = False
        if not switch("ASGIREF_FAST_REQUIRE_COMPILED"):
            # Built without a compiler, say: it works, slower. Tell where
            # users look (their logs), without failing.
            import logging

            logging.getLogger("asgiref_fast").info(
                "asgiref_fast runs its pure-Python twins, slower than the compiled ones, which failed "
                "to import (%s); `python -m asgiref_fast doctor` tells more", exc)
    else:
        COMPILED = True

if not COMPILED:
    from ._pure import context as _context  # type: ignore[no-redef]  # the API of _cy/context.pyi
    from ._pure import hop as _hop  # type: ignore[no-redef]  # the API of _cy/hop.pyi
    from ._pure import local as _local  # type: ignore[no-redef]  # the API of _cy/local.pyi
    from ._pure import workqueue as _workqueue  # type: ignore[no-redef]  # the API of _cy/workqueue.pyi

OWNER = _context.OWNER
ContextCarrier = _context.ContextCarrier
adopt_context = _context.adopt_context
restore_context = _context.restore_context
Call = _hop.Call
inbox_for = _hop.inbox_for
find_inbox = _hop.find_inbox
bind_router = _hop.bind
route = _hop.route
send = _hop.send
Local = _local.Local
_DefaultLocal = _local._DefaultLocal
_Storage = _local._Storage
_ThreadCriticalLocal = _local._ThreadCriticalLocal
peek = _local.peek
WorkQueue = _workqueue.WorkQueue
configure_spinning = _workqueue.configure_spinning
spinning_report = _workqueue.spinning_report
