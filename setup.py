"""Builds the compiled twins from src_pyx/, when it can.

Each ``src_pyx/<name>.pyx`` becomes the extension module
``asgiref_fast._cy.<name>``; ``src_pyx/*.pxd`` declare their classes and the
C API they share. Everything else is declared in pyproject.toml. Without a C
compiler or Cython, or with ASGIREF_FAST_NO_EXTENSIONS=1, the install still
succeeds with the pure-Python twins, and says so.
"""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


def _load_env():
    # The package's own reading of ASGIREF_FAST_* switches, without importing
    # the package (which is not installed yet).
    spec = importlib.util.spec_from_file_location("_asgiref_fast_env", HERE / "asgiref_fast" / "_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


env = _load_env()
PYX_DIR = "src_pyx"
PACKAGE = "asgiref_fast._cy"
# Plain C that a twin's module is linked with (each .pyx makes its own .c).
GIL_C = f"{PYX_DIR}/gil.c"
C_SOURCES = {"workqueue": [GIL_C]}
# gil.c reads CPython's internal headers: where they do not compile, it is
# built again with this defined, and sees no GIL flag (gil.h).
NO_GIL_FLAG = ("ASGIREF_FAST_NO_GIL_FLAG", "1")


def _say(message: str) -> None:
    print(f"asgiref-fast: {message}", file=sys.stderr)


class optional_build_ext(build_ext):
    """Builds the twins as optional extensions: if one fails to build, none
    is kept (asgiref_fast._impl uses all four compiled twins or none), the
    distribution is left with no extension modules (so its wheel is tagged
    py3-none-any, as pure Python), and the install goes on."""

    _failed = False

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all, ...
            _say(f"building the compiled twins failed ({exc}); installing the pure-Python twins only")
            self._failed = True
        if self._failed:
            for ext in self.extensions:
                self._forget(ext)
            self.extensions = self.distribution.ext_modules = []

    def build_extension(self, ext):
        if self._failed:
            return  # one is missing already: the others would not be used
        try:
            super().build_extension(ext)
        except Exception as exc:
            if any(Path(source).name == Path(GIL_C).name for source in ext.sources) \
                    and NO_GIL_FLAG not in ext.define_macros:
                _say(f"building {ext.name} with CPython's internal GIL headers failed ({exc}); "
                     "building it without them (a woken thread will not watch the GIL)")
                ext.define_macros.append(NO_GIL_FLAG)
                return self.build_extension(ext)
            _say(f"building {ext.name} failed ({exc}); installing the pure-Python twins only")
            self._failed = True

    def _forget(self, ext):
        # A module left from an earlier build must not stand in for this one.
        try:
            os.remove(self.get_ext_fullpath(ext.name))
        except OSError:
            pass

    def copy_file(self, infile, outfile, *args, **kwargs):
        # Into the source tree (editable installs): replace the module, never
        # rewrite it in place under a process that has it loaded.
        partial = f"{outfile}.{os.getpid()}.partial"
        _, copied = super().copy_file(infile, partial, *args, **kwargs)
        os.replace(partial, outfile)
        return outfile, copied


def extensions():
    if env.switch("ASGIREF_FAST_NO_EXTENSIONS"):
        _say("ASGIREF_FAST_NO_EXTENSIONS is set: installing the pure-Python twins only")
        return []
    names = sorted(p.stem for p in (HERE / PYX_DIR).glob("*.pyx"))
    if not names:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _say("Cython is not available: installing the pure-Python twins only")
        return []
    try:
        return cythonize(
            [Extension(f"{PACKAGE}.{name}", [f"{PYX_DIR}/{name}.pyx", *C_SOURCES.get(name, [])],
                       include_dirs=[PYX_DIR], optional=True)
             for name in names],
            compiler_directives={"language_level": "3"},
            include_path=[PYX_DIR, _stage_declarations(names)],
        )
    except Exception as exc:  # a Cython that cannot compile them
        _say(f"Cython failed ({exc}): installing the pure-Python twins only")
        return []


def _stage_declarations(names: "list[str]") -> str:
    """Cython reads the declarations of module ``asgiref_fast._cy.<name>``
    from ``asgiref_fast/_cy/<name>.pxd`` on its include path, not from beside
    the .pyx: put a copy of ``src_pyx/<name>.pxd`` there, in build/."""
    root = HERE / "build" / "pxd"
    package = root.joinpath(*PACKAGE.split("."))
    package.mkdir(parents=True, exist_ok=True)
    for name in names:
        pxd = HERE / PYX_DIR / f"{name}.pxd"
        if pxd.exists():
            shutil.copyfile(pxd, package / pxd.name)
    return str(root)


# ASGIREF_FAST=1 in the environment switches asgiref_fast on at interpreter
# start-up (see asgiref_fast/_autoinstall.py, which reads the value); unset or
# empty, the line imports nothing.
PTH_LINE = "import os; os.environ.get('ASGIREF_FAST', '').strip() and __import__('asgiref_fast._autoinstall')\n"


class build_py_with_pth(build_py):
    """Also puts asgiref_fast.pth at the top of site-packages."""

    def run(self):
        super().run()
        # An editable wheel is assembled in install_lib; build_lib is discarded.
        target = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        self.mkpath(target)
        Path(target, "asgiref_fast.pth").write_text(PTH_LINE)


class honest_bdist_wheel(bdist_wheel):
    """Tags the wheel by what was built: a build whose compiled twins were
    all left out is pure Python (py3-none-any), not a platform wheel."""

    def run(self):
        # As bdist_wheel.run() builds, but first: only then is it known.
        self.reinitialize_command("build_ext").inplace = False
        if not self.skip_build:
            self.run_command("build")
        self.root_is_pure = not (self.distribution.has_ext_modules() or self.distribution.has_c_libraries())
        super().run()


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": optional_build_ext, "build_py": build_py_with_pth, "bdist_wheel": honest_bdist_wheel},
)
