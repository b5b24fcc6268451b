"""Spinning before sleeping (src_pyx/spin.h) changes only how soon a
waiting thread takes up work handed to it: never what it is handed, and never
more than a brief burst of CPU while nothing comes; and it happens only while
the machine has a core to spare.

Run under each setting (the pure twin never spins, whatever the setting). The
machine is made to look idle or busy to the spinning code (a stand-in for
/proc/loadavg), so that what runs does not depend on this machine's load.
"""

import asyncio
import contextvars
import os
import subprocess
import sys
import threading
import time

import pytest

import asgiref_fast
from asgiref_fast import _impl
from asgiref_fast.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

WAIT = 10.0  # seconds; every wait in this file has a bound

# Spinning's settings and counters are process-wide, and the tests load the
# machine: threads running one test at once would change what another sees.
pytestmark = pytest.mark.thread_unsafe(reason="process-wide spinning settings and counters, machine load")

IDLE, BUSY = "0.00 0.00 0.00 1/100 1\n", "9.00 9.00 9.00 999/1000 1\n"  # as /proc/loadavg

# (spinning settings, what the machine looks like)
SETTINGS = {
    "off": (dict(max_spinners=0), IDLE),
    "one spinner": (dict(max_spinners=1, spin_us=50, handoff_us=10), IDLE),
    # Long spins by many: hand-offs still must not be lost or doubled.
    "long spins": (dict(max_spinners=8, spin_us=5000, handoff_us=2000), IDLE),
    "busy machine": (dict(max_spinners=8, spin_us=5000, handoff_us=2000), BUSY),
}

var: "contextvars.ContextVar[object]" = contextvars.ContextVar("var")


@pytest.fixture
def machine(tmp_path):
    """machine(IDLE or BUSY): the spinning code sees the machine so, until
    the test ends."""
    probe = tmp_path / "loadavg"

    def look(text):
        probe.write_text(text)
        _impl.workqueue._probe_with(str(probe))

    yield look
    _impl.workqueue._probe_with(None)


@pytest.fixture(params=list(SETTINGS))
def spinning(request, machine):
    settings, load = SETTINGS[request.param]
    machine(load)
    previous = _impl.workqueue.configure_spinning(**settings)
    yield request.param
    _impl.workqueue.configure_spinning(**previous)


def _hops(n):
    async def main():
        for _ in range(n):
            await sync_to_async(lambda: None)()

    asyncio.run(asyncio.wait_for(main(), WAIT))


@pytest.mark.parametrize("load", ["idle", "busy"])
def test_threads_spin_only_while_the_machine_has_a_core_to_spare(machine, load):
    machine(IDLE if load == "idle" else BUSY)
    previous = _impl.workqueue.configure_spinning(max_spinners=2, spin_us=200, handoff_us=10)
    try:
        _hops(10)  # the loop and the lane exist
        before = _impl.workqueue.spinning_report()
        _hops(200)
        after = _impl.workqueue.spinning_report()
    finally:
        _impl.workqueue.configure_spinning(**previous)
    assert after["core_to_spare"] is (load == "idle")
    spins, refused = after["spins"] - before["spins"], after["refused_busy"] - before["refused_busy"]
    if not asgiref_fast.COMPILED:
        assert spins == refused == 0  # never spins
    elif load == "idle":
        assert spins > 0 and refused == 0, (spins, refused)
    else:
        assert spins == 0 and refused > 0, (spins, refused)


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="no machine-wide count of runnable threads")
@pytest.mark.skipif((os.cpu_count() or 1) > 8, reason="would start a busy process per core")
def test_no_thread_spins_while_every_core_is_busy():
    # As many busy processes as cores: every reading of the machine counts
    # them and the thread reading, one more than there are cores.
    previous = _impl.workqueue.configure_spinning(max_spinners=2, spin_us=200, handoff_us=10)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        deadline = time.monotonic() + WAIT
        while _impl.workqueue.spinning_report()["core_to_spare"] is not False:
            assert time.monotonic() < deadline, "the busy processes never showed in /proc/loadavg"
            time.sleep(0.01)
        _hops(10)  # any reading of the machine from before they ran is stale now
        before = _impl.workqueue.spinning_report()
        _hops(200)
        after = _impl.workqueue.spinning_report()
    finally:
        for process in busy:
            process.kill()
        for process in busy:
            process.wait(WAIT)
        _impl.workqueue.configure_spinning(**previous)
    assert after["spins"] == before["spins"]
    if asgiref_fast.COMPILED:
        assert after["refused_busy"] > before["refused_busy"]


@pytest.mark.skipif(not asgiref_fast.COMPILED, reason="the pure twin never spins")
def test_a_cpu_quota_caps_the_spinners(tmp_path):
    # A container's CPU limit: spinning would spend the quota the process's
    # other threads need, so fewer (or no) threads spin.
    read = _impl.workqueue._read_quota
    (tmp_path / "v2").write_text("150000 100000\n")
    (tmp_path / "max").write_text("max 100000\n")
    (tmp_path / "quota").write_text("50000\n")
    (tmp_path / "period").write_text("100000\n")
    (tmp_path / "unlimited").write_text("-1\n")
    assert read(str(tmp_path / "v2"), None) == 1.5
    assert read(str(tmp_path / "max"), None) is None
    assert read(str(tmp_path / "quota"), str(tmp_path / "period")) == 0.5
    assert read(str(tmp_path / "unlimited"), str(tmp_path / "period")) is None
    assert read(str(tmp_path / "missing"), None) is None
    assert 0 < _impl.workqueue._cpus_granted() <= (os.cpu_count() or 1)


def test_settings_round_trip():
    previous = _impl.workqueue.configure_spinning(max_spinners=3, spin_us=7, handoff_us=2)
    try:
        assert _impl.workqueue.configure_spinning() == {"max_spinners": 3, "spin_us": 7, "handoff_us": 2}
        _impl.workqueue.configure_spinning(max_spinners=-1)  # clamped, not refused
        assert _impl.workqueue.configure_spinning()["max_spinners"] == 0
    finally:
        _impl.workqueue.configure_spinning(**previous)
    assert _impl.workqueue.configure_spinning() == previous


async def _double_on_a_lane(x):
    var.set(("async", x))
    return await sync_to_async(lambda: x * 2)()


def _nested(x):
    return async_to_sync(_double_on_a_lane)(x) + 1


def test_hops_keep_their_outcomes_and_contexts(spinning):
    async def main():
        for i in range(100):
            assert await sync_to_async(lambda i=i: i)() == i
        for i in range(30):
            assert await sync_to_async(_nested)(i) == 2 * i + 1
        with pytest.raises(ZeroDivisionError):
            await sync_to_async(lambda: 1 / 0)()

        def set_var():
            var.set("set on the lane")

        await sync_to_async(set_var)()
        assert var.get() == "set on the lane"
        await sync_to_async(_nested)(5)
        assert var.get() == ("async", 5)  # back through both hops

        async def request():
            async with ThreadSensitiveContext():
                first = await sync_to_async(threading.get_ident)()
                for _ in range(5):
                    assert await sync_to_async(threading.get_ident)() == first
                return first

        threads = await asyncio.gather(*(request() for _ in range(16)))
        assert len(set(threads)) == 16  # one lane per context, none shared

        gathered = await asyncio.gather(
            *(sync_to_async(lambda i=i: i, thread_sensitive=False)() for i in range(500))
        )
        assert gathered == list(range(500))

    asyncio.run(asyncio.wait_for(main(), WAIT))
    assert [async_to_sync(_double_on_a_lane)(i) for i in range(50)] == [2 * i for i in range(50)]


def test_threads_hand_work_to_each_other_in_order(spinning):
    # Many producers against one consumer, as a lane's queue is used: every
    # item arrives, once, in each producer's order.
    queue = _impl.workqueue.WorkQueue()
    got = []

    def consume():
        while (item := queue.pop(WAIT)) is not None:
            got.append(item)

    def produce(tag):
        for i in range(2000):
            queue.push((tag, i))

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(t,), daemon=True) for t in range(3)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(WAIT)
        assert not thread.is_alive()
    queue.close()
    consumer.join(WAIT)
    assert not consumer.is_alive()
    assert sorted(got) == sorted((t, i) for t in range(3) for i in range(2000))
    for tag in range(3):
        assert [i for t, i in got if t == tag] == list(range(2000))


def _cpu_during(fn):
    """Process CPU seconds (all threads) spent while fn() runs."""
    started = time.process_time()
    fn()
    return time.process_time() - started


def test_a_loop_waiting_on_a_slow_call_does_not_busy_wait(spinning):
    # The loop's thread spins only briefly before sleeping in select: over
    # a call of 0.5 s it must use a small fraction of that.
    async def main():
        await sync_to_async(lambda: None)()  # the lane and the inbox exist
        await sync_to_async(time.sleep)(0.5)

    cpu = _cpu_during(lambda: asyncio.run(asyncio.wait_for(main(), WAIT)))
    assert cpu < 0.25, f"{cpu:.3f} s of CPU for a 0.5 s wait"


def test_an_idle_lane_does_not_busy_wait(spinning):
    async def hop_then_idle():
        for _ in range(20):
            await sync_to_async(lambda: None)()
        await asyncio.sleep(0.5)  # the lane waits for work that never comes

    cpu = _cpu_during(lambda: asyncio.run(asyncio.wait_for(hop_then_idle(), WAIT)))
    assert cpu < 0.25, f"{cpu:.3f} s of CPU for 0.5 s idle"


def test_a_timer_is_not_late_by_a_spin(machine):
    # A loop waiting on a call may spin before it sleeps in select; the spin
    # must count against select's timeout, or the loop's next timer fires late
    # by it. With spins as long as the timer's delay, the loop spins until the
    # timer is due: then it must fire, not a whole delay later.
    delay = 0.2
    machine(IDLE)
    # Two slots: the lane, busy with the call, may still hold one for a moment.
    previous = _impl.workqueue.configure_spinning(max_spinners=2, spin_us=int(delay * 1e6))
    try:
        async def main():
            release = threading.Event()
            await sync_to_async(lambda: None)()  # the lane and the inbox exist
            call = asyncio.ensure_future(sync_to_async(release.wait)(WAIT))  # outstanding throughout
            try:
                started = time.monotonic()
                await asyncio.sleep(delay)
                return time.monotonic() - started
            finally:
                release.set()
                await call

        slept = asyncio.run(asyncio.wait_for(main(), WAIT))
    finally:
        _impl.workqueue.configure_spinning(**previous)
    assert 0.99 * delay <= slept < 1.5 * delay, f"a {delay} s timer fired after {slept:.3f} s"


def test_a_timed_pop_is_not_late_by_a_spin(machine):
    # The same for a thread waiting on its queue with a timeout (a lane's
    # idle retirement): the spin is part of the wait, not added to it.
    delay = 0.2
    machine(IDLE)
    previous = _impl.workqueue.configure_spinning(max_spinners=2, spin_us=int(delay * 1e6))
    try:
        queue = _impl.workqueue.WorkQueue()
        started = time.monotonic()
        assert queue.pop(delay) is None
        waited = time.monotonic() - started
    finally:
        _impl.workqueue.configure_spinning(**previous)
    assert 0.99 * delay <= waited < 1.5 * delay, f"pop({delay}) returned after {waited:.3f} s"


@pytest.mark.parametrize("value, spins", [("1", False), ("0", True), ("", True)])
def test_no_spin_environment_variable(value, spins):
    env = dict(os.environ, ASGIREF_FAST_NO_SPIN=value)
    out = subprocess.run(
        [sys.executable, "-c", "import asgiref_fast, asgiref_fast._impl as i; "
         "print(asgiref_fast.COMPILED, i.workqueue.configure_spinning()['max_spinners'])"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()
    compiled, max_spinners = out[0] == "True", int(out[1])
    # The pure twin never spins; the compiled one leaves a core to the GIL.
    expected = int(_impl.workqueue._cpus_granted()) - 1 if compiled and spins else 0
    assert max_spinners == expected


def test_a_busy_loop_still_sees_io_after_hops(spinning):
    # The compiled twin wraps the select of a loop that hops (see
    # _SpinningSelect): readiness must still come through, whether the loop
    # is busy (polling between passes) or waits on a call, and whether it is
    # there before a pass or arrives during one.
    import socket

    async def main():
        loop = asyncio.get_running_loop()
        await sync_to_async(lambda: None)()  # this loop's inbox exists
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        got = []
        readable = asyncio.Event()

        def on_readable():
            got.append(reader.recv(100))
            readable.set()

        loop.add_reader(reader.fileno(), on_readable)
        spins = [0]

        def keep_busy():  # a ready callback in every pass: select(0) each time
            spins[0] += 1
            if not readable.is_set():
                loop.call_soon(keep_busy)

        try:
            loop.call_soon(keep_busy)
            threading.Thread(target=writer.send, args=(b"ping",), daemon=True).start()
            await asyncio.wait_for(readable.wait(), WAIT)
            assert got == [b"ping"]
            assert spins[0] >= 1
            readable.clear()
            writer.send(b"pong")  # ready before the next pass
            loop.call_soon(keep_busy)
            await asyncio.wait_for(readable.wait(), WAIT)
            assert got == [b"ping", b"pong"]
            readable.clear()

            def send_later():
                time.sleep(0.05)  # while the loop waits on the call below
                writer.send(b"while hopping")

            await sync_to_async(send_later)()
            await asyncio.wait_for(readable.wait(), WAIT)
            assert got[-1] == b"while hopping"
        finally:
            loop.remove_reader(reader.fileno())
            reader.close()
            writer.close()

    asyncio.run(asyncio.wait_for(main(), WAIT))
