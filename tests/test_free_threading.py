"""Free-threaded CPython (3.13t and later): the compiled twins keep the GIL
disabled, and the code that watches the GIL elsewhere sees none there."""

import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

import asgiref_fast

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

needs_free_threaded = pytest.mark.skipif(not FREE_THREADED, reason="only on a free-threaded CPython build")


def compiled_or_skip():
    if not asgiref_fast.COMPILED:
        pytest.skip("checks the compiled twins (the pure twin imports no extension module)")


@needs_free_threaded
@pytest.mark.timeout(120)
def test_compiled_twins_never_enable_the_gil():
    # An extension module that does not declare free-threading support makes
    # CPython enable the GIL as it is imported, for the rest of the process.
    # A fresh interpreter, so that nothing imported earlier (test plugins,
    # other libraries) decides it.
    compiled_or_skip()
    script = textwrap.dedent("""
        import asyncio, importlib, pkgutil, sys, warnings
        warnings.simplefilter("error")  # "The global interpreter lock (GIL) has been enabled"
        assert not sys._is_gil_enabled(), "enabled before asgiref_fast was imported"
        import asgiref_fast, asgiref_fast._cy
        assert asgiref_fast.COMPILED
        names = [m.name for m in pkgutil.iter_modules(asgiref_fast._cy.__path__)]
        for name in names:
            importlib.import_module("asgiref_fast._cy." + name)
        for name in ("sync", "local", "current_thread_executor", "server", "wsgi",
                     "compatibility", "testing", "timeout", "typing"):
            importlib.import_module("asgiref_fast." + name)
        from asgiref_fast.local import Local
        from asgiref_fast.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

        local = Local()

        def sync_side(i):
            local.x = i
            return async_to_sync(async_side)(i)

        async def async_side(i):
            return await sync_to_async(lambda: local.x + i)()

        async def main():
            async with ThreadSensitiveContext():
                assert await sync_to_async(sync_side)(1) == 2
            results = await asyncio.gather(
                *(sync_to_async(sync_side, thread_sensitive=False)(i) for i in range(50)))
            assert results == [2 * i for i in range(50)]

        asyncio.run(main())
        assert async_to_sync(asyncio.sleep)(0, 5) == 5
        print(sorted(names), sys._is_gil_enabled())
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}  # the default: decided by imports
    env.pop("ASGIREF_FAST_NO_EXTENSIONS", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100, env=env)
    assert proc.returncode == 0, proc.stderr
    names, enabled = proc.stdout.strip().rsplit(" ", 1)
    assert "workqueue" in names and "hop" in names, names
    assert enabled == "False", proc.stdout


@needs_free_threaded
def test_spinning_sees_no_gil_to_wait_for():
    # gil.h: with Py_GIL_DISABLED there is no GIL flag to read, so a woken
    # thread never waits for one (asf_handoff returns at once).
    compiled_or_skip()
    from asgiref_fast._cy import workqueue

    assert workqueue.spinning_report()["sees_gil"] is False


@pytest.mark.skipif(FREE_THREADED, reason="a build with a GIL: checks the flag spinning reads")
def test_spinning_sees_the_gil_where_there_is_one():
    compiled_or_skip()
    from asgiref_fast._cy import workqueue

    if sys.platform == "win32":
        pytest.skip("gil.h reads no flag with MSVC")
    assert workqueue.spinning_report()["sees_gil"] is True
