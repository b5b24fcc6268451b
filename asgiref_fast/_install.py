"""install(): make ``import asgiref...`` resolve to asgiref_fast."""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

# The asgiref release whose behaviour and API we provide.
ASGIREF_VERSION = "3.13.0"

# asgiref's modules; each resolves to the asgiref_fast module of that name.
MODULES = (
    "compatibility",
    "current_thread_executor",
    "local",
    "server",
    "sync",
    "testing",
    "timeout",
    "typing",
    "wsgi",
)


class _StandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``asgiref`` and ``asgiref.<module>`` before any other finder,
    and loads them as the asgiref_fast modules themselves."""

    def find_spec(
        self, fullname: str, path: "Sequence[str] | None" = None, target: "types.ModuleType | None" = None
    ) -> "importlib.machinery.ModuleSpec | None":
        if fullname == "asgiref":
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        package, _, name = fullname.partition(".")
        if package == "asgiref" and name in MODULES:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name == "asgiref":
            return _package()
        return importlib.import_module("asgiref_fast." + spec.name.partition(".")[2])

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # already executed as asgiref_fast.<module>


def _package() -> types.ModuleType:
    package = types.ModuleType("asgiref", "asgiref, provided by asgiref_fast.")
    package.__version__ = ASGIREF_VERSION  # type: ignore[attr-defined]
    package.__path__ = []  # a package: its modules come from _StandIn
    return package


def _foreign_modules() -> "list[str]":
    found = []
    for name, module in list(sys.modules.items()):
        if name != "asgiref" and not name.startswith("asgiref."):
            continue
        spec = getattr(module, "__spec__", None)
        if not isinstance(getattr(spec, "loader", None), _StandIn):
            found.append(name)
    return sorted(found)


def install() -> None:
    """Make ``import asgiref`` and ``import asgiref.<module>`` give the
    asgiref_fast modules, so that every library uses them unchanged.

    Call it before anything imports asgiref. Calling it again does nothing.
    Raises RuntimeError if asgiref modules were already imported: two copies
    running side by side would not see each other's threads and contexts.
    """
    if any(isinstance(finder, _StandIn) for finder in sys.meta_path):
        return
    foreign = _foreign_modules()
    if foreign:
        raise RuntimeError(
            "asgiref_fast.install() must run before asgiref is imported, but "
            f"these asgiref modules are already loaded: {', '.join(foreign)}. "
            "Call it earlier (e.g. at the top of manage.py/asgi.py), or set "
            "ASGIREF_FAST=1 in the environment."
        )
    sys.meta_path.insert(0, _StandIn())
