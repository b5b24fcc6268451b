"""``python -m asgiref_fast bench --postgres``: persistent database
connections under ASGI. The bench's Django app (a sync view making one
query, the four default middleware) on a throwaway PostgreSQL cluster
(postgres.py: 127.0.0.1, password auth) under uvicorn with one worker,
loaded by wrk, with Django's CONN_MAX_AGE at 0 and 60 and with Django's
psycopg pool, on upstream asgiref and on asgiref_fast's compiled twin.

For each row: requests served, req/s and p99 (wrk); connections opened per
1000 requests (PostgreSQL's own log, ``log_connections``, over warm-up and
measured window); the peak of open connections (pg_stat_activity, sampled
every 10 ms); and those still open after the server sat idle for --idle
seconds, long enough for asgiref_fast's idle lanes to retire. Skips cleanly
(exit status 0, saying why) where PostgreSQL, psycopg, uvicorn or wrk is
absent.
"""

import argparse
import importlib.util
import json
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from . import postgres, server
from .django_app import DATABASE_VARIABLE

APP = "asgiref-fast-bench"  # application_name of the server's connections

ROWS = [
    # name, title, asgiref, extra database settings
    ("upstream-0", "upstream, CONN_MAX_AGE=0", "upstream", {"CONN_MAX_AGE": 0}),
    ("upstream-60", "upstream, CONN_MAX_AGE=60", "upstream", {"CONN_MAX_AGE": 60}),
    ("upstream-pool", "upstream, Django's psycopg pool (2, 20)", "upstream",
     {"CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"min_size": 2, "max_size": 20}}}),
    ("fast-0", "asgiref_fast, CONN_MAX_AGE=0", "compiled", {"CONN_MAX_AGE": 0}),
    ("fast-60", "asgiref_fast, CONN_MAX_AGE=60", "compiled", {"CONN_MAX_AGE": 60}),
    ("fast-pool", "asgiref_fast, psycopg pool (2, 20)", "compiled",
     {"CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"min_size": 2, "max_size": 20}}}),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asgiref_fast bench --postgres", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per row (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before them (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk's connections (default 16)")
    parser.add_argument("--idle", type=float, default=70.0,
                        help="seconds the server sits idle before the connections still open are counted "
                        "(default 70: the lanes retire after 60)")
    parser.add_argument("--lane-idle", type=float, default=None, metavar="SECONDS",
                        help="asgiref_fast's lane idle time in the server (default: its own, 60 s); "
                        "with it, --idle can be shorter")
    parser.add_argument("--only", nargs="+", choices=[r[0] for r in ROWS], help="rows to run")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE as JSON")
    return parser


def missing() -> "str | None":
    if postgres.find_bindir() is None:
        return "PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)"
    for module, package in (("psycopg", "psycopg[binary]"), ("psycopg_pool", "psycopg_pool"),
                            ("uvicorn", "uvicorn[standard]"), ("django", "django")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install \"{package}\""
    if shutil.which("wrk") is None:
        return "wrk is not installed"
    return None


class Sampler:
    """The peak of the server's open connections, sampled every 10 ms."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn + " application_name=monitor", autocommit=True)
        self.peak = 0
        self._stop = threading.Event()
        self._thread: "threading.Thread | None" = None

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                 [APP]).fetchone()[0]

    def __enter__(self) -> "Sampler":
        def sample() -> None:
            while not self._stop.wait(0.01):
                self.peak = max(self.peak, self.count())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def _opened(log: str, since: int) -> int:
    return log[since:].count(f"connection authorized: user={postgres.USER} database=bench application_name={APP}")


def run_row(row, cluster: postgres.Cluster, options, tmp: Path, say) -> dict:
    name, title, impl, settings = row
    database = {**cluster.settings("bench"), **settings}
    database["OPTIONS"] = {**database.get("OPTIONS", {}), "application_name": APP}
    base = server.CONTENDERS[impl]
    env = {**base.env, DATABASE_VARIABLE: json.dumps(database)}
    if impl != "upstream" and options.lane_idle is not None:
        env["ASGIREF_FAST_BENCH_LANE_IDLE"] = str(options.lane_idle)
    contender = replace(base, name=name, title=title, env=env)
    server_options = server.Options(contenders=[name], connections=options.connections, workers=1,
                                    duration=options.duration, warmup=options.warmup, client="wrk")
    log = tmp / f"{name}.log"
    srv = server.Server(contender, server_options, tmp / "unused.sqlite3", log)
    try:
        srv.check(1)
        since = len(cluster.log_text())
        with Sampler(cluster.dsn("postgres")) as sampler:
            warm = server.load(server_options, srv.port, options.warmup, None)
            result = server.load(server_options, srv.port, options.duration, srv.process.pid)
        open_after_load = sampler.count()
        deadline = time.monotonic() + options.idle
        while time.monotonic() < deadline and srv.process.poll() is None:
            time.sleep(0.5)
        open_after_idle = sampler.count()
        opened = _opened(cluster.log_text(), since)
        sampler.conn.close()
    except BaseException:
        srv.stop_after_failure()
        raise
    srv.stop()
    requests = warm["requests"] + result["requests"]
    out = {"title": title, "rps": result["rps"], "p99_ms": result["p99_ms"], "requests": requests,
           "errors": result["socket_errors"] + result["non_2xx"] + warm["socket_errors"] + warm["non_2xx"],
           "opened": opened, "opened_per_1000": opened / requests * 1000, "peak_open": sampler.peak,
           "open_after_load": open_after_load, "open_after_idle": open_after_idle}
    say(f"  {title:<42} {out['rps']:7.0f} req/s  p99 {out['p99_ms']:7.2f} ms  "
        f"opened {out['opened_per_1000']:7.1f}/1000  peak {out['peak_open']:3d}  "
        f"open after idle {open_after_idle:3d}  errors {out['errors']}")
    return out


def main(argv: "list[str]") -> int:
    options = _parser().parse_args(argv)
    why = missing()
    if why:
        print(f"Skipped the PostgreSQL comparison: {why}.")
        return 0
    rows = [r for r in ROWS if not options.only or r[0] in options.only]
    print(f"Django on PostgreSQL under uvicorn (1 worker) by wrk -c{options.connections}: "
          f"{options.warmup} s warm-up + {options.duration} s per row, then {options.idle:g} s idle"
          + (f" (asgiref_fast lanes retire after {options.lane_idle:g} s idle)" if options.lane_idle else ""))
    results = {}
    with tempfile.TemporaryDirectory(prefix="asgiref-fast-pg-bench-") as tmp, postgres.Cluster() as cluster:
        cluster.create_database("bench")
        import psycopg

        with psycopg.connect(cluster.dsn("bench"), autocommit=True) as conn:
            conn.execute("CREATE TABLE item (id integer PRIMARY KEY, value text)")
            conn.execute("INSERT INTO item VALUES (1, 'one')")
        for row in rows:
            results[row[0]] = run_row(row, cluster, options, Path(tmp), print)
    print()
    print("| | req/s | p99 | connections opened per 1000 requests | peak open | "
          f"open after {options.idle:g} s idle | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results.values():
        print(f"| {r['title']} | {r['rps']:.0f} | {r['p99_ms']:.0f} ms | {r['opened_per_1000']:.1f} | "
              f"{r['peak_open']} | {r['open_after_idle']} | {r['errors']} |")
    if options.json:
        with open(options.json, "w") as f:
            json.dump({"options": vars(options), "rows": results}, f, indent=2)
    return 0
