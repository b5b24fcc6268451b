"""``bench --load N``: N busy-loop processes beside the whole bench, so that it
runs as on a server at peak, where no core sits idle for a spinning thread.

Each is a Python interpreter looping on pure bytecode. Should the bench be
killed before it could stop them, each also stops by itself within a second or
so of its parent's end (the bench's tests rely on that being slow enough to
tell from the bench stopping them).
"""

import os
import subprocess
import sys
from contextlib import contextmanager

# The marker comment lets a test (or a person running ps) recognise them.
CODE = """# asgiref_fast bench --load
import os, sys
parent = int(sys.argv[1])  # not os.getppid(): the bench may be gone already
while os.getppid() == parent:
    for _ in range(30_000_000):
        pass
"""


def start(count: int) -> "list[subprocess.Popen]":
    processes: "list[subprocess.Popen]" = []
    try:
        for _ in range(count):
            # A session of their own: a Ctrl-C at the terminal reaches the
            # bench, which stops them, rather than each of them.
            processes.append(subprocess.Popen(
                [sys.executable, "-c", CODE, str(os.getpid())], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            ))
    except BaseException:
        stop(processes)
        raise
    return processes


def stop(processes: "list[subprocess.Popen]") -> None:
    """Kills and reaps every one; raises if one survives."""
    for process in processes:
        if process.poll() is None:
            process.kill()
    survivors = []
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            survivors.append(process.pid)
    if survivors:
        raise RuntimeError(f"busy-loop processes {survivors} survived SIGKILL")


@contextmanager
def load(count: int):
    """*count* busy-loop processes running for the duration of the block,
    stopped however it ends."""
    processes = start(count)
    try:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a busy-loop process exited at once (status {process.returncode})")
        yield [process.pid for process in processes]
    finally:
        stop(processes)


def describe(count: int) -> str:
    cpus = os.cpu_count() or 1
    if not count:
        return f"{cpus} CPUs, no added load"
    return f"{cpus} CPUs, beside {count} busy-loop process{'es' * (count > 1)} (--load {count})"
