"""Load comparison: Django's sync ORM view under a real uvicorn, on upstream
asgiref and on asgiref_fast's compiled and pure twins. From a clean clone:

    python -m pip install -e ".[test]" && python bench/load.py

Each round starts one uvicorn process per implementation (a socket bound here
on 127.0.0.1; asgiref_fast switched on by ASGIREF_FAST=1, the way a deployment
would), checks on /facts/ that the server runs the asgiref it should, warms it
up, then loads /notes/ (tests/djangoproject, default middleware, SQLite) for
--duration seconds with wrk if it is on PATH, else with Python clients in
separate processes. Implementations alternate within each round, so a noisy
machine's drift hits all alike; the table gives medians over the rounds.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from importlib.machinery import PathFinder
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = "/notes/"

# name: (extra environment, the asgiref.sync module the server must run, compiled?)
IMPLEMENTATIONS = {
    "upstream asgiref": ({}, "asgiref.sync", None),
    "asgiref_fast compiled": ({"ASGIREF_FAST": "1"}, "asgiref_fast.sync", True),
    "asgiref_fast pure": ({"ASGIREF_FAST": "1", "ASGIREF_FAST_NO_EXTENSIONS": "1"}, "asgiref_fast.sync", False),
}


def base_env(db: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGIREF_FAST")}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "tests"), env.get("PYTHONPATH")])),
               DJANGO_SETTINGS_MODULE="djangoproject.settings", DJANGOPROJECT_DB=str(db))
    return env


def prepare_database(db: Path) -> None:
    env = base_env(db)
    subprocess.run([sys.executable, "-m", "django", "migrate", "--verbosity=0"], env=env, check=True, timeout=120)
    subprocess.run([sys.executable, "-c", "import django; django.setup(); "
                    "from djangoproject.notes.models import Note; "
                    "Note.objects.bulk_create(Note(text=f'note {i}') for i in range(20))"],
                   env=env, check=True, timeout=120)


class Server:
    """uvicorn serving djangoproject on a loopback socket bound here."""

    def __init__(self, env: dict, log: Path):
        sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = sock.getsockname()[1]
        with sock, open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "djangoproject.asgi:application", "--fd", str(sock.fileno()),
                 "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
                env=env, pass_fds=[sock.fileno()], stdout=out, stderr=subprocess.STDOUT)

    def get(self, path: str) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
            return body
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def wrk(port: int, seconds: int, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failures:\n{out}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * scale[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"rps": rps, "p50": latency("50"), "p99": latency("99")}


def _client(port: int, deadline: float) -> "list[float]":
    """One keep-alive connection, requesting until the deadline."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection.request("GET", PATH)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {PATH}: {response.status}")
        latencies.append((time.perf_counter() - started) * 1e3)
    connection.close()
    return latencies


def python_clients(port: int, seconds: int, connections: int) -> dict:
    with ProcessPoolExecutor(connections) as pool:
        deadline = time.monotonic() + 2 + seconds  # time for the processes to start
        results = [pool.submit(_client, port, deadline) for _ in range(connections)]
        latencies = sorted(x for r in results for x in r.result(timeout=seconds + 60))
    return {"rps": len(latencies) / seconds, "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)]}


def main(argv: "list[str]") -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    args = parser.parse_args(argv)
    load = wrk if args.client == "wrk" else python_clients

    import asgiref_fast
    import asgiref_fast._impl

    names = [n for n, (_, _, compiled) in IMPLEMENTATIONS.items() if compiled is not True or asgiref_fast.COMPILED]
    if not asgiref_fast.COMPILED:
        print(f"no compiled twin: {asgiref_fast._impl.IMPORT_ERROR or 'ASGIREF_FAST_NO_EXTENSIONS is set'}")
    if PathFinder.find_spec("asgiref") is None:
        print("upstream asgiref is not installed: pip install asgiref==" + asgiref_fast.ASGIREF_VERSION)
        names.remove("upstream asgiref")
    # uvicorn picks httptools and uvloop when installed (pip install "uvicorn[standard]").
    stack = ["httptools" if find_spec("httptools") else "h11", "uvloop" if find_spec("uvloop") else "asyncio"]
    print(f"{args.client} on 127.0.0.1, {args.connections} connections, {args.duration} s x {args.rounds} rounds, "
          f"GET {PATH}, uvicorn on {' + '.join(stack)}; {', '.join(names)}", flush=True)

    results: "dict[str, list[dict]]" = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "db.sqlite3"
        prepare_database(db)
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                extra, expected, compiled = IMPLEMENTATIONS[name]
                server = Server({**base_env(db), **extra}, Path(tmp) / "server.log")
                try:
                    facts = json.loads(server.get("/facts/"))
                    if facts["asgiref_sync"] != expected or compiled not in (None, facts["compiled"]):
                        raise RuntimeError(f"{name}: the server runs {facts['asgiref_sync']}, compiled={facts['compiled']}")
                    load(server.port, 2, args.connections)  # warm-up
                    result = load(server.port, args.duration, args.connections)
                except Exception:
                    print((Path(tmp) / "server.log").read_text(), file=sys.stderr)
                    raise
                finally:
                    server.stop()
                results[name].append(result)
                print(f"  round {round_ + 1} {name:<22} {result['rps']:8.0f} req/s  "
                      f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms", flush=True)

    print(f"\nmedians over {args.rounds} rounds:")
    print(f"  {'':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    base = results.get("upstream asgiref")
    for name, runs in results.items():
        rps, p50, p99 = (statistics.median(r[key] for r in runs) for key in ("rps", "p50", "p99"))
        vs = f"  x{rps / statistics.median(r['rps'] for r in base):.2f} req/s vs upstream" if base else ""
        print(f"  {name:<22} {rps:8.0f} {p50:8.2f} {p99:8.2f}{vs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
