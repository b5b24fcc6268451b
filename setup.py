"""Builds the compiled twins from src_pyx/, when it can.

Everything else is declared in pyproject.toml. Without a C compiler or Cython,
or with ASGIREF_FAST_NO_EXTENSIONS=1, the install still succeeds with the
pure-Python twins, and says so.
"""

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
SOURCES = sorted(str(p.relative_to(HERE)) for p in (HERE / "src_pyx").glob("*.pyx"))


def _say(message: str) -> None:
    print(f"asgiref-fast: {message}", file=sys.stderr)


class optional_build_ext(build_ext):
    """A failed extension build falls back to the pure twins."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, headers missing, ...
            _say(f"building the compiled twins failed ({exc}); installing the pure-Python twins only")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            _say(f"building {ext.name} failed ({exc}); installing the pure-Python twins only")


def extensions():
    if os.environ.get("ASGIREF_FAST_NO_EXTENSIONS", "") not in ("", "0"):
        _say("ASGIREF_FAST_NO_EXTENSIONS is set: installing the pure-Python twins only")
        return []
    if not SOURCES:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _say("Cython is not available: installing the pure-Python twins only")
        return []
    return cythonize(
        SOURCES,
        compiler_directives={"language_level": "3"},
        include_path=["src_pyx"],
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": optional_build_ext})
