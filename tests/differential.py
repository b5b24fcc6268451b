"""Differential testing: one scenario, run under upstream asgiref 3.13.0 and
under asgiref_fast (the twin this test run uses), each in a fresh interpreter;
the test compares what the two observed.

A scenario is Python source written against ``asgiref.*`` (under asgiref_fast,
``install()`` is in effect before it runs). It records observations with
``record(key, value)`` (JSON values) and may label threads relationally with
``thread_label()``: "T0" for the main thread, then "T1", "T2"... in order of
first appearance, so that "the same thread" and "another thread" compare
across implementations while thread names and idents do not; ``await
outcome(awaitable)`` gives its result or its exception's name. A scenario that
does not finish within its timeout is observed as ``{"hang": True}``.
"""

import json
import os
import subprocess
import sys
import textwrap
from importlib.machinery import PathFinder

import asgiref_fast

IMPLEMENTATIONS = ("upstream", "ours")

_PRELUDE = """
import json as _json, sys as _sys, threading as _threading
if _sys.argv[1] == "ours":
    import asgiref_fast
    asgiref_fast.install()
    assert asgiref_fast.COMPILED == (_sys.argv[2] == "compiled"), "not the twin under test"
import asgiref
if _sys.argv[1] == "upstream":
    assert "asgiref_fast" not in asgiref.__file__ and asgiref.__version__ == "3.13.0", asgiref.__file__
_observed = {}
_labels = {}
_labels_lock = _threading.Lock()

def record(key, value):
    _observed[key] = value

def thread_label(thread=None):
    # By thread object, kept alive here: a new thread may reuse the ident of
    # one that has ended.
    thread = thread or _threading.current_thread()
    with _labels_lock:
        return _labels.setdefault(thread, "T%d" % len(_labels))

thread_label(_threading.main_thread())

async def outcome(task):
    # What an awaitable came to: its result, or its exception's name.
    import asyncio
    try:
        return await asyncio.wait_for(task, 15)
    except BaseException as exc:
        return type(exc).__name__

def _report():
    _sys.stdout.write("\\n@@observed@@" + _json.dumps(_observed, sort_keys=True) + "\\n")
    _sys.stdout.flush()
"""


def upstream_available() -> bool:
    """Upstream asgiref (3.13.0, the test extra's) is installed beside us."""
    return PathFinder.find_spec("asgiref") is not None


def observe(scenario: str, implementation: str, timeout: float = 30) -> dict:
    """Run *scenario* under *implementation* ("upstream" or "ours") in a fresh
    interpreter; what it recorded, ``{"hang": True}`` past *timeout*, or
    ``{"crash": ...}`` if it died without reporting."""
    source = _PRELUDE + textwrap.dedent(scenario) + "\n_report()\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGIREF_FAST")}
    if not asgiref_fast.COMPILED:
        env["ASGIREF_FAST_NO_EXTENSIONS"] = "1"
    twin = "compiled" if asgiref_fast.COMPILED else "pure"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", source, implementation, twin],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired:
        return {"hang": True}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@observed@@"):
            return json.loads(line[len("@@observed@@"):])
    return {"crash": f"exit {proc.returncode}: {proc.stderr[-3000:]}"}


def compare(scenario: str, timeout: float = 30) -> "tuple[dict, dict]":
    """(upstream's observations, ours) for *scenario*."""
    return tuple(observe(scenario, impl, timeout) for impl in IMPLEMENTATIONS)  # type: ignore[return-value]


def compare_sound(*parts: str, timeout: float = 30) -> "tuple[dict, dict]":
    """compare() of the scenario made of *parts* (a shared set-up, then the
    case), where neither implementation may crash or hang."""
    upstream, ours = compare("\n".join(textwrap.dedent(part) for part in parts), timeout)
    for observed in (upstream, ours):
        assert "crash" not in observed and "hang" not in observed, observed
    return upstream, ours
