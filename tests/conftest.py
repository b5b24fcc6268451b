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
