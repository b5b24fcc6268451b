"""Differential tests (see differential.py) of what code and tests compare
besides behaviour: module-level names, error types and texts, what an error is
raised from, log messages, and the names a ``Local`` reserves. Where we differ
on purpose, the test says so and the README's "Differences from asgiref" lists
it."""

import re

import pytest

from differential import compare, upstream_available

pytestmark = [
    pytest.mark.skipif(not upstream_available(), reason="upstream asgiref is not installed"),
    pytest.mark.timeout(180),
]

MODULES = [
    "asgiref", "asgiref.sync", "asgiref.local", "asgiref.current_thread_executor",
    "asgiref.server", "asgiref.wsgi", "asgiref.compatibility", "asgiref.testing",
    "asgiref.timeout", "asgiref.typing",
]


def test_every_public_name_of_upstreams_modules_is_ours_too():
    # Every name in dir() of each upstream module that does not start with
    # "_", re-exports and imported modules included (code imports them from
    # there, and mock.patch()es them there): each exists with us, and is the
    # same kind of thing: a module, an object another asgiref module also
    # holds, a standard library object, or one of the module's own.
    upstream, ours = compare(f"""
        import importlib, types
        MODULES = {MODULES!r}
        modules = {{m: importlib.import_module(m) for m in MODULES}}
        STDLIB = ["typing", "collections", "collections.abc", "concurrent.futures",
                  "contextvars", "threading", "asyncio", "types", "sys", "os",
                  "functools", "inspect", "weakref", "warnings", "tempfile"]
        stdlib = {{m: importlib.import_module(m) for m in STDLIB}}

        def what(name, value, home):
            if isinstance(value, types.ModuleType):
                return ["module " + value.__name__.replace("asgiref_fast", "asgiref"), []]
            also_in = sorted(m for m, module in modules.items()
                             if m != home and vars(module).get(name, None) is value)
            from_stdlib = sorted(m for m, module in stdlib.items()
                                 if getattr(module, name, None) is value)
            if from_stdlib:
                return ["from " + ", ".join(from_stdlib), also_in]
            return ["class" if isinstance(value, type) else
                    "callable" if callable(value) else "value", also_in]

        for m, module in modules.items():
            record(m, {{name: what(name, getattr(module, name), m)
                       for name in dir(module) if not name.startswith("_")}})
    """)
    assert set(upstream) == set(MODULES), upstream
    for module in MODULES:
        theirs, mine = upstream[module], ours.get(module, {})
        missing = sorted(set(theirs) - set(mine))
        assert not missing, f"{module} lacks {missing}"
        for name, (kind, also_in) in theirs.items():
            # The same object as in upstream's other modules that have the
            # name (ours may have it in more: our modules import more).
            where_upstream_has_it = {m for m in MODULES if name in upstream[m]}
            seen = [mine[name][0], sorted(set(mine[name][1]) & where_upstream_has_it)]
            assert seen == [kind, also_in], f"{module}.{name}"
    assert upstream["asgiref.wsgi"]["AsyncToSync"] == ["class", ["asgiref.sync"]]


def test_the_re_exports_work_as_upstreams_do():
    upstream, ours = compare("""
        from unittest import mock
        import asgiref.sync, asgiref.wsgi
        from asgiref.wsgi import AsyncToSync
        record("same class", AsyncToSync is asgiref.sync.AsyncToSync)
        with mock.patch("asgiref.wsgi.AsyncToSync") as patched:
            record("patched", asgiref.wsgi.AsyncToSync is patched)
        record("restored", asgiref.wsgi.AsyncToSync is asgiref.sync.AsyncToSync)
    """)
    assert ours == upstream == {"same class": True, "patched": True, "restored": True}


ADDRESS = re.compile(r"<([\w.]+) object at 0x…>")


def test_a_missing_local_attribute():
    upstream, ours = compare("""
        import asyncio, re
        from asgiref.local import Local

        def observe(local, action):
            try:
                action()
            except AttributeError as exc:
                named = re.match(r"<([\\w.]+) object at (0x[0-9a-f]+)>", str(exc))
                return {
                    "type": type(exc).__name__,
                    "text": re.sub(r" at 0x[0-9a-f]+", " at 0x…", str(exc)),
                    "names the Local": bool(named) and int(named.group(2), 16) == id(local),
                    "name": exc.name,
                    "raised from": repr(exc.__context__),
                    "cause": repr(exc.__cause__),
                    "context shown": not exc.__suppress_context__,
                }

        async def in_a_task(local, action):
            return observe(local, action)

        for critical in (False, True):
            local = Local(thread_critical=critical)
            local.other = 1
            for where in ("sync", "async"):
                for verb, action in [("get", lambda: local.missing),
                                     ("delete", lambda: delattr(local, "missing"))]:
                    key = f"{'thread-critical' if critical else 'default'} {where} {verb}"
                    if where == "sync":
                        record(key, observe(local, action))
                    else:
                        record(key, asyncio.run(in_a_task(local, action)))
    """)
    assert "crash" not in upstream and "crash" not in ours, (upstream, ours)
    expected = {}
    for key, seen in upstream.items():
        seen = dict(seen)
        named = ADDRESS.match(seen["text"])
        if named:
            # "Missing Local attributes": the text names the Local that was
            # read, where asgiref's names its internal _CVar storage. The
            # rest of the text, the type, the name and the KeyError it is
            # raised from are asgiref's.
            assert named.group(1) == "asgiref.local._CVar" and not seen["names the Local"]
            kind = "_ThreadCriticalLocal" if key.startswith("thread-critical") else "_DefaultLocal"
            twin = "_cy" if "._cy." in ours[key]["text"] else "_pure"
            seen["text"] = seen["text"].replace(
                "asgiref.local._CVar", f"asgiref_fast.{twin}.local.{kind}")
            seen["names the Local"] = True
        expected[key] = seen
    assert ours == expected
    assert upstream["default sync get"]["raised from"] == "KeyError('missing')"


def test_names_a_local_keeps_for_itself():
    # Reading, setting and deleting each name on each kind of Local, in sync
    # and async code: asgiref's Local keeps some names for its internals
    # (reading them gives those; setting them does not replace them).
    upstream, ours = compare("""
        import asyncio
        from asgiref.local import Local

        NAMES = ["x", "_data", "_lock", "_storage", "_get_storage", "_task_vars", "_task_var"]
        VALUE = object()

        def read(local, name):
            try:
                value = getattr(local, name)
            except AttributeError:
                return "missing"
            return "the value set" if value is VALUE else "internal"

        def attempt(action):
            try:
                action()
                return "ok"
            except AttributeError as exc:
                return "AttributeError" + (": " + str(exc) if "object at" not in str(exc) else "")

        def probe(local, name):
            return [read(local, name), attempt(lambda: setattr(local, name, VALUE)),
                    read(local, name), attempt(lambda: delattr(local, name)), read(local, name)]

        async def in_a_task(local, name):
            return probe(local, name)

        for critical in (False, True):
            for where in ("sync", "async"):
                for name in NAMES:
                    local = Local(thread_critical=critical)
                    key = f"{'thread-critical' if critical else 'default'} {where} {name}"
                    record(key, probe(local, name) if where == "sync"
                           else asyncio.run(in_a_task(local, name)))
    """)
    assert upstream["default sync _lock"] == ["internal", "ok", "internal", "ok", "internal"]
    expected = dict(upstream)
    # "Names a thread-critical Local keeps": ours keeps _task_vars and
    # _task_var where asgiref's keeps _get_storage, and its backing
    # ContextVar is not readable as _data in async code.
    internal = ["internal", "ok", "internal", "ok", "internal"]
    plain = ["missing", "ok", "the value set", "ok", "missing"]
    for where in ("sync", "async"):
        expected[f"thread-critical {where} _get_storage"] = plain
        expected[f"thread-critical {where} _task_vars"] = internal
        expected[f"thread-critical {where} _task_var"] = internal
    expected["thread-critical async _data"] = [
        "missing", "AttributeError: Cannot set attribute '_data' on Local", "missing",
        "AttributeError", "missing"]
    assert ours == expected


def test_wsgi_texts():
    upstream, ours = compare("""
        import asyncio
        from asgiref.wsgi import WsgiToAsgi

        SCOPE = {"type": "http", "http_version": "1.1", "method": "GET", "path": "/",
                 "query_string": b"", "headers": []}

        async def run(app, messages, scope=SCOPE):
            sent = []

            async def receive():
                return messages.pop(0)

            async def send(message):
                sent.append(message["type"])

            try:
                await WsgiToAsgi(app)(scope, receive, send)
            except Exception as exc:
                return [type(exc).__name__, str(exc), sent]
            return ["returned", sent]

        def no_start_response(environ, start_response):
            return [b"body"]

        def empty_without_start_response(environ, start_response):
            return []

        def hello(environ, start_response):
            start_response("200 OK", [])
            return [b"hello"]

        request = {"type": "http.request", "body": b"x", "more_body": True}
        record("non-request message", asyncio.run(run(hello, [request, {"type": "http.disconnect"}])))
        record("no start_response", asyncio.run(run(no_start_response, [{"type": "http.request"}])))
        record("empty, no start_response",
               asyncio.run(run(empty_without_start_response, [{"type": "http.request"}])))
        record("non-HTTP scope", asyncio.run(run(hello, [], dict(SCOPE, type="websocket"))))
    """)
    assert ours == upstream
    assert upstream["non-request message"][:2] == [
        "ValueError", "WSGI wrapper received a non-HTTP-request message"]
    assert upstream["no start_response"][:2] == [
        "AttributeError", "'WsgiToAsgiInstance' object has no attribute 'response_start'"]


def test_the_shutdown_log_of_a_task_left_behind():
    upstream, ours = compare("""
        import asyncio, logging
        from asgiref.sync import async_to_sync

        messages = []

        class Keep(logging.Handler):
            def emit(self, entry):
                messages.append(entry.getMessage())

        logging.getLogger("asyncio").addHandler(Keep())

        async def leave_a_task_behind():
            async def fails_when_cancelled():
                try:
                    await asyncio.Future()
                except asyncio.CancelledError:
                    raise ValueError("cleanup failed")

            asyncio.ensure_future(fails_when_cancelled())
            await asyncio.sleep(0)

        async_to_sync(leave_a_task_behind)()
        record("logged", messages)
    """)
    assert [m.splitlines()[0] for m in upstream["logged"]] == ["unhandled exception during asyncio.run() shutdown"]
    assert ours == upstream
