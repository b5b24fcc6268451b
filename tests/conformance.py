"""Runs upstream asgiref's own test suite against asgiref_fast.

Usage: python tests/conformance.py RESULT_JSON [pytest args...]

asgiref_fast.install() is in effect before pytest starts, so every
``import asgiref...`` in upstream's tests resolves to asgiref_fast. The counts
of each outcome are written to RESULT_JSON.
"""

import json
import sys

import asgiref_fast

asgiref_fast.install()

import asgiref.sync  # noqa: E402

import asgiref_fast.sync  # noqa: E402

assert asgiref.sync is asgiref_fast.sync, "install() did not take effect"

import pytest  # noqa: E402


class Counts:
    def __init__(self) -> None:
        self.counts: "dict[str, int]" = {}

    def pytest_terminal_summary(self, terminalreporter):
        for outcome in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
            self.counts[outcome] = len(terminalreporter.stats.get(outcome, []))


def main() -> int:
    result_file, args = sys.argv[1], sys.argv[2:]
    counts = Counts()
    status = pytest.main(args, plugins=[counts])
    counts.counts["compiled"] = asgiref_fast.COMPILED
    with open(result_file, "w") as f:
        json.dump(counts.counts, f)
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
