"""Runs the whole test suite once per twin: ``python -m tests [pytest args]``.

The compiled twin first (it must have been built: a missing build fails the
run), then the pure twin (``ASGIREF_FAST_NO_EXTENSIONS=1``), each in its own
pytest process. Prints the counts of both and exits non-zero on any failure,
error, or a run that executed no tests. ``--pure-only`` skips the compiled
run, for machines without a C compiler; ``--compiled-only`` skips the pure
run (CI's check of an installed wheel, whose pure twin is the same files its
pure sdist run tests).
"""

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TWINS = {
    "compiled": {"ASGIREF_FAST_REQUIRE_COMPILED": "1"},
    "pure": {"ASGIREF_FAST_NO_EXTENSIONS": "1"},
}


def run_twin(name: str, extra_env: dict, args: list) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        env = {**os.environ, **extra_env}
        if name == "compiled":
            env.pop("ASGIREF_FAST_NO_EXTENSIONS", None)
        print(f"\n===== {name} twin =====", flush=True)
        status = subprocess.call(
            [sys.executable, "-m", "pytest", f"--junitxml={report}", *args], cwd=ROOT, env=env
        )
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if report.exists():
            for suite in ET.parse(report).getroot().iter("testsuite"):
                for key in counts:
                    counts[key] += int(suite.get(key, 0))
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["status"] = status
    return counts


def main(argv: list) -> int:
    twins = dict(TWINS)
    for only, other in (("--pure-only", "compiled"), ("--compiled-only", "pure")):
        if only in argv:
            argv = [a for a in argv if a != only]
            twins.pop(other, None)
    if not twins:
        print("--pure-only and --compiled-only exclude each other", file=sys.stderr)
        return 2
    results = {name: run_twin(name, env, argv) for name, env in twins.items()}
    print()
    ok = True
    for name, c in results.items():
        print(f"{name} twin: {c['passed']} passed, {c['failures']} failed, "
              f"{c['errors']} errors, {c['skipped']} skipped (pytest exit {c['status']})")
        ok &= c["status"] == 0 and c["tests"] > 0 and not c["failures"] and not c["errors"]
    passed = sum(c["passed"] for c in results.values())
    failed = sum(c["failures"] + c["errors"] for c in results.values())
    print(f"{passed} passed, {failed} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
