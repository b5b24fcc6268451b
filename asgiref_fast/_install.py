"""install(): make ``import asgiref...`` resolve to asgiref_fast."""

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import types
from collections.abc import Sequence

from . import ASGIREF_VERSION

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


def stand_in() -> "_StandIn | None":
    """The finder install() put first on sys.meta_path: asgiref_fast is in
    effect in this process if there is one. The one place that asks."""
    return next((finder for finder in sys.meta_path if isinstance(finder, _StandIn)), None)


def install() -> None:
    """Make ``import asgiref`` and ``import asgiref.<module>`` give the
    asgiref_fast modules, so that every library uses them unchanged.

    Call it before anything imports asgiref. Calling it again does nothing.
    Raises RuntimeError if asgiref modules were already imported: two copies
    running side by side would not see each other's threads and contexts.
    """
    if stand_in() is not None:
        return
    foreign = _foreign_modules()
    if foreign:
        raise RuntimeError(
            "asgiref_fast.install() must run before asgiref is imported, but "
            f"these asgiref modules are already loaded: {', '.join(foreign)}. "
            "Servers such as daphne import asgiref before your application: "
            "start the server with asgiref_fast on from the first line, as "
            "`asgiref-fast run <server> <args>` (e.g. `asgiref-fast run daphne "
            "mysite.asgi:application`) or with ASGIREF_FAST=1 in its environment."
        )
    sys.meta_path.insert(0, _StandIn())
    _tell_if_upstream_is_newer()


def _version_tuple(version: str) -> "tuple[int, ...]":
    """(3, 13, 0) for "3.13.0", (3, 14) for "3.14rc1": the release numbers."""
    numbers = []
    for part in version.split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        numbers.append(int(digits))
        if digits != part:
            break
    return tuple(numbers)


def upstream_version() -> "str | None":
    """The version of the upstream asgiref installed where ``import
    asgiref`` would find it without asgiref_fast, if any. Read from its
    dist-info's name beside it: cheaper than importlib.metadata, which
    would import a dozen modules into every process that imports asgiref."""
    spec = importlib.machinery.PathFinder.find_spec("asgiref")
    if spec is None or not spec.submodule_search_locations:
        return None
    site_dir = os.path.dirname(list(spec.submodule_search_locations)[0])
    try:
        names = os.listdir(site_dir)
    except OSError:
        return None
    for name in sorted(names):
        stem, dot, ext = name.rpartition(".")
        distribution, _, version = stem.partition("-")
        if dot and ext == "dist-info" and distribution.lower() == "asgiref" and version:
            return version
    return None


def _tell_if_upstream_is_newer() -> None:
    # Code written for a newer asgiref may use what the release we mirror
    # lacks: say so, once (install() runs once per process).
    upstream = upstream_version()
    if upstream and _version_tuple(upstream) > _version_tuple(ASGIREF_VERSION):
        print(f"asgiref_fast: asgiref {upstream} is installed, but asgiref_fast provides the API of "
              f"asgiref {ASGIREF_VERSION}: what asgiref added since is missing while asgiref_fast is on",
              file=sys.stderr)
