"""Local: task-local in async code, thread-local in sync code, shared across
the sync/async bridges, and never leaked to unrelated threads."""

import asyncio
import contextvars
import threading

import pytest

from asgiref_fast.local import Local, _DefaultLocal, _ThreadCriticalLocal
from asgiref_fast.sync import async_to_sync, sync_to_async

from _reliability import Garbage


def in_thread(fn, context=None):
    """Run *fn* on a new thread (optionally inside *context*), return its result."""
    box = {}

    def target():
        try:
            box["value"] = context.run(fn) if context is not None else fn()
        except BaseException as exc:  # reported in the caller
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "thread hung"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.mark.parametrize("critical", [False, True])
def test_set_get_delete(critical):
    local = Local(thread_critical=critical)
    local.name = "value"
    assert local.name == "value"
    assert getattr(local, "other", "default") == "default"
    del local.name
    assert not hasattr(local, "name")
    with pytest.raises(AttributeError):
        del local.name


def test_types_and_subclassing():
    assert type(Local()) is _DefaultLocal
    assert type(Local(thread_critical=True)) is _ThreadCriticalLocal
    assert isinstance(Local(), Local)

    class Mine(Local):
        pass

    with pytest.raises(TypeError, match="cannot be subclassed"):
        Mine()


def test_reserved_data_name():
    local = Local()
    local.kept = 1
    with pytest.raises(AttributeError):
        local._data = "x"
    assert local.kept == 1
    assert isinstance(local._data, contextvars.ContextVar)


def test_missing_attribute_names_key():
    with pytest.raises(AttributeError, match="'nothing'"):
        Local().nothing


@pytest.mark.parametrize("critical", [False, True])
def test_sync_threads_do_not_share(critical):
    local = Local(thread_critical=critical)
    local.value = "main"

    def other():
        seen = hasattr(local, "value")
        local.value = "other"
        return seen, local.value

    assert in_thread(other) == (False, "other")
    assert local.value == "main"


def test_inherited_context_is_not_visible():
    # What Python 3.14's thread_inherit_context does: a new thread starting
    # in a copy of its parent's context must still not see the parent's data.
    local = Local()
    local.value = "parent"

    def child():
        seen = hasattr(local, "value")
        local.value = "child"
        return seen, local.value

    assert in_thread(child, contextvars.copy_context()) == (False, "child")
    assert local.value == "parent"


def test_inherited_context_hides_data_even_after_adoption_elsewhere():
    # Data the context carried to another thread through async_to_sync stays
    # visible there, but a third thread inheriting that context sees nothing.
    local = Local()
    local.value = 1

    async def peek():
        return local.value, contextvars.copy_context()

    value, context = async_to_sync(peek)()
    assert value == 1
    assert in_thread(lambda: hasattr(local, "value"), context) is False


def test_value_flows_through_async_to_sync_and_back():
    local = Local()
    local.value = 1

    async def bump():
        assert local.value == 1
        local.value = 2

    async_to_sync(bump)()
    assert local.value == 2


@pytest.mark.asyncio
async def test_value_flows_through_sync_to_async_and_back():
    local = Local()
    local.value = "loop"

    def work():
        seen = local.value
        local.value = "worker"
        return seen

    assert await sync_to_async(work)() == "loop"
    assert local.value == "worker"


@pytest.mark.asyncio
async def test_tasks_see_a_copy():
    local = Local()
    local.value = 0

    async def child():
        assert local.value == 0
        local.value = 1
        del local.value
        local.other = 2
        return local.other

    assert await asyncio.create_task(child()) == 2
    assert local.value == 0
    assert not hasattr(local, "other")


@pytest.mark.asyncio
async def test_thread_critical_not_shared_with_worker_thread():
    local = Local(thread_critical=True)
    local.value = "loop"

    def work():
        seen = hasattr(local, "value")
        local.value = "worker"
        return seen

    assert await sync_to_async(work)() is False
    assert local.value == "loop"


def test_thread_critical_is_per_thread_in_sync_code_not_per_context():
    local = Local(thread_critical=True)
    contextvars.copy_context().run(setattr, local, "value", 5)
    assert local.value == 5


@pytest.mark.asyncio
async def test_thread_critical_is_per_task_in_async_code():
    local = Local(thread_critical=True)
    local.value = 1

    async def child():
        local.value = 2

    await asyncio.create_task(child())
    assert local.value == 1


def test_concurrent_threads_hammering_one_local():
    local = Local()
    errors = []

    def worker(n):
        for i in range(2000):
            local.value = (n, i)
            if local.value != (n, i):
                errors.append((n, i, local.value))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_no_reference_cycles():
    with Garbage() as garbage:
        for critical in (False, True):
            local = Local(thread_critical=critical)
            local.value = 1
            with pytest.raises(AttributeError):
                local.missing
            del local
    assert garbage.count == 0, garbage.sample
