"""The private asyncio names we read (asgiref_fast/_asyncio_private.py): each
is there on the Python running the tests, and the list has every one our
sources read."""

import asyncio
import importlib
import re
import sys
from pathlib import Path

import pytest

import asgiref_fast
from asgiref_fast._asyncio_private import PRIVATE, applies

ROOT = Path(__file__).resolve().parent.parent
# The package this run imports (a checkout's, or an installed wheel's when
# tests/ run from a copy), and the Cython sources where there are any.
SOURCES = sorted(Path(asgiref_fast.__file__).parent.rglob("*.py")) + sorted((ROOT / "src_pyx").glob("*.pyx"))

# How our sources read them: loop._x, handle._x, getattr(loop, "_x", ...),
# state["_x"] (a loop's __dict__), asyncio.module._x, getattr(asyncio.module,
# "_x", ...), and _loops.py's alias of the platform's policy module.
READS = re.compile(
    r"\b(?P<obj>loop|handle)\._(?P<obj_name>[a-z]\w*)"
    r"|getattr\((?P<got>loop|handle|asyncio(?:\.[a-z_]+)*|_policies), \"_(?P<got_name>[A-Za-z]\w*)\""
    r"|\bstate\[\"_(?P<state_name>[a-z]\w*)\"\]"
    r"|\b(?P<module>asyncio(?:\.[a-z_]+)*)\._(?P<module_name>[a-z]\w*)"
)
POLICY_MODULE = "asyncio.windows_events" if sys.platform == "win32" else "asyncio.unix_events"


def _reads() -> "set[tuple[str, str]]":
    found = set()
    for path in SOURCES:
        for match in READS.finditer(path.read_text()):
            if match["obj"]:
                found.add((match["obj"], "_" + match["obj_name"]))
            elif match["got"]:
                owner = POLICY_MODULE if match["got"] == "_policies" else match["got"]
                found.add((owner, "_" + match["got_name"]))
            elif match["state_name"]:
                found.add(("loop", "_" + match["state_name"]))
            else:
                found.add((match["module"], "_" + match["module_name"]))
    return found


def test_every_private_name_we_read_is_listed():
    listed = {(entry.owner, entry.name) for entry in PRIVATE}
    assert _reads() - listed == set()


def test_every_listed_name_is_still_read():
    # Nothing listed that no source reads any more.
    read = {name for _, name in _reads()}
    assert [entry.name for entry in PRIVATE if entry.name not in read] == []


@pytest.mark.parametrize("entry", PRIVATE, ids=lambda entry: f"{entry.owner}.{entry.name}")
def test_each_is_there_where_we_read_it(entry):
    if not applies(entry):
        pytest.skip(f"not read on Python {sys.version_info[0]}.{sys.version_info[1]}")
    loop = asyncio.SelectorEventLoop()
    try:
        handle = loop.call_soon(lambda: None)
        owner = {"loop": loop, "handle": handle}.get(entry.owner) or importlib.import_module(entry.owner)
        assert hasattr(owner, entry.name), f"{entry.owner}.{entry.name} is gone on {sys.version}: see {entry.users}"
    finally:
        loop.close()
