"""The ASGIREF_FAST* environment variables: one reading for all of them
(``asgiref_fast._env``), and each variable read that way where it acts, in
fresh interpreters of the twin under test (the compiled twin reads
ASGIREF_FAST_NO_SPIN in its own module). ASGIREF_FAST itself: test_startup."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from asgiref_fast import _env

TYPO = "not 1/true/yes/on or 0/false/no/off; taken as off"
BUILT = all(importlib.util.find_spec(f"asgiref_fast._cy.{m}") for m in ("context", "hop", "local", "workqueue"))
# The twin this run tests: pure if the run selects it, else compiled where built.
PURE_RUN = _env.switch("ASGIREF_FAST_NO_EXTENSIONS")


def python(code: str, **env_changes: "str | None") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ASGIREF_FAST"}
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(_env, "_told", set())


@pytest.mark.parametrize("value", ["1", "true", "YES", " On ", "on\n"])
def test_true_values(fresh, monkeypatch, capsys, value):
    monkeypatch.setenv("ASGIREF_FAST_X", value)
    assert _env.switch("ASGIREF_FAST_X") is True
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", [None, "", " ", "0", "false", "No", "OFF"])
def test_false_values(fresh, monkeypatch, capsys, value):
    if value is None:
        monkeypatch.delenv("ASGIREF_FAST_X", raising=False)
    else:
        monkeypatch.setenv("ASGIREF_FAST_X", value)
    assert _env.switch("ASGIREF_FAST_X") is False
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", ["ture", "2", "-1", "y", "enable", "1.0"])
def test_other_values_are_off_and_said_once(fresh, monkeypatch, capsys, value):
    monkeypatch.setenv("ASGIREF_FAST_X", value)
    assert _env.switch("ASGIREF_FAST_X") is False
    assert _env.switch("ASGIREF_FAST_X") is False
    assert capsys.readouterr().err == f"asgiref_fast: ignoring ASGIREF_FAST_X={value!r}: {TYPO}\n"


def test_numbers(fresh, monkeypatch, capsys):
    for value, expected in [(None, 7), ("", 7), ("3", 3), (" 12 ", 12), ("0", 0)]:
        if value is None:
            monkeypatch.delenv("ASGIREF_FAST_N", raising=False)
        else:
            monkeypatch.setenv("ASGIREF_FAST_N", value)
        assert _env.number("ASGIREF_FAST_N", 7, integer=True) == expected
    assert capsys.readouterr().err == ""
    for value in ["-1", "2.5", "many", "nan"]:
        monkeypatch.setenv("ASGIREF_FAST_N", value)
        assert _env.number("ASGIREF_FAST_N", 7, integer=True) == 7
        assert capsys.readouterr().err == (
            f"asgiref_fast: ignoring ASGIREF_FAST_N={value!r}: not an integer >= 0; using 7\n")
    monkeypatch.setenv("ASGIREF_FAST_S", "0.25")
    assert _env.number("ASGIREF_FAST_S", 60.0, minimum=0.001) == 0.25
    for value in ["0", "inf", "nan", "-3"]:
        monkeypatch.setenv("ASGIREF_FAST_S", value)
        assert _env.number("ASGIREF_FAST_S", 60.0, minimum=0.001) == 60.0
    assert capsys.readouterr().err.count("not a number >= 0.001; using 60.0\n") == 4


@pytest.mark.parametrize("value, pure", [("1", True), ("on", True), ("0", False), ("false", False),
                                         ("off", False), ("ture", False)])
def test_no_extensions(value, pure):
    proc = python("import asgiref_fast; print(asgiref_fast.COMPILED)",
                  ASGIREF_FAST_NO_EXTENSIONS=value, ASGIREF_FAST_REQUIRE_COMPILED=None)
    assert proc.stdout == f"{not pure and BUILT}\n", proc.stderr
    assert proc.stderr == (f"asgiref_fast: ignoring ASGIREF_FAST_NO_EXTENSIONS='ture': {TYPO}\n"
                           if value == "ture" else "")


@pytest.mark.parametrize("value, spins", [("1", False), ("yes", False), ("0", True), ("", True),
                                          ("false", True), ("ture", True)])
def test_no_spin(value, spins):
    # Read by the twin this run tests: the compiled one's own module reads it.
    proc = python("import asgiref_fast, asgiref_fast._impl as i; "
                  "print(asgiref_fast.COMPILED, i.workqueue.configure_spinning()['max_spinners'], "
                  "int(i.workqueue._cpus_granted()) if asgiref_fast.COMPILED else 0)",
                  ASGIREF_FAST_NO_SPIN=value)
    compiled, max_spinners, cpus = proc.stdout.split()
    assert compiled == str(BUILT and not PURE_RUN), proc.stderr
    # The pure twin never spins; the compiled one leaves a core to the GIL.
    assert int(max_spinners) == (max(0, int(cpus) - 1) if spins and compiled == "True" else 0)
    # (The pure twin never reads it: it never spins.)
    assert proc.stderr == (f"asgiref_fast: ignoring ASGIREF_FAST_NO_SPIN='ture': {TYPO}\n"
                           if value == "ture" and compiled == "True" else "")


LANES = """
    import asyncio, threading, time
    from asgiref_fast import _lanes
    from asgiref_fast.sync import ThreadSensitiveContext, sync_to_async

    print(_lanes.MAX_IDLE_LANES, _lanes.IDLE_SECONDS, _lanes.pool().max_idle, _lanes.pool().idle_seconds)
    together = threading.Barrier(5)  # five contexts on five lanes at once

    async def one():
        async with ThreadSensitiveContext():
            await sync_to_async(lambda: together.wait(30))()

    async def main():
        await asyncio.gather(*(one() for _ in range(5)))

    asyncio.run(main())

    def lanes():
        return sum(t.name.startswith("asgiref_fast-lane-") for t in threading.enumerate())

    def until(test):
        deadline = time.monotonic() + 30
        while not test() and time.monotonic() < deadline:
            time.sleep(0.02)
        return test()

    print(until(lambda: lanes() == _lanes.pool().idle_count() == 2))
    print(until(lambda: lanes() == 0))
"""


@pytest.mark.timeout(120)
def test_idle_lane_bounds():
    proc = python(LANES, ASGIREF_FAST_MAX_IDLE_LANES="2", ASGIREF_FAST_IDLE_SECONDS="0.3")
    assert (proc.stdout, proc.stderr) == ("2 0.3 2 0.3\nTrue\nTrue\n", "")


def test_idle_lane_bounds_defaults_and_bad_values():
    code = "from asgiref_fast import _lanes; print(_lanes.MAX_IDLE_LANES, _lanes.IDLE_SECONDS)"
    assert python(code).stdout == "64 60.0\n"
    proc = python(code, ASGIREF_FAST_MAX_IDLE_LANES="lots", ASGIREF_FAST_IDLE_SECONDS="0")
    assert proc.stdout == "64 60.0\n"
    assert proc.stderr == (
        "asgiref_fast: ignoring ASGIREF_FAST_MAX_IDLE_LANES='lots': not an integer >= 0; using 64\n"
        "asgiref_fast: ignoring ASGIREF_FAST_IDLE_SECONDS='0': not a number >= 0.001; using 60.0\n")


def test_doctor_shows_the_idle_lane_bounds():
    proc = python("from asgiref_fast._doctor import facts; print(facts()['idle_lanes'])",
                  ASGIREF_FAST_MAX_IDLE_LANES="5", ASGIREF_FAST_IDLE_SECONDS="2.5")
    assert proc.stdout == ("at most 5 wait idle (ASGIREF_FAST_MAX_IDLE_LANES), each retiring after 2.5 s unused "
                           "(ASGIREF_FAST_IDLE_SECONDS); 0 idle now\n"), proc.stderr


# Without the compiled twins: as a build without a compiler leaves it.
WITHOUT_COMPILED = """
    import logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")

    class NotBuilt:
        def find_spec(self, name, path=None, target=None):
            if name.startswith("asgiref_fast._cy."):
                raise ImportError("not built")

    sys.meta_path.insert(0, NotBuilt())
    import asgiref_fast, asgiref_fast.sync, asgiref_fast.local
    print(asgiref_fast.COMPILED)
    from asgiref_fast._doctor import main
    print("strict:", main(["--strict", "--json"]) and "failed")
"""


@pytest.mark.parametrize("required", [None, "0", "ture"])
def test_the_pure_fallback_is_logged_once(required):
    proc = python(WITHOUT_COMPILED, ASGIREF_FAST_NO_EXTENSIONS=None, ASGIREF_FAST_REQUIRE_COMPILED=required)
    logged = [line for line in proc.stdout.splitlines() if line.startswith("INFO asgiref_fast: ")]
    assert logged == ["INFO asgiref_fast: asgiref_fast runs its pure-Python twins, slower than the compiled ones, "
                      "which failed to import (not built); `python -m asgiref_fast doctor` tells more"], proc.stdout
    assert proc.stdout.splitlines()[1] == "False"
    assert proc.stdout.endswith("strict: failed\n")
    assert "asgiref_fast doctor --strict: the compiled twins are not in use: pure (the compiled twins failed " \
           "to import: not built)" in proc.stderr


def test_the_pure_fallback_is_not_logged_where_compiled_is_required():
    proc = python(WITHOUT_COMPILED, ASGIREF_FAST_NO_EXTENSIONS=None, ASGIREF_FAST_REQUIRE_COMPILED="1")
    assert "INFO asgiref_fast" not in proc.stdout  # the run fails instead, or goes on unlogged


@pytest.mark.parametrize("value", ["1", "0"])
def test_doctor_strict_passes_as_this_run_is(value):
    # The pure run sets ASGIREF_FAST_NO_EXTENSIONS=1 (not a problem); the
    # compiled run has the twins built.
    if not (PURE_RUN or BUILT):
        pytest.skip("the compiled twins are not built")
    proc = python("import sys; from asgiref_fast._doctor import main; sys.exit(main(['--strict']))",
                  ASGIREF_FAST=value)
    assert proc.returncode == 0, proc.stderr
