import asyncio
import warnings

import pytest

from asgiref_fast.timeout import timeout


def make_timeout(*args, **kwargs):
    """Build the deprecated context manager without the warning noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return timeout(*args, **kwargs)


async def in_task(coro, limit=5):
    # A fresh task per scenario, with a guard against hangs.
    return await asyncio.wait_for(coro, limit)


@pytest.mark.asyncio
async def test_construction_warns_pointing_at_caller():
    with pytest.warns(DeprecationWarning, match=r"asyncio\.timeout\(\)") as record:
        timeout(1)
    assert len(record) == 1
    assert record[0].filename == __file__


def test_loop_argument_is_deprecated_too():
    loop = asyncio.new_event_loop()
    try:
        with pytest.warns(DeprecationWarning) as record:
            cm = timeout(1, loop=loop)
        messages = [str(w.message) for w in record]
        assert any("loop argument" in m for m in messages)
        assert any("asyncio.timeout()" in m for m in messages)

        async def use():
            async with cm:
                await asyncio.sleep(0)
            return cm.expired

        assert loop.run_until_complete(use()) is False
    finally:
        loop.close()


def test_needs_running_loop_without_loop_argument():
    with pytest.raises(RuntimeError):
        make_timeout(1)


@pytest.mark.asyncio
async def test_fast_body_does_not_expire():
    async def scenario():
        cm = make_timeout(10)
        assert cm.remaining is None  # not armed yet
        async with cm as entered:
            assert entered is cm
            first = cm.remaining
            assert 0 < first <= 10
            await asyncio.sleep(0)
            assert cm.remaining <= first
        assert cm.expired is False
        return "done"

    assert await in_task(scenario(), limit=5) == "done"


@pytest.mark.asyncio
async def test_slow_body_raises_timeout_error():
    cm = make_timeout(0.02)

    async def scenario():
        async with cm:
            await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await in_task(scenario())
    assert cm.expired is True
    assert cm.remaining == 0.0


@pytest.mark.asyncio
async def test_sync_with_statement_inside_a_task():
    cm = make_timeout(0.02)

    async def scenario():
        with cm:
            await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await in_task(scenario())
    assert cm.expired is True

    fine = make_timeout(5)

    async def quick():
        with fine as entered:
            await asyncio.sleep(0)
        return entered

    assert await in_task(quick()) is fine
    assert fine.expired is False


@pytest.mark.asyncio
async def test_none_disables_the_timeout():
    cm = make_timeout(None)

    async def scenario():
        async with cm:
            assert cm.remaining is None
            await asyncio.sleep(0.02)
        return cm.expired

    assert await in_task(scenario()) is False
    assert cm.remaining is None


@pytest.mark.asyncio
@pytest.mark.parametrize("value", [0, -1])
async def test_non_positive_timeout_expires_at_first_await(value):
    cm = make_timeout(value)

    async def scenario():
        async with cm:
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        await in_task(scenario())
    assert cm.expired is True
    assert cm.remaining is None


@pytest.mark.asyncio
async def test_zero_timeout_with_no_await_in_body_is_harmless():
    cm = make_timeout(0)

    async def scenario():
        with cm:
            pass
        # The already-scheduled cancellation finds the block exited.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return cm.expired

    assert await in_task(scenario()) is False


@pytest.mark.asyncio
async def test_other_exceptions_pass_through_and_disarm():
    cm = make_timeout(0.05)

    async def scenario():
        with pytest.raises(LookupError):
            async with cm:
                raise LookupError("nope")
        await asyncio.sleep(0.1)  # would be cancelled if still armed
        return cm.expired

    assert await in_task(scenario()) is False


@pytest.mark.asyncio
async def test_outside_cancellation_is_not_turned_into_timeout():
    cm = make_timeout(10)
    entered = asyncio.Event()

    async def scenario():
        async with cm:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(scenario())
    async with asyncio.timeout(5):
        await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert cm.expired is False


@pytest.mark.asyncio
async def test_entering_outside_a_task_is_an_error():
    loop = asyncio.get_running_loop()
    cm = make_timeout(1)
    outcome = loop.create_future()

    def callback():
        try:
            with cm:
                pass
        except RuntimeError as exc:
            outcome.set_result(exc)
        else:
            outcome.set_result(None)

    loop.call_soon(callback)
    exc = await asyncio.wait_for(outcome, 5)
    assert isinstance(exc, RuntimeError)
    assert "inside a task" in str(exc)
