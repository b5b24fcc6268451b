"""Picks the compiled twins of the hot paths, or their pure-Python twins, once.

The compiled twins (``asgiref_fast._cy``, built from ``src_pyx/``) are used
unless ``ASGIREF_FAST_NO_EXTENSIONS`` is on or they fail to import;
``IMPORT_ERROR`` keeps the reason in the latter case, which is logged once at
INFO (logger ``asgiref_fast``) unless ``ASGIREF_FAST_REQUIRE_COMPILED`` is on.
``COMPILED`` tells which set is in use. The chosen twins are this module's
``context``, ``hop``, ``local`` and ``workqueue``.
"""

from ._env import switch

__all__ = ["COMPILED", "IMPORT_ERROR", "context", "hop", "local", "workqueue"]

IMPORT_ERROR: "ImportError | None" = None

if switch("ASGIREF_FAST_NO_EXTENSIONS"):
    COMPILED = False
else:
    try:
        # All four or none: the twins of one set work together.
        from ._cy import context, hop, local, workqueue
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
    # The API of the stubs in _cy/*.pyi.
    from ._pure import context, hop, local, workqueue  # type: ignore[no-redef]
