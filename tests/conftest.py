import importlib.machinery
import os
import sys

import pytest

import asgiref_fast
from asgiref_fast import _env, _impl


def _flag(name: str) -> bool:
    return _env.switch(name)  # the package's own reading of its switches


def pytest_configure(config):
    # pytest-run-parallel's marker, declared for runs without the plugin.
    config.addinivalue_line("markers", "thread_unsafe(reason=None): not run in parallel threads by pytest-run-parallel")
    # A run meant for the compiled twin (tests/__main__.py sets this) stops
    # before any test if the asgiref_fast it imports runs the pure one.
    if _flag("ASGIREF_FAST_REQUIRE_COMPILED") and not asgiref_fast.COMPILED:
        raise pytest.UsageError(_not_compiled())


def _not_compiled() -> str:
    where = os.path.dirname(asgiref_fast.__file__)
    if _flag("ASGIREF_FAST_NO_EXTENSIONS"):
        return ("ASGIREF_FAST_REQUIRE_COMPILED=1 asks for the compiled twin and "
                "ASGIREF_FAST_NO_EXTENSIONS=1 for the pure one: unset one of them")
    message = (f"ASGIREF_FAST_REQUIRE_COMPILED=1, but the asgiref_fast imported from {where} "
               f"runs its pure twin: its compiled twins failed to import ({_impl.IMPORT_ERROR}).")
    # Another copy further along sys.path (site-packages after `pip install .`).
    here = os.path.realpath(os.path.dirname(where))
    rest = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    other = importlib.machinery.PathFinder.find_spec("asgiref_fast", rest)
    if other is not None and other.origin:
        message += (f" (Another asgiref_fast is installed, in {os.path.dirname(other.origin)}, "
                    "but that is not the one imported.)")
    return message + (
        " Run from a checkout, the tests import the checkout's asgiref_fast, which"
        " `pip install .` does not build into: build it in place with `pip install -e .`"
        " (or `python setup.py build_ext --inplace`), or run `python -m tests --pure-only`."
    )


def pytest_report_header(config):
    twin = "compiled" if asgiref_fast.COMPILED else "pure"
    why = f" (compiled twins unavailable: {_impl.IMPORT_ERROR})" if _impl.IMPORT_ERROR else ""
    return f"asgiref_fast {asgiref_fast.__version__}: {twin} twin{why}"


def pytest_addoption(parser):
    parser.addoption(
        "--stress",
        action="store_true",
        help="run the reliability tests (stress, leaks, hostile input) at full size: slow",
    )


@pytest.fixture
def stress(request):
    """True under --stress: tests pick their long size."""
    return request.config.getoption("--stress")


def pytest_collection_modifyitems(config, items):
    # pytest-run-parallel calls a test's function in several threads at once;
    # a coroutine test (pytest-asyncio's) is then never awaited. Those run once.
    for item in items:
        if item.get_closest_marker("asyncio") is not None and item.get_closest_marker("thread_unsafe") is None:
            item.add_marker(pytest.mark.thread_unsafe(
                reason="a coroutine test: pytest-run-parallel cannot run it in threads"))
