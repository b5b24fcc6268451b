import pytest

import asgiref_fast
from asgiref_fast import _impl


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


def pytest_configure(config):
    # pytest-run-parallel's marker, declared for runs without the plugin.
    config.addinivalue_line("markers", "thread_unsafe(reason=None): not run in parallel threads by pytest-run-parallel")


def pytest_collection_modifyitems(config, items):
    # pytest-run-parallel calls a test's function in several threads at once;
    # a coroutine test (pytest-asyncio's) is then never awaited. Those run once.
    for item in items:
        if item.get_closest_marker("asyncio") is not None and item.get_closest_marker("thread_unsafe") is None:
            item.add_marker(pytest.mark.thread_unsafe(reason="a coroutine test: pytest-run-parallel cannot run it in threads"))
