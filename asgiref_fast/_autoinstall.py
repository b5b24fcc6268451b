"""Imported by asgiref_fast.pth at interpreter start-up when ASGIREF_FAST is
set: switches asgiref_fast on for when something imports asgiref.

Every interpreter started with the variable pays for this module, including
the many that never import asgiref (manage.py commands, Celery workers,
multiprocessing helpers). So it only puts a finder in front of the others,
and imports nothing not already loaded at start-up; the finder installs
asgiref_fast (``install()``) when ``asgiref`` is first imported.

A failure must not stop the interpreter from starting, nor the import of
asgiref, so it is reported in one line on stderr and kept in ``ERROR`` for
``python -m asgiref_fast doctor``.
"""

import sys

from ._env import switch

TYPE_CHECKING = False
if TYPE_CHECKING:  # not imported at run time: they cost a start-up
    import importlib.machinery
    import types
    from collections.abc import Sequence

ERROR: "Exception | None" = None
# Whether ASGIREF_FAST switched it on (the finder below may not have fired yet).
ON = False


def _asgiref_loaded() -> "list[str]":
    return sorted(name for name in sys.modules if name.partition(".")[0] == "asgiref")


def _fail(exc: Exception) -> None:
    global ERROR
    ERROR = exc
    loaded = _asgiref_loaded()
    why = f"asgiref was imported before it ({', '.join(loaded)})" if loaded else f"{type(exc).__name__}: {exc}"
    print(f"asgiref_fast: ASGIREF_FAST is set but asgiref_fast is not in effect: {why}", file=sys.stderr)


class _OnFirstImport:
    """First on sys.meta_path: when asgiref is first imported, asks
    asgiref_fast to stand in for it, and hands the import to its finder.
    Inert from then on, but left in place: taking it off would shift the
    finders after it under another thread's import that is going through
    them."""

    fired = False

    def find_spec(
        self, fullname: str, path: "Sequence[str] | None" = None, target: "types.ModuleType | None" = None
    ) -> "importlib.machinery.ModuleSpec | None":
        if self.fired or fullname.partition(".")[0] != "asgiref":
            return None
        # The first import of asgiref holds its module lock: another thread
        # importing it waits, and then finds it imported.
        self.fired = True
        try:
            from ._install import install, stand_in

            install()
        except Exception as exc:  # upstream asgiref loads instead
            _fail(exc)
            return None
        finder = stand_in()
        return finder.find_spec(fullname, path, target) if finder is not None else None


def _arm() -> None:
    global ON
    if not switch("ASGIREF_FAST"):
        return
    ON = True
    if _asgiref_loaded():  # by a .pth file read before ours
        _fail(RuntimeError("asgiref was imported before the ASGIREF_FAST start-up hook ran"))
        return
    sys.meta_path.insert(0, _OnFirstImport())


_arm()
