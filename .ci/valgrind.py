"""The valgrind check of the compiled twins; run through .ci/valgrind.

``python .ci/valgrind.py workload`` exercises every compiled module briefly:
hops (ok, failing, cancelled), contexts, nested bridges, Local (both kinds),
the executors and work queues.

``python .ci/valgrind.py report XML...`` reads valgrind's XML output and
counts the errors and leaks whose stack passes through asgiref_fast/_cy:
CPython itself is not ours to judge, and leaves plenty at exit. Exit status
1 if any is found.
"""

import sys
import xml.etree.ElementTree as ET

OURS = "asgiref_fast/_cy/"


def workload(rounds: int = 30) -> None:
    import asyncio
    import contextvars
    import threading
    from concurrent.futures import Future

    import asgiref_fast
    from asgiref_fast.current_thread_executor import CurrentThreadExecutor
    from asgiref_fast.local import Local
    from asgiref_fast.sync import (
        SyncToAsync,
        ThreadSensitiveContext,
        async_to_sync,
        sync_to_async,
    )

    print(f"compiled twin: {asgiref_fast.COMPILED}", flush=True)
    shared, critical = Local(), Local(thread_critical=True)
    var = contextvars.ContextVar("var")

    def fail():
        raise KeyError("expected")

    def sync_side(i):
        assert shared.x == i
        shared.y = i
        var.set(i)
        critical.z = i
        del critical.z

        async def back():
            return await sync_to_async(lambda: shared.y)()

        return async_to_sync(back)()

    async def one(i):
        shared.x = i
        async with ThreadSensitiveContext():
            assert await sync_to_async(sync_side)(i) == i
            assert var.get() == i and shared.y == i
            try:
                await sync_to_async(fail)()
            except KeyError:
                pass
            blocked = threading.Event()
            task = asyncio.create_task(sync_to_async(blocked.wait)(5))
            queued = asyncio.create_task(sync_to_async(int)())
            await asyncio.sleep(0)
            task.cancel()
            queued.cancel()
            blocked.set()
            await asyncio.gather(task, queued, return_exceptions=True)
        assert await sync_to_async(abs, thread_sensitive=False)(-i) == i
        local = Local()
        local.a = i
        del local.a
        del shared.x

    async def main():
        for i in range(rounds):
            await one(i)
        await asyncio.gather(*(one(i) for i in range(rounds)))

    asyncio.run(main())

    async def from_sync():
        return await sync_to_async(threading.get_ident)()

    for _ in range(rounds):
        assert async_to_sync(from_sync)() == threading.get_ident()
    # The Executor faces: a lane, and a thread waiting in async_to_sync.
    assert SyncToAsync.single_thread_executor.submit(int, "7").result(timeout=10) == 7
    executor, finished = CurrentThreadExecutor(None), Future()

    def from_another_thread():
        finished.set_result(executor.submit(threading.get_ident).result(timeout=10))

    threading.Thread(target=from_another_thread).start()
    executor.run_until_future(finished)
    assert finished.result() == threading.get_ident()
    print("workload done", flush=True)


def report(paths: "list[str]") -> int:
    found = 0
    for path in paths:
        root = ET.parse(path).getroot()
        for error in root.iter("error"):
            objs = [obj.text or "" for obj in error.iter("obj")]
            if not any(OURS in obj for obj in objs):
                continue
            found += 1
            kind = error.findtext("kind")
            what = error.findtext("xwhat/text") or error.findtext("what")
            print(f"{path}: {kind}: {what}")
            for frame in error.iter("frame"):
                fn = frame.findtext("fn") or "?"
                where = frame.findtext("file") or frame.findtext("obj") or ""
                print(f"    {fn}  {where}:{frame.findtext('line') or ''}")
        counts = {}
        for error in root.iter("error"):
            kind = error.findtext("kind")
            counts[kind] = counts.get(kind, 0) + 1
        print(f"{path}: all of the process's records: {counts or 'none'}")
    print(f"errors and leaks through {OURS}: {found}")
    return 1 if found else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["workload"]:
        workload()
    elif sys.argv[1:2] == ["report"]:
        sys.exit(report(sys.argv[2:]))
    else:
        sys.exit(__doc__)
