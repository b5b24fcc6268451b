"""The package's own types: ``mypy --strict`` on the source tree, and the
compiled twins' ``.pyi`` stubs checked against the compiled modules."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import asgiref_fast

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parent.parent
COMPILED_MODULES = [f"asgiref_fast._cy.{name}" for name in ("context", "hop", "local", "workqueue")]


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(600)
def test_mypy_strict_passes_on_the_package():
    if not (ROOT / "asgiref_fast" / "__init__.py").is_file():
        pytest.skip("no source tree beside tests/ (the tests run against an installed package)")
    proc = mypy("mypy", "--strict", "asgiref_fast", cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(600)
@pytest.mark.skipif(not asgiref_fast.COMPILED, reason="checks the compiled twins")
def test_stubs_match_the_compiled_modules(tmp_path):
    # The modules are those this interpreter imports: the source tree's (built
    # in place) or an installed wheel's. Only the stubs are judged here, not
    # the rest of the package: hence a configuration of mypy's defaults.
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    cwd = ROOT if (ROOT / "asgiref_fast").is_dir() else tmp_path
    proc = mypy("mypy.stubtest", "--mypy-config-file", str(config),
                "--allowlist", str(Path(__file__).with_name("stubtest_allowlist.txt")),
                *COMPILED_MODULES, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
