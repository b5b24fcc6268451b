import asgiref_fast
from asgiref_fast import _impl


def pytest_report_header(config):
    twin = "compiled" if asgiref_fast.COMPILED else "pure"
    why = f" (compiled twins unavailable: {_impl.IMPORT_ERROR})" if _impl.IMPORT_ERROR else ""
    return f"asgiref_fast {asgiref_fast.__version__}: {twin} twin{why}"
