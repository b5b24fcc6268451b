"""The implementations a benchmark can run against, side by side in one
process: upstream asgiref, and each twin of asgiref_fast.

The twin that ``asgiref_fast`` did not pick is loaded as a second copy of the
package under another name, with the chooser told which twin to take.
"""

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import asgiref_fast
from asgiref_fast._install import stand_in

MODULES = ("sync", "local", "current_thread_executor", "wsgi")
NAMES = ("upstream", "compiled", "pure")


def _api(name: str, package: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        name=name, package=package,
        **{m: importlib.import_module(f"{package}.{m}") for m in MODULES},
    )


def _copy(name: str, no_extensions: bool) -> str:
    if name in sys.modules:
        return name
    directory = Path(asgiref_fast.__file__).parent
    spec = importlib.util.spec_from_file_location(
        name, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    saved = os.environ.get("ASGIREF_FAST_NO_EXTENSIONS")
    os.environ["ASGIREF_FAST_NO_EXTENSIONS"] = "1" if no_extensions else ""
    try:
        spec.loader.exec_module(module)
        for submodule in MODULES:
            importlib.import_module(f"{name}.{submodule}")
    finally:
        if saved is None:
            del os.environ["ASGIREF_FAST_NO_EXTENSIONS"]
        else:
            os.environ["ASGIREF_FAST_NO_EXTENSIONS"] = saved
    return name


def a2wsgi() -> "types.SimpleNamespace | None":
    """a2wsgi's WSGI adapter, as a stand-in "implementation" for the WSGI cases."""
    try:
        from a2wsgi import WSGIMiddleware
    except ImportError:
        return None
    return types.SimpleNamespace(name="a2wsgi", wsgi=types.SimpleNamespace(WsgiToAsgi=WSGIMiddleware))


def upstream_missing() -> "str | None":
    """Why upstream asgiref cannot be measured here, or None if it can."""
    if stand_in() is not None:
        return "asgiref_fast.install() is in effect in this process"
    try:
        import asgiref.local  # noqa: F401
    except ImportError as exc:
        return f'upstream asgiref cannot be imported ({exc}): pip install "asgiref-fast[bench]"'
    return None


def load(names=NAMES) -> "dict[str, types.SimpleNamespace]":
    """The available implementations among *names*, by name."""
    found = {}
    for name in names:
        if name == "upstream":
            if upstream_missing() is None:
                found[name] = _api(name, "asgiref")
        elif name == "compiled":
            if asgiref_fast.COMPILED:
                found[name] = _api(name, "asgiref_fast")
            elif _copy_compiled_ok():
                found[name] = _api(name, _copy("asgiref_fast_compiled_twin", no_extensions=False))
        elif name == "pure":
            package = "asgiref_fast" if not asgiref_fast.COMPILED else _copy(
                "asgiref_fast_pure_twin", no_extensions=True
            )
            found[name] = _api(name, package)
    return found


def _copy_compiled_ok() -> bool:
    # Only when asgiref_fast is pure by request, not because the build failed
    # or was skipped (a pure install still has the _cy package, stubs only).
    from asgiref_fast import _impl

    return _impl.IMPORT_ERROR is None and all(
        importlib.util.find_spec(f"asgiref_fast._cy.{module}") is not None
        for module in ("context", "hop", "local", "workqueue")
    )
