"""Which twin runs, and that a run meant for the compiled twin really has it."""

import os

import pytest

import asgiref_fast
from asgiref_fast import _impl


def test_env_var_selects_the_pure_twin():
    if os.environ.get("ASGIREF_FAST_NO_EXTENSIONS", "") not in ("", "0"):
        assert asgiref_fast.COMPILED is False
        assert _impl.Local.__module__ == "asgiref_fast._pure.local"
    else:
        assert asgiref_fast.COMPILED is (_impl.IMPORT_ERROR is None)


@pytest.mark.skipif(not os.environ.get("ASGIREF_FAST_REQUIRE_COMPILED"), reason="only where the build is required")
def test_compiled_twins_built():
    assert asgiref_fast.COMPILED, f"compiled twins unavailable: {_impl.IMPORT_ERROR}"
