"""``asgiref-fast run SERVER ...``: every server, with asgiref_fast in effect
in every worker, from the interpreter's start-up (where ``install()`` in the
application would come too late: daphne imports asgiref before loading it).

Each server serves a tiny ASGI app on 127.0.0.1 that says whether the
``asgiref`` it imports is asgiref_fast's stand-in; every process a server
starts is killed at the end, and every wait is bounded."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import asgiref_fast

BIN = str(Path(sys.executable).parent)  # where this environment's servers are installed
START_TIMEOUT = 90.0  # seconds for a server to answer its first request (a busy machine)

APP = '''
import json, os, sys

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    import asgiref.sync
    while (await receive()).get("more_body"):
        pass
    body = json.dumps({
        "stand_in": asgiref.sync.__name__ == "asgiref_fast.sync",
        "asgiref_fast": "asgiref_fast._impl" in sys.modules,
        "pid": os.getpid(),
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


def environment(**changes: str) -> "dict[str, str]":
    env = {k: v for k, v in os.environ.items() if k != "ASGIREF_FAST"}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env.update(changes)
    return env


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asgiref_fast", *args], env=environment(**env),
                          capture_output=True, text=True, timeout=60)


def test_run_sets_the_variable_and_executes_the_command():
    code = "import os, sys, asgiref.sync; print(os.environ['ASGIREF_FAST'], asgiref.sync.__name__); sys.exit(3)"
    proc = run("run", sys.executable, "-c", code, ASGIREF_FAST="off")  # run switches it on whatever it was
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "1 asgiref_fast.sync\n", "")
    assert run("run", "--", sys.executable, "-c", "import sys; sys.exit(4)").returncode == 4


def test_run_without_a_command():
    assert run("run").returncode == 2
    missing = run("run", "no-such-command-asgiref-fast")
    assert missing.returncode == 127
    assert missing.stderr == "asgiref-fast run: command not found: no-such-command-asgiref-fast\n"


def test_version():
    proc = run("--version")
    expected = f"asgiref-fast {asgiref_fast.__version__} (the API of asgiref {asgiref_fast.ASGIREF_VERSION})\n"
    assert (proc.returncode, proc.stdout) == (0, expected), proc.stderr


def test_console_script():
    script = shutil.which("asgiref-fast", path=BIN)
    if script is None:
        pytest.skip("the asgiref-fast console script is not installed beside this Python")
    proc = subprocess.run([script, "run", sys.executable, "-c", "import asgiref.sync as s; print(s.__name__)"],
                          env=environment(), capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "asgiref_fast.sync\n"), proc.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Each as a user would start it, with 2 workers where the server has them.
SERVERS = {
    "uvicorn": lambda port: ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
    "gunicorn": lambda port: ["gunicorn", "-k", "uvicorn.workers.UvicornWorker", "--preload", "-w", "2",
                              "-b", f"127.0.0.1:{port}", "app:app"],
    "daphne": lambda port: ["daphne", "-b", "127.0.0.1", "-p", str(port), "app:app"],
    "hypercorn": lambda port: ["hypercorn", "-b", f"127.0.0.1:{port}", "-w", "2", "app:app"],
    "granian": lambda port: ["granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2", "app:app"],
}


def get(port: int) -> "dict | None":
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()


def stop(server: subprocess.Popen) -> None:
    # The server and every worker it started share its process group.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            server.poll()  # reaps the leader once it exits
            try:
                os.killpg(server.pid, 0)
            except ProcessLookupError:
                return  # every member is gone
            time.sleep(0.1)


@pytest.mark.skipif(sys.platform == "win32", reason="process groups, and gunicorn, are POSIX")
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(SERVERS))
def test_every_server_runs_with_asgiref_fast(name, tmp_path):
    if shutil.which(name, path=BIN + os.pathsep + os.environ.get("PATH", "")) is None:
        pytest.skip(f"{name} is not installed (pip install {name})")
    if name == "gunicorn":
        pytest.importorskip("uvicorn.workers", reason="gunicorn's uvicorn worker is not installed")
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "asgiref_fast", "run", *SERVERS[name](port)],
            cwd=tmp_path, env=environment(PYTHONPATH=str(tmp_path)), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        first = None
        while first is None and time.monotonic() < deadline and server.poll() is None:
            first = get(port)
            if first is None:
                time.sleep(0.2)
        assert first is not None, f"{name} did not answer (exit {server.poll()}):\n{log.read_text()}"
        answers = [first] + [get(port) for _ in range(7)]
        assert all(a is not None and a["stand_in"] and a["asgiref_fast"] for a in answers), (
            f"{answers}\n{log.read_text()}")
    finally:
        stop(server)
