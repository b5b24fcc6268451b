"""Which twin runs, and that a run meant for the compiled twin really has it."""

import importlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import asgiref_fast
from asgiref_fast import _impl
from asgiref_fast._env import switch

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = switch("ASGIREF_FAST_REQUIRE_COMPILED")
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _env(**changes: "str | None") -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ASGIREF_FAST_NO_EXTENSIONS", "ASGIREF_FAST_REQUIRE_COMPILED")}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def _compiled_is_built() -> bool:
    proc = subprocess.run([sys.executable, "-c", "import asgiref_fast._cy.workqueue"],
                          env=_env(), capture_output=True, timeout=60)
    return proc.returncode == 0


def test_env_var_selects_the_pure_twin():
    if switch("ASGIREF_FAST_NO_EXTENSIONS"):
        assert asgiref_fast.COMPILED is False
        assert _impl.local.__name__ == "asgiref_fast._pure.local"
    else:
        assert asgiref_fast.COMPILED is (_impl.IMPORT_ERROR is None)


@pytest.mark.skipif(not REQUIRED, reason="only where the build is required")
def test_compiled_twins_built():
    for module in ("context", "hop", "local", "workqueue"):
        importlib.import_module(f"asgiref_fast._cy.{module}")  # raises if not built
    assert asgiref_fast.COMPILED, f"compiled twins unavailable: {_impl.IMPORT_ERROR}"
    assert _impl.local.__name__ == "asgiref_fast._cy.local"


# -- a run that requires the compiled twin -------------------------------------


@pytest.mark.timeout(180)
def test_a_required_compiled_run_stops_before_any_test_without_it(tmp_path):
    """A checkout whose asgiref_fast has no compiled twins (as after `pip
    install .`, which builds them elsewhere): the compiled run stops at once,
    saying which asgiref_fast it found and how to build it."""
    checkout = tmp_path / "checkout"
    # The package this run imports (the checkout's, or an installed wheel's
    # where the tests run from a copy of tests/), without its compiled twins.
    shutil.copytree(Path(asgiref_fast.__file__).parent, checkout / "asgiref_fast",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    (checkout / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", checkout / "tests" / "conftest.py")
    (checkout / "tests" / "test_one.py").write_text("def test_one():\n    pass\n")

    def pytest_in_checkout(**env):
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests"],
                              cwd=checkout, env=_env(**env), capture_output=True, text=True, timeout=150)

    plain = pytest_in_checkout()  # the copy itself is sound: its pure twin runs the test
    assert plain.returncode == 0 and "1 passed" in plain.stdout, plain.stdout + plain.stderr
    required = pytest_in_checkout(ASGIREF_FAST_REQUIRE_COMPILED="1")
    out = required.stdout + required.stderr
    assert required.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert "test_one" not in out and "passed" not in out, out
    assert f"asgiref_fast imported from {checkout / 'asgiref_fast'} runs its pure twin" in out, out
    assert "pip install -e ." in out and "build_ext --inplace" in out, out


# -- the private CPython layouts the compiled twins read -------------------------


def test_the_compiled_context_twin_reads_this_pythons_layout():
    if not _compiled_is_built():
        (pytest.fail if REQUIRED else pytest.skip)("the compiled twins are not built")
    from asgiref_fast._cy import context  # imports only after its layout check passed

    assert context._layout_problem() is None


@pytest.mark.timeout(120)
def test_a_context_layout_that_misreads_falls_back_to_the_pure_twin():
    if not _compiled_is_built():
        (pytest.fail if REQUIRED else pytest.skip)("the compiled twins are not built")
    code = textwrap.dedent("""
        import asgiref_fast
        from asgiref_fast import _doctor, _impl
        print(asgiref_fast.COMPILED, _impl.local.__name__)
        print(_doctor.facts()["twin"])
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=_env(ASGIREF_FAST_TEST_MISREAD_CONTEXT="1"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    chosen, twin = proc.stdout.splitlines()
    assert chosen == "False asgiref_fast._pure.local"
    assert twin == (
        "pure (the compiled twins failed to import: asgiref_fast._cy.context cannot read the contexts "
        f"of this CPython ({sys.version.split()[0]}) with the PyContext layout it was built with: "
        "ctx_vars is not any object the context holds)"
    )


def test_the_compiled_twin_sees_the_gil_flag():
    # gil.c reads the GIL's `locked` flag through CPython's internal headers;
    # the module checks at import that it reads "held" (gil.h).
    if not _compiled_is_built():
        (pytest.fail if REQUIRED else pytest.skip)("the compiled twins are not built")
    from asgiref_fast._cy import workqueue

    sees = not FREE_THREADED and sys.platform != "win32"
    assert workqueue.spinning_report()["sees_gil"] is sees


PROBE_C = """
#include "Python.h"
#include "gil.h"

static PyObject *sees_gil(PyObject *module, PyObject *unused) {
    int *flag = asgiref_fast_gil_locked_flag();
    return PyBool_FromLong(flag != NULL && *flag == 1);
}
static PyMethodDef methods[] = {{"sees_gil", sees_gil, METH_NOARGS, NULL}, {NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gilprobe", NULL, -1, methods};
PyMODINIT_FUNC PyInit_gilprobe(void) { return PyModule_Create(&module); }
"""

BUILD_PROBE = """
import runpy, setuptools, sys
from setuptools import Distribution, Extension
setuptools.setup = lambda **kw: None  # only setup.py's build_ext, not the project's build
build_ext = runpy.run_path("setup.py")["optional_build_ext"]
dist = Distribution({"ext_modules": [Extension("gilprobe", [sys.argv[1], "src_pyx/gil.c"],
                                               include_dirs=["src_pyx"], optional=True)]})
command = build_ext(dist)
command.build_lib, command.build_temp = sys.argv[2], sys.argv[3]
command.ensure_finalized()
command.run()
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("headers", ["as they are", "differing"])
def test_gil_c_builds_without_the_flag_where_the_internal_headers_differ(tmp_path, headers):
    if not (ROOT / "setup.py").is_file():
        pytest.skip("builds from the source tree, which is not beside these tests")
    if not sysconfig.get_config_var("CC") and sys.platform != "win32":
        pytest.skip("no C compiler configured for this Python")
    (tmp_path / "gilprobe.c").write_text(PROBE_C)
    cflags = os.environ.get("CFLAGS", "")
    if headers == "differing":
        cflags += " -DASGIREF_FAST_TEST_BAD_GIL_HEADERS"
    build = subprocess.run(
        [sys.executable, "-c", BUILD_PROBE, str(tmp_path / "gilprobe.c"), str(tmp_path / "lib"), str(tmp_path / "tmp")],
        cwd=ROOT, env=_env(ASGIREF_FAST_NO_EXTENSIONS="1", CFLAGS=cflags), capture_output=True, text=True, timeout=150,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    retried = "building gilprobe with CPython's internal GIL headers failed" in build.stderr
    probe = subprocess.run([sys.executable, "-c", "import gilprobe; print(gilprobe.sees_gil())"],
                           cwd=tmp_path / "lib", env=_env(), capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    sees = not FREE_THREADED and sys.platform != "win32"
    if headers == "differing" and sees:
        assert retried, build.stderr
        assert probe.stdout.strip() == "False"
    else:
        assert not retried, build.stderr
        assert probe.stdout.strip() == str(sees)


def test_the_wheels_built_are_the_versions_declared():
    # One classifier per CPython minor version, one cibuildwheel build each.
    import tomllib

    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("reads the source tree's pyproject.toml, which is not beside these tests")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    prefix = "Programming Language :: Python :: 3."
    declared = {f"cp3{c[len(prefix):]}-*" for c in project["project"]["classifiers"] if c.startswith(prefix)}
    builds = set(project["tool"]["cibuildwheel"]["build"])
    assert {b for b in builds if not b.split("-")[0].endswith("t")} == declared
    assert f"cp3{sys.version_info[1]}-*" in declared  # the Python running these tests


def test_the_c_lives_in_headers():
    # C readers look for C in .c and .h files: the Cython sources declare it
    # (cdef extern from "x.h"), none carries it in a verbatim string, and
    # every header is declared by one of them.
    if not (ROOT / "src_pyx").is_dir():
        pytest.skip("no source tree beside tests/ (the tests run against an installed package)")
    cython = [path for path in sorted((ROOT / "src_pyx").iterdir()) if path.suffix in (".pyx", ".pxd", ".pxi")]
    assert [path.name for path in cython if "cdef extern from *" in path.read_text()] == []
    declared = {name for path in cython for name in re.findall(r'cdef extern from "(\w+\.h)"', path.read_text())}
    assert {path.name for path in (ROOT / "src_pyx").glob("*.h")} <= declared
