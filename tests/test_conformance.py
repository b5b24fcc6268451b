"""The conformance gate: upstream asgiref 3.13.0's own test suite, fetched
from PyPI and run against asgiref_fast with install() in effect."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

import asgiref_fast

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "upstream"
SDIST = f"asgiref-{asgiref_fast.ASGIREF_VERSION}"

# Upstream's suite, as it stands in its sdist: all must pass, one xfails.
EXPECTED = {"passed": 133, "xfailed": 1, "failed": 0, "error": 0, "skipped": 0, "xpassed": 0}
if sysconfig.get_config_var("Py_GIL_DISABLED"):
    # Upstream skips test_thread_critical_Local_remove_all_reference_cycles
    # on free-threaded builds (its exact gc.garbage check cannot hold there).
    EXPECTED = {**EXPECTED, "passed": 132, "skipped": 1}


def upstream_suite() -> Path:
    """Upstream's tests/ and setup.cfg (its pytest settings), without its code."""
    suite = CACHE / SDIST
    if (suite / "tests").is_dir():
        return suite
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"{SDIST}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-d", str(CACHE), f"asgiref=={asgiref_fast.ASGIREF_VERSION}"],
            check=True, capture_output=True, timeout=300,
        )
    unpacked = CACHE / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    staging = CACHE / f"{SDIST}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    shutil.copytree(unpacked / SDIST / "tests", staging / "tests")
    shutil.copy(unpacked / SDIST / "setup.cfg", staging / "setup.cfg")
    shutil.rmtree(unpacked)
    staging.rename(suite)
    return suite


@pytest.mark.timeout(900)
def test_upstream_suite_passes(tmp_path):
    suite = upstream_suite()
    result = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("conformance.py")), str(result),
         "-c", str(suite / "setup.cfg"), "--rootdir", str(suite), str(suite / "tests"),
         "-q", "-p", "no:cacheprovider", "--benchmark-disable", "-o", "timeout=120"],
        cwd=tmp_path, capture_output=True, text=True, timeout=850,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    counts = json.loads(result.read_text()) if result.exists() else {}
    compiled = counts.pop("compiled", None)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    print(f"upstream asgiref {asgiref_fast.ASGIREF_VERSION} suite "
          f"({'compiled' if compiled else 'pure'} twin): {summary}")
    assert compiled == asgiref_fast.COMPILED
    assert counts == EXPECTED, proc.stdout[-20000:] + proc.stderr[-5000:]
