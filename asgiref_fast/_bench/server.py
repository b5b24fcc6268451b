"""``python -m asgiref_fast bench --server``: the bench's Django app
(django_app.py: a sync view making one SQLite query, behind the four default
middleware) under real servers on loopback, as a deployment runs it.

Contenders: uvicorn (uvloop, httptools, one worker per core) on upstream
asgiref, on asgiref_fast's compiled and pure twins (switched on by
ASGIREF_FAST=1, as a deployment would), on the compiled twin with spinning off
(a diagnostic row), and, as the reference for what the view costs with no
sync/async bridge at all, the same app under gunicorn's sync workers (WSGI).
A floor row: uvicorn with every sync_to_async call run in place on the loop,
the most any bridge could give there.

Each round starts every contender's server in turn (the order rotating from
round to round), asks each of its workers on /facts what it runs, warms it up,
then loads it for the measured window: wrk where installed, else Python
clients in separate processes. The CPU per request is the user and system CPU
of every process of the server's tree over that window (from /proc), divided
by the requests served in it. Every server is stopped, its whole process
group, before the next starts, and whatever happens.
"""

import asyncio
import http.client
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asgiref_fast

PATH = "/item"
APP = "asgiref_fast._bench.django_server"
DB_VARIABLE = "ASGIREF_FAST_BENCH_DB"
START_SECONDS = 120  # for a server to answer on every worker (a busy machine is slow to import Django)
STOP_SECONDS = 10  # after SIGTERM, before SIGKILL


@dataclass(frozen=True)
class Contender:
    name: str
    title: str
    env: "dict[str, str]"  # added to the server's environment
    facts: "dict[str, object]"  # what /facts must say in every worker
    wsgi: bool = False
    diagnostic: bool = False


CONTENDERS = {c.name: c for c in (
    Contender("upstream", f"upstream asgiref {asgiref_fast.ASGIREF_VERSION}", {},
              {"interface": "asgi", "asgiref_sync": "asgiref.sync"}),
    Contender("compiled", "asgiref_fast compiled", {"ASGIREF_FAST": "1"},
              {"interface": "asgi", "asgiref_sync": "asgiref_fast.sync", "compiled": True}),
    Contender("pure", "asgiref_fast pure", {"ASGIREF_FAST": "1", "ASGIREF_FAST_NO_EXTENSIONS": "1"},
              {"interface": "asgi", "asgiref_sync": "asgiref_fast.sync", "compiled": False}),
    Contender("nospin", "compiled, ASGIREF_FAST_NO_SPIN=1 (diagnostic)",
              {"ASGIREF_FAST": "1", "ASGIREF_FAST_NO_SPIN": "1"},
              {"interface": "asgi", "asgiref_sync": "asgiref_fast.sync", "compiled": True, "max_spinners": 0},
              diagnostic=True),
    Contender("wsgi", "gunicorn sync workers (WSGI reference)", {}, {"interface": "wsgi"}, wsgi=True),
    # The most any bridge could give: the same ASGI requests with every
    # sync_to_async call run in place on the loop (a floor, not a deployment:
    # sync code then blocks the loop).
    Contender("inline", "floor: no thread at all (sync code on the loop)",
              {"ASGIREF_FAST_BENCH_INLINE": "1"}, {"interface": "asgi", "inline": True}, diagnostic=True),
)}


@dataclass
class Options:
    contenders: "list[str]" = field(default_factory=lambda: list(CONTENDERS))
    explicit: bool = False  # contenders named on the command line: one missing is an error
    rounds: int = 3
    duration: int = 8  # seconds per measured window
    warmup: int = 2  # seconds of load before it
    connections: int = 32
    workers: int = os.cpu_count() or 1
    client: "str | None" = None  # "wrk" or "python"; None: wrk if installed


class Unavailable(Exception):
    """The comparison cannot run here as asked; the message says why."""


# -- The machine, from /proc ------------------------------------------------------

def _stat(pid: int) -> "list[str] | None":
    """Fields of /proc/<pid>/stat from the state on (field 3), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the name, in parentheses, may hold spaces


def _all_stats() -> "dict[int, list[str]]":
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                found[int(entry)] = fields
    return found


def process_tree(root: int) -> "list[int]":
    """*root* and all its descendants that are alive (not zombies)."""
    stats = _all_stats()
    children: "dict[int, list[int]]" = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats and stats[pid][0] != "Z":
            tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def group_members(pgid: int) -> "list[int]":
    """The live (not zombie) processes of process group *pgid*."""
    return [pid for pid, fields in _all_stats().items() if int(fields[2]) == pgid and fields[0] != "Z"]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pids: "list[int]") -> "dict[int, float]":
    """User + system CPU each process has used so far (all its threads)."""
    found = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            found[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return found


# -- Servers ----------------------------------------------------------------------

def stack() -> "tuple[str, str, list[str]]":
    """uvicorn's event loop and HTTP parser, and notes on any fallback."""
    notes = []
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http_ = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if loop != "uvloop":
        notes.append("uvloop is not installed: uvicorn runs on asyncio's loop (pip install \"uvicorn[standard]\")")
    if http_ != "httptools":
        notes.append("httptools is not installed: uvicorn parses HTTP with h11 (pip install \"uvicorn[standard]\")")
    return loop, http_, notes


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _compiled_available() -> bool:
    from . import implementations

    return asgiref_fast.COMPILED or implementations._copy_compiled_ok()


def available(options: Options) -> "tuple[list[Contender], list[str]]":
    """The contenders that can run here, and notes on those that cannot;
    raises Unavailable if the comparison cannot run as asked."""
    if not os.path.isdir("/proc/self"):
        raise Unavailable("the real-server comparison reads CPU times from /proc (Linux only)")
    reasons = {}
    if importlib.util.find_spec("uvicorn") is None:
        for name in ("upstream", "compiled", "pure", "nospin"):
            reasons[name] = 'uvicorn is not installed: pip install "uvicorn[standard]"'
    if importlib.util.find_spec("gunicorn") is None:
        reasons["wsgi"] = "gunicorn is not installed: pip install gunicorn"
    if not _compiled_available():
        from asgiref_fast import _impl

        why = _impl.IMPORT_ERROR or "the compiled twins were not built"
        for name in ("compiled", "nospin"):
            reasons.setdefault(name, f"no compiled twin here ({why})")
    if importlib.util.find_spec("django") is None:
        raise Unavailable("the real-server comparison serves a Django app: pip install django")
    from importlib.machinery import PathFinder

    if PathFinder.find_spec("asgiref") is None:
        reasons["upstream"] = f"upstream asgiref is not installed: pip install asgiref=={asgiref_fast.ASGIREF_VERSION}"
    chosen, notes = [], []
    for name in options.contenders:
        if name in reasons:
            if options.explicit:
                raise Unavailable(f"cannot run {name}: {reasons[name]}")
            notes.append(f"no {name} row: {reasons[name]}")
        else:
            chosen.append(CONTENDERS[name])
    if not chosen:
        raise Unavailable("no contender can run here: " + "; ".join(notes))
    return chosen, notes


def server_env(contender: Contender, database: Path) -> "dict[str, str]":
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGIREF_FAST")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # The servers import this very copy of asgiref_fast (for the app, and
    # through the .pth hook for ASGIREF_FAST=1), even run from a checkout.
    here = str(Path(asgiref_fast.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    env[DB_VARIABLE] = str(database)
    env.update(contender.env)
    return env


def command(contender: Contender, fd: int, workers: int, loop: str, http_: str) -> "list[str]":
    if contender.wsgi:
        return [sys.executable, "-m", "gunicorn", f"{APP}:wsgi", "--bind", f"fd://{fd}",
                "--workers", str(workers), "--worker-class", "sync", "--log-level", "warning"]
    return [sys.executable, "-m", "uvicorn", f"{APP}:asgi", "--fd", str(fd), "--workers", str(workers),
            "--loop", loop, "--http", http_, "--no-access-log", "--lifespan", "off", "--log-level", "warning"]


def listener(contender: Contender) -> socket.socket:
    """The loopback socket a contender's server accepts connections on."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    if not contender.wsgi:
        # uvicorn takes a socket passed by --fd for a Unix one, so its event
        # loop leaves Nagle's algorithm on for each connection, where one bound
        # by uvicorn itself (--host/--port) gets TCP_NODELAY: every response
        # (its headers and body written apart) would then wait for the
        # client's delayed ACK, about 40 ms. Accepted sockets inherit it from
        # the listening one, as deployed.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Server:
    """One contender's server on a loopback socket bound here, in a process
    group of its own so that stop() reaches every process it started."""

    def __init__(self, contender: Contender, options: Options, database: Path, log: Path):
        self.contender = contender
        self.log = log
        loop, http_, _ = stack()
        sock = listener(contender)
        self.port = sock.getsockname()[1]
        with sock, open(log, "wb") as out:
            self.process = subprocess.Popen(
                command(contender, sock.fileno(), options.workers, loop, http_),
                env=server_env(contender, database), pass_fds=[sock.fileno()], stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        # Only the server holds the socket now: if it dies, requests fail at once.

    def get(self, path: str) -> "tuple[int, bytes]":
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=START_SECONDS)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def check(self, workers: int) -> "dict[int, dict]":
        """Asks /facts until every worker has answered (each new connection
        goes to whichever worker accepts it), and checks what each runs."""
        loop, http_, _ = stack()
        expected = dict(self.contender.facts)
        if self.contender.wsgi:
            expected["server_software"] = f"gunicorn/{_version('gunicorn')}"
        else:
            expected.update(loop=loop, http=http_)
        if "asgiref_fast" in expected.get("asgiref_sync", ""):
            expected["location"] = os.path.dirname(os.path.realpath(asgiref_fast.__file__))
        seen: "dict[int, dict]" = {}
        deadline = time.monotonic() + START_SECONDS
        while len(seen) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.contender.name}: only {len(seen)} of {workers} workers answered "
                                   f"/facts in {START_SECONDS} s")
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.contender.name}: the server exited (status {self.process.returncode})")
            try:
                status, body = self.get("/facts")
            except OSError:
                time.sleep(0.1)
                continue
            if status != 200:
                raise RuntimeError(f"{self.contender.name}: GET /facts answered {status}: {body[:300]!r}")
            facts = json.loads(body)
            wrong = {k: facts.get(k) for k, v in expected.items() if facts.get(k) != v}
            if wrong:
                raise RuntimeError(f"{self.contender.name}: a worker runs {wrong}, not {expected}")
            if facts["pid"] not in process_tree(self.process.pid):
                raise RuntimeError(f"{self.contender.name}: /facts answered by pid {facts['pid']}, "
                                   "not a process of this server")
            seen[facts["pid"]] = facts
        return seen

    def stop(self) -> None:
        stop_group(self.process)

    def stop_after_failure(self) -> None:
        """stop(), then print the end of the server's log: why it failed."""
        self.stop()
        text = self.log.read_text(errors="replace").strip()
        if text:
            print(f"{self.contender.name} server log:\n{text[-4000:]}", file=sys.stderr)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group *process* leads, SIGKILL to what is left
    after a bounded wait, and reaps *process*; raises if anything survives."""
    pgid = process.pid
    for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, STOP_SECONDS)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None and not group_members(pgid):
                return
            time.sleep(0.05)
    left = group_members(pgid)
    raise RuntimeError(f"server processes {left} survived SIGKILL")


# -- Load generators --------------------------------------------------------------

def client_name(options: Options) -> str:
    return options.client or ("wrk" if shutil.which("wrk") else "python")


def describe_client(options: Options) -> str:
    if client_name(options) == "wrk":
        return f"wrk -t1 -c{options.connections} --latency"
    return (f"Python clients ({_client_processes(options)} processes, asyncio, keep-alive; "
            "wrk is not installed)" if options.client is None else
            f"Python clients ({_client_processes(options)} processes, asyncio, keep-alive)")


def load(options: Options, port: int, seconds: int, tree_root: "int | None") -> dict:
    """Loads the server for *seconds*; with *tree_root*, counts the CPU of
    its process tree over exactly that window."""
    if client_name(options) == "wrk":
        return _wrk(port, seconds, options.connections, tree_root)
    return _python_clients(port, seconds, options.connections, _client_processes(options), tree_root)


def _cpu_of(tree_root: "int | None") -> "dict[int, float]":
    return cpu_seconds(process_tree(tree_root)) if tree_root is not None else {}


def _cpu_delta(before: "dict[int, float]", after: "dict[int, float]") -> "dict[int, float]":
    # A process that started during the window counts from zero; one that
    # ended during it loses its last stretch (servers do not fork at will).
    return {pid: after[pid] - before.get(pid, 0.0) for pid in after}


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(out: str) -> dict:
    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M).groups()
        return float(value) * _WRK_UNITS[unit]

    requests, seconds, unit = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out).groups()
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(requests),
        "seconds": float(seconds) * _WRK_UNITS[unit] / 1e3,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def _wrk(port: int, seconds: int, connections: int, tree_root: "int | None") -> dict:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
            f"http://127.0.0.1:{port}{PATH}"]
    before = _cpu_of(tree_root)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    after = _cpu_of(tree_root)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    result = parse_wrk(proc.stdout)
    if result["non_2xx"]:
        raise RuntimeError(f"the server answered errors:\n{proc.stdout}")
    if not result["requests"]:
        raise RuntimeError(f"the server answered no request in {seconds} s:\n{proc.stdout}")
    result["cpu"] = _cpu_delta(before, after)
    return result


def _client_processes(options: Options) -> int:
    return max(1, min(options.connections, os.cpu_count() or 1))


def _python_clients(port: int, seconds: int, connections: int, processes: int, tree_root: "int | None") -> dict:
    context = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    try:
        for i in range(processes):
            share = connections // processes + (i < connections % processes)
            here, there = context.Pipe()
            worker = context.Process(target=_client_process, args=(there, port, share), daemon=True)
            worker.start()
            there.close()
            pipes.append(here)
            workers.append(worker)
        for pipe in pipes:  # each has its connections open
            said = pipe.recv() if pipe.poll(START_SECONDS) else "no word in time"
            if said != "ready":
                raise RuntimeError(f"a Python client process did not start: {said}")
        start = time.monotonic() + 0.2
        end = start + seconds
        for pipe in pipes:
            pipe.send((start, end))
        time.sleep(max(0.0, start - time.monotonic()))
        before = _cpu_of(tree_root)
        time.sleep(max(0.0, end - time.monotonic()))
        after = _cpu_of(tree_root)
        latencies: "list[float]" = []
        for pipe in pipes:
            if not pipe.poll(seconds + 60):
                raise RuntimeError("a Python client process did not finish")
            outcome = pipe.recv()
            if isinstance(outcome, str):
                raise RuntimeError(f"a Python client failed: {outcome}")
            latencies.extend(outcome)
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
                worker.join(10)
    if not latencies:
        raise RuntimeError("the Python clients completed no request")
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": float(seconds),
        "rps": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "socket_errors": 0,  # a client that meets one fails
        "non_2xx": 0,
        "cpu": _cpu_delta(before, after),
    }


def _client_process(pipe, port: int, connections: int) -> None:
    try:
        pipe.send(asyncio.run(_clients(pipe, port, connections)))
    except BaseException as exc:  # reported to the bench, which raises
        pipe.send(f"{type(exc).__name__}: {exc}")


async def _clients(pipe, port: int, connections: int) -> "list[float]":
    request = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    pipe.send("ready")
    start, end = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    latencies: "list[float]" = []

    async def client(reader, writer) -> None:
        while True:
            began = time.monotonic()
            if began >= end:
                break
            if reader is None:  # the server closed the last connection (WSGI sync workers do)
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            if status != b"200":
                raise RuntimeError(f"GET {PATH} answered {head[:200]!r}")
            length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            await reader.readexactly(int(length.group(1)) if length else 0)
            done = time.monotonic()
            if start <= done <= end:
                latencies.append((done - began) * 1e3)
            if re.search(rb"\r\nconnection:\s*close", head, re.I):
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client(r, w) for r, w in streams))
    return latencies


# -- The comparison ---------------------------------------------------------------

def run(options: Options, contenders: "list[Contender]", say=print) -> dict:
    """Every round, every contender in turn; returns the runs and medians."""
    loop, http_, _ = stack()
    runs: "dict[str, list[dict]]" = {c.name: [] for c in contenders}
    seen: "dict[str, dict]" = {}  # what a worker of each said on /facts
    with tempfile.TemporaryDirectory(prefix="asgiref-fast-server-") as tmp:
        database = Path(tmp) / "db.sqlite3"
        _create_database(database)
        for round_ in range(options.rounds):
            shift = round_ % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                log = Path(tmp) / f"{contender.name}.log"
                server = Server(contender, options, database, log)
                try:
                    facts = server.check(options.workers)
                    seen[contender.name] = next(iter(facts.values()))
                    load(options, server.port, options.warmup, None)
                    # uvicorn's workers share one listening socket, and one
                    # that wakes first may accept a whole burst of connections:
                    # then one worker serves them all, whatever the asgiref.
                    # Such a window measures uvicorn's accept, not us: measure
                    # it again, with new connections, a few times at most.
                    for attempt in range(1 + MAX_RELOADS):
                        result = load(options, server.port, options.duration, server.process.pid)
                        share = _busiest_share(result["cpu"], facts)
                        if len(facts) < 2 or share <= _lopsided(len(facts)):
                            break
                        say(f"  round {round_ + 1} {contender.name:<9} one worker took {share:.0%} of the "
                            f"workers' CPU: measured again")
                    result["reloads"] = attempt
                except BaseException:
                    server.stop_after_failure()
                    raise
                server.stop()
                by_process = result.pop("cpu")
                cpu = sum(by_process.values())
                result.update(cpu_seconds=cpu, cpu_per_request_ms=cpu / result["requests"] * 1e3,
                              workers=sorted(facts),
                              busiest_worker_share=_busiest_share(by_process, facts),
                              cpu_seconds_by_process={str(pid): s for pid, s in sorted(by_process.items())})
                runs[contender.name].append(result)
                errors = f"  {result['socket_errors']} socket errors" if result["socket_errors"] else ""
                say(f"  round {round_ + 1} {contender.name:<9} {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
                    f"CPU {result['cpu_per_request_ms']:.3f} ms/request  "
                    f"busiest worker {result['busiest_worker_share']:.0%} of the workers' CPU{errors}")
    summary = summarize(options, contenders, runs, loop, http_)
    summary["facts"] = seen
    return summary


# A window where one worker did more than this share of the work (halfway
# between even and all of it) is measured again, at most MAX_RELOADS times.
MAX_RELOADS = 3


def _lopsided(workers: int) -> float:
    return (1 + 1 / workers) / 2


def _busiest_share(by_process: "dict[int, float]", workers: "dict[int, dict]") -> float:
    """The busiest worker's share of the workers' CPU (the kernel and the
    server decide which worker accepts each connection)."""
    worker_cpu = [by_process.get(pid, 0.0) for pid in workers]
    return max(worker_cpu) / sum(worker_cpu) if sum(worker_cpu) else 1.0


def _create_database(database: Path) -> None:
    env = server_env(CONTENDERS["upstream"], database)
    code = ("import os; from asgiref_fast._bench.django_app import configure, create_database; "
            f"configure(os.environ[{DB_VARIABLE!r}]); create_database()")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def summarize(options: Options, contenders: "list[Contender]", runs: "dict[str, list[dict]]",
              loop: str, http_: str) -> dict:
    medians = {}
    for name, results in runs.items():
        medians[name] = {key: statistics.median(r[key] for r in results)
                         for key in ("rps", "p50_ms", "p99_ms", "cpu_per_request_ms", "busiest_worker_share")}
    up, ref = medians.get("upstream"), medians.get("wsgi")
    for name, m in medians.items():
        ratios = {}
        if up and name != "upstream":
            ratios["rps_vs_upstream"] = m["rps"] / up["rps"]
            ratios["p99_vs_upstream"] = m["p99_ms"] / up["p99_ms"]
        if ref and name != "wsgi":
            ratios["rps_vs_wsgi"] = m["rps"] / ref["rps"]
            ratios["cpu_vs_wsgi"] = m["cpu_per_request_ms"] / ref["cpu_per_request_ms"]
        m["ratio"] = ratios
    return {
        "conditions": {
            "path": PATH,
            "asgi_server": f"uvicorn {_version('uvicorn')} ({loop}, {http_})",
            "wsgi_server": f"gunicorn {_version('gunicorn')} (sync workers)",
            "workers": options.workers,
            "connections": options.connections,
            "duration_seconds": options.duration,
            "warmup_seconds": options.warmup,
            "rounds": options.rounds,
            "load_generator": describe_client(options),
        },
        "contenders": {c.name: {"title": c.title, "diagnostic": c.diagnostic} for c in contenders},
        "runs": runs,
        "medians": medians,
    }


def _ratio(value: "float | None") -> str:
    return "-" if value is None else f"{value:.2f}"


def report(summary: dict, notes: "list[str]", load_text: str) -> "list[str]":
    c = summary["conditions"]
    lines = [
        f"Real servers on 127.0.0.1: {c['asgi_server']}, {c['workers']} worker(s); reference: "
        f"{c['wsgi_server']}, {c['workers']} worker(s)",
        f"GET {c['path']} (the bench's Django app: a sync view, one SQLite query, 4 middleware) by "
        f"{c['load_generator']} at {c['connections']} connections; {c['duration_seconds']} s x {c['rounds']} "
        f"round(s) after {c['warmup_seconds']} s warm-up, servers alternating; {load_text}",
    ]
    lines += [f"note: {n}" for n in notes]
    header = (f"{'server':<48} {'req/s':>8} {'p50':>9} {'p99':>9} {'CPU/req':>9} "
              f"{'÷up':>6} {'÷WSGI':>6} {'CPU÷WSGI':>8} {'p99÷up':>7} {'busiest':>7}")
    lines += [header, "-" * len(header)]
    for name, m in summary["medians"].items():
        r = m["ratio"]
        lines.append(
            f"{summary['contenders'][name]['title']:<48} {m['rps']:8.0f} {m['p50_ms']:6.2f} ms "
            f"{m['p99_ms']:6.2f} ms {m['cpu_per_request_ms']:6.3f} ms {_ratio(r.get('rps_vs_upstream')):>6} "
            f"{_ratio(r.get('rps_vs_wsgi')):>6} {_ratio(r.get('cpu_vs_wsgi')):>8} "
            f"{_ratio(r.get('p99_vs_upstream')):>7} {m['busiest_worker_share']:>7.0%}")
    lines.append(
        "medians over the rounds; CPU/req: user+system CPU of every process of the server "
        "(master and workers) over the measured window ÷ requests served in it; ÷up, ÷WSGI: req/s "
        "as a ratio to upstream's and to the WSGI reference's (higher is better); CPU÷WSGI, p99÷up: "
        f"lower is better; busiest: the busiest worker's share of the workers' CPU ({1 / c['workers']:.0%}: "
        "evenly shared)")
    reloads = {name: sum(r.get("reloads", 0) for r in runs) for name, runs in summary["runs"].items()}
    if any(reloads.values()):
        lines.append(
            "measured again, with new connections, because one worker had accepted nearly all of them "
            "(uvicorn's workers share one listening socket): "
            + ", ".join(f"{summary['contenders'][n]['title']} {k}x" for n, k in reloads.items() if k))
    return lines
