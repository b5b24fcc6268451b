"""Differential tests (see differential.py): each scenario runs under upstream
asgiref 3.13.0 and under this run's twin, in fresh interpreters, and what a
user can observe must be the same."""

import pytest

from differential import compare, upstream_available

pytestmark = [
    pytest.mark.skipif(not upstream_available(), reason="upstream asgiref is not installed"),
    pytest.mark.timeout(180),
]


def test_thread_sensitive_calls_share_one_thread_and_not_the_loops():
    upstream, ours = compare("""
        import asyncio
        from asgiref.sync import sync_to_async

        async def main():
            record("loop", thread_label())
            seen = [await sync_to_async(thread_label)() for _ in range(3)]
            record("hops", seen)

        asyncio.run(main())
    """)
    assert ours == upstream
    assert upstream["hops"][0] != upstream["loop"]


def test_an_error_reaches_the_caller_with_its_type_and_text():
    upstream, ours = compare("""
        import asyncio
        from asgiref.sync import async_to_sync, sync_to_async

        def fail():
            raise KeyError("nope")

        async def main():
            try:
                await sync_to_async(fail)()
            except Exception as exc:
                record("error", [type(exc).__name__, str(exc)])

        async_to_sync(main)()
    """)
    assert ours == upstream == {"error": ["KeyError", "'nope'"]}
