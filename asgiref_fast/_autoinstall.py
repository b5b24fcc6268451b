"""Imported by asgiref_fast.pth at interpreter start-up when ASGIREF_FAST is
set to a true value: switches asgiref_fast on before anything imports asgiref.

A failure must not stop the interpreter from starting, so it is reported in
one line on stderr and kept in ``ERROR`` for ``python -m asgiref_fast doctor``.
"""

import sys

from ._install import install

ERROR: "Exception | None" = None

try:
    install()
except Exception as exc:
    ERROR = exc
    # Possible if a .pth file read before ours imported asgiref.
    loaded = sorted(name for name in sys.modules if name.partition(".")[0] == "asgiref")
    why = f"asgiref was imported before it ({', '.join(loaded)})" if loaded else f"{type(exc).__name__}: {exc}"
    print(f"asgiref_fast: ASGIREF_FAST is set but asgiref_fast is not in effect: {why}", file=sys.stderr)
