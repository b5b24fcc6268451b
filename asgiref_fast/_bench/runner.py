"""``python -m asgiref_fast bench``: how much faster is a Django app with
asgiref_fast than with asgiref? Every case runs against upstream asgiref and
both twins, alternating between them so a noisy machine's drift hits all
alike. The report opens with the answer (the Django request rows and the
real-server row, "x faster" = upstream's time ÷ ours), then the detail.
A full run (no ``--quick``, no ``--only``) ends with the real servers
(server.py); ``--server`` does only that. ``--load N`` runs everything beside
N busy-loop processes, as on a machine at peak.
"""

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import time
from typing import NoReturn

import asgiref_fast

from . import busy, cases, implementations
from .cases import CASES, FLOORS


def _progress(text: str) -> None:
    """Where the run is, on stderr: rewritten in place on a terminal, one
    line per step elsewhere (a log file, CI)."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + text)
    elif text:
        sys.stderr.write(text + "\n")
    sys.stderr.flush()


def measure(
    case, impls: dict, rounds: int, min_seconds: float, extra: "dict | None" = None
) -> "dict[str, list[float]]":
    """Per-operation times of *case* for each implementation, in seconds;
    the *extra* cases (by name) are measured in the same rotation."""
    cases = {name: case for name in impls}
    prepared = {name: case.make(api) for name, api in impls.items()}
    for name, other in (extra or {}).items():
        cases[name] = other
        prepared[name] = other.make(None)
    samples: "dict[str, list[float]]" = {name: [] for name in prepared}
    try:
        for batch, _ in prepared.values():
            batch()  # warm up: threads, loops, caches
        names = list(prepared)
        for round_ in range(rounds):
            # Rotate who goes first, so no implementation always follows another.
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                batch = prepared[name][0]
                runs = 0
                elapsed = 0.0
                while elapsed < min_seconds:
                    started = time.perf_counter()
                    # A batch may time itself (a worker process does).
                    own = batch()
                    elapsed += own if isinstance(own, float) else time.perf_counter() - started
                    runs += 1
                samples[name].append(elapsed / (runs * cases[name].ops))
    finally:
        # Every one is closed, even when the run was cut short or one fails.
        problems = []
        for _, close in prepared.values():
            try:
                close()
            except Exception as exc:
                problems.append(exc)
        if problems and sys.exc_info()[0] is None:
            raise problems[0]
    return samples


def _fmt(seconds: "float | None") -> str:
    if seconds is None:
        return "-"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} µs"


def machine() -> str:
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {platform.system()}; asgiref_fast {asgiref_fast.__version__} "
        f"({'compiled' if asgiref_fast.COMPILED else 'pure'}) vs upstream asgiref "
        f"{_upstream_version()}"
    )


def _upstream_version() -> str:
    try:
        from importlib.metadata import version

        return version("asgiref")
    except Exception:
        return "?"


def _django_c16_floor(results: list, floors: list) -> str:
    """The floors measured with the Django request at concurrency 16, added
    up: the least that request can cost with a thread per request context."""
    medians = {f["name"]: f["median_seconds"] for f in floors}
    request = next((r["median_seconds"] for r in results if r["name"] == "django_c16"), {})
    needed = ("django_c16_inline", "django_wsgi_16", "django_wsgi_1", "loop_roundtrip_16")
    hops = cases.DJANGO_HOPS_PER_REQUEST.get(16)
    if "upstream" not in request or hops is None or not all(n in medians for n in needed):
        return ""
    # Its work; what 16 threads contending for the GIL add to its sync part
    # (as the WSGI handler's threads show, never hopping); its hops, each at
    # least a bare round trip between a loop and 16 threads.
    work = medians["django_c16_inline"]
    contention = medians["django_wsgi_16"] - medians["django_wsgi_1"]
    hopping = hops * medians["loop_roundtrip_16"]
    total = work + contention + hopping
    return (f"Django request at concurrency 16, floors added up: work {_fmt(work)} + contention "
            f"{_fmt(contention)} + {hops:g} hops {_fmt(hopping)} = {_fmt(total)} per request; "
            f"upstream takes {request['upstream'] / total:.2f}x that")


def _at_least(least: int):
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        return value

    return convert


_positive, _count = _at_least(1), _at_least(0)


def _parser() -> argparse.ArgumentParser:
    from . import server

    parser = argparse.ArgumentParser(prog="python -m asgiref_fast bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and cases (under 3 minutes)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"cases to run: {', '.join(CASES)}")
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    parser.add_argument("--plot", metavar="FILE", help="draw the ratios as a PNG bar chart")
    parser.add_argument("--postgres", action="store_true",
                        help="persistent database connections on PostgreSQL under a real server (pg_bench.py; "
                        "its own options: --postgres --help)")
    parser.add_argument("--django", action="store_true",
                        help="require the Django request rows (part of every run where Django is installed)")
    parser.add_argument("--rounds", type=_positive, help="measurement rounds per implementation")
    parser.add_argument("--load", type=_count, default=0, metavar="N",
                        help="run everything beside N busy-loop processes, as on a machine at peak (default 0)")
    group = parser.add_argument_group(
        "real servers", "the bench's Django app under uvicorn and gunicorn on loopback, loaded by wrk (or Python "
        "clients): part of a full run (no --quick, no --only); --server runs only them, unless cases are named "
        "with --only or added with --django")
    group.add_argument("--server", nargs="*", metavar="NAME", choices=list(server.CONTENDERS),
                       help=f"compare these servers (default: all of {', '.join(server.CONTENDERS)})")
    group.add_argument("--server-rounds", type=_positive, metavar="N", help="rounds (default 3; --quick: 2)")
    group.add_argument("--server-duration", type=_positive, metavar="SECONDS",
                       help="measured seconds per server and round (default 8; --quick: 4)")
    group.add_argument("--connections", type=_positive, help="open connections of the load generator (default 32)")
    group.add_argument("--workers", type=_positive,
                       help=f"server worker processes (default: the CPUs, {os.cpu_count()})")
    group.add_argument("--client", choices=["wrk", "python"],
                       help="load generator (default: wrk if installed, else Python clients)")
    return parser


class _Terminated(SystemExit):
    """SIGTERM, raised where the bench is, so that it unwinds like Ctrl-C
    and every process the bench started is stopped on the way out."""


def _terminate(signum, frame):
    raise _Terminated(128 + signum)


def _interrupted(exc: BaseException) -> NoReturn:
    """Ends an interrupted bench once its load and cases are stopped,
    without the interpreter's exit, which waits for every non-daemon thread.
    An interrupt can land inside a case's ThreadPoolExecutor between
    starting a worker and registering it for the exit-time wake-up (CPython
    does the two in that order, with no guard); interpreter exit would then
    wait for that worker forever (seen with upstream asgiref's
    single-thread executor, under load)."""
    status = exc.code if isinstance(exc, _Terminated) else 128 + signal.SIGINT
    print("asgiref-fast bench: interrupted", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main(argv: "list[str] | None" = None) -> int:
    if argv is not None and "--postgres" in argv:  # a comparison of its own: pg_bench.py
        from . import pg_bench

        return pg_bench.main([a for a in argv if a != "--postgres"])
    parser = _parser()
    args = parser.parse_args(argv)
    # A full run (no --quick, no --only) ends with the real servers, where
    # they can run here; --server asks for them alone.
    implied = args.server is None and not args.quick and not args.only
    server_options = ("server_rounds", "server_duration", "connections", "workers", "client")
    if args.server is None and not implied:
        given = [f"--{name.replace('_', '-')}" for name in server_options if getattr(args, name) is not None]
        if given:
            parser.error(f"{', '.join(given)}: only with --server, or in a full run")
    if args.client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk: wrk is not on PATH")
    in_process = args.server is None or bool(args.only) or args.django
    if implied:
        args.server = []
    if args.plot and not in_process:
        parser.error("--plot draws the in-process cases: add --only or --django, or drop --plot")
    # Every output path is checked before minutes of measuring, not after.
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        problem = path is not None and _unwritable(path)
        if problem:
            parser.error(f"{option} {path}: {problem}")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib: pip install matplotlib")

    missing = implementations.upstream_missing()
    if missing:
        print(f"Cannot compare with upstream asgiref: {missing}.", file=sys.stderr)
        return 2
    selected = []
    if in_process:
        if args.only:
            unknown = [n for n in args.only if n not in CASES]
            if unknown:
                parser.error(f"unknown case(s): {', '.join(unknown)}; choose from {', '.join(CASES)}")
            selected = [CASES[n] for n in args.only]
        else:
            with_django = args.django or importlib.util.find_spec("django") is not None
            selected = [
                c for c in CASES.values()
                if (c.quick or not args.quick) and (c.group != "django" or with_django)
            ]
        if any(c.group == "django" for c in selected) and importlib.util.find_spec("django") is None:
            print('The Django benchmark needs Django: pip install django', file=sys.stderr)
            return 2
    servers = None
    if args.server is not None:
        from . import server

        options = server.Options(
            contenders=[n for n in server.CONTENDERS if n in args.server] if args.server else list(server.CONTENDERS),
            explicit=bool(args.server),
            rounds=args.server_rounds or (2 if args.quick else 3),
            duration=args.server_duration or (4 if args.quick else 8),
            connections=args.connections or 32,
            workers=args.workers or os.cpu_count() or 1,
            client=args.client,
        )
        options.warmup = min(2, options.duration)
        try:
            servers = (options, *server.available(options))
        except server.Unavailable as exc:
            if not implied:
                print(f"Cannot run the real-server comparison: {exc}.", file=sys.stderr)
                return 2
            print(f"(no real-server comparison here: {exc})", file=sys.stderr)

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with busy.load(args.load):
            report = _run(args, selected, servers)
    except (KeyboardInterrupt, _Terminated) as exc:
        _interrupted(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)
    for line in _report(report, selected):
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if args.plot:
        from .plot import plot

        plot(report["results"], args.plot, report["header"])
    return 0


def _unwritable(path: str) -> str:
    """Why *path* cannot be written, or ""."""
    if os.path.isdir(path):
        return "is a directory"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"no such directory: {folder}"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "not writable"
    if not os.path.exists(path) and not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create files in {folder}"
    return ""


def _run(args, selected: list, servers) -> dict:
    """Runs the in-process cases, then the servers, saying on stderr where it
    is; returns everything (the report and --json)."""
    header = f"{machine()}; {busy.describe(args.load)}"
    _progress(header)
    report = {"machine": machine(), "cpus": os.cpu_count(), "load": args.load, "header": header,
              "results": [], "floors": [], "django_hops_per_request": cases.DJANGO_HOPS_PER_REQUEST}
    if selected:
        rounds = args.rounds or (7 if args.quick else 15)
        report["rounds"] = rounds
        report["results"], report["floors"] = _in_process(selected, rounds, 0.1 if args.quick else 0.2)
    if servers is not None:
        from . import server

        options, contenders, notes = servers
        _progress(f"real servers: {', '.join(c.name for c in contenders)}; "
                  f"{options.duration} s x {options.rounds} round(s) ...")
        _, _, stack_notes = server.stack()
        summary = server.run(options, contenders, say=_say)
        summary["notes"] = notes + stack_notes
        summary["load"] = args.load
        report["server"] = summary
    return report


def _say(line: str) -> None:
    # A line of the servers' progress: kept whole, even on a terminal.
    _progress(line)
    if sys.stderr.isatty():
        sys.stderr.write("\n")


def _report(report: dict, selected: list) -> "list[str]":
    """The answer first, then the detail."""
    lines = [report["header"], ""] + _summary(report, selected)
    if report["results"]:
        lines += [""] + _in_process_table(report["results"], report["floors"])
    if "server" in report:
        from . import server

        summary = report["server"]
        lines += [""] + server.report(summary, summary["notes"], busy.describe(report["load"]))
    return lines


def _times(value: "float | None") -> str:
    return "-" if value is None else f"{value:.2f}x"


def _summary(report: dict, selected: list) -> "list[str]":
    """How much faster the app is with asgiref_fast: the Django request rows
    and the real-server row, as upstream's time (or req/s) over ours."""
    rows = []
    for r in report["results"]:
        if r["group"] == "django" and "upstream" in r["median_seconds"]:
            m = r["median_seconds"]
            rows.append((r["title"], {t: m["upstream"] / m[t] for t in ("compiled", "pure") if m.get(t)}))
    server = report.get("server")
    if server:
        medians, c = server["medians"], server["conditions"]
        if "upstream" in medians:
            title = f"Django under uvicorn, {c['workers']} worker(s), {c['connections']} connections (req/s)"
            rows.append((title, {t: medians[t]["rps"] / medians["upstream"]["rps"]
                                 for t in ("compiled", "pure", "wsgi") if t in medians}))
    if not rows:
        if selected and not any(c.group == "django" for c in selected) and not report.get("server"):
            return ["(no Django request row in this run: it needs Django (pip install django), "
                    "and --only leaves it out unless named)"]
        return []
    width = max(len(title) for title, _ in rows)
    lines = [f"How much faster than asgiref {_upstream_version()} (upstream ÷ asgiref_fast, medians "
             "of the same run; 1.00x = as fast):"]
    for title, speedups in rows:
        lines.append(f"  {title:<{width}}  compiled {_times(speedups.get('compiled'))}  "
                     f"pure {_times(speedups.get('pure'))}"
                     + (f"  (gunicorn WSGI, no bridge: {_times(speedups['wsgi'])})" if "wsgi" in speedups else ""))
    return lines


def _in_process(selected: list, rounds: int, min_seconds: float) -> "tuple[list, list]":
    impls = implementations.load()
    results = []
    floors = []
    for index, case in enumerate(selected, 1):
        if sys.stderr.isatty():  # elsewhere, one line per case, once it is measured
            _progress(f"[{index}/{len(selected)}] {case.title} ...")
        contenders = dict(impls)
        if case.group == "wsgi" and implementations.a2wsgi() is not None:
            contenders["a2wsgi"] = implementations.a2wsgi()
        # The floors run in turn with the case they bound.
        bounding = {name: f for name, f in FLOORS.items() if f.bounds == case.name}
        samples = measure(case, contenders, rounds, min_seconds, bounding)
        for name in bounding:
            floor_samples = samples.pop(name)
            floors.append({"name": name, "title": FLOORS[name].title, "bounds": case.name,
                           "median_seconds": statistics.median(floor_samples),
                           "samples_seconds": floor_samples})
        medians = {name: statistics.median(s) for name, s in samples.items()}
        up = medians.get("upstream")
        results.append({
            "name": case.name,
            "title": case.title,
            "group": case.group,
            "median_seconds": medians,
            "samples_seconds": samples,
            # ours ÷ upstream (below 1 is faster), and its inverse as reported
            "ratio": {n: m / up for n, m in medians.items() if n != "upstream" and up},
            "speedup": {n: up / m for n, m in medians.items() if n != "upstream" and up and m},
            "round_ratio_quartiles": _round_ratio_quartiles(samples),
        })
        _progress(f"[{index}/{len(selected)}] {case.title}: " + ", ".join(
            f"{n} {_times(x)} faster" for n, x in results[-1]["speedup"].items()))
    _progress("")
    return results, floors


def _in_process_table(results: list, floors: list) -> "list[str]":
    header = (f"{'operation':<48} {'upstream':>11} {'compiled':>11} {'pure':>11} "
              f"{'x faster':>9} {'pure x f.':>9} {'a2wsgi':>11}")
    lines = [header, "-" * len(header)]
    for r in results:
        m, speedup = r["median_seconds"], r["speedup"]
        lines.append(f"{r['title']:<48} {_fmt(m.get('upstream')):>11} {_fmt(m.get('compiled')):>11} "
                     f"{_fmt(m.get('pure')):>11} {_times(speedup.get('compiled')):>9} "
                     f"{_times(speedup.get('pure')):>9} {_fmt(m.get('a2wsgi')):>11}")
    lines.append("times per operation (per request for the request rows), medians of the same run; "
                 "x faster = upstream's time ÷ ours (above 1 is faster)")
    for f in floors:
        lines.append(f"{f['title']:<88} {_fmt(f['median_seconds']):>11}")
    for r in results:
        spread = r["round_ratio_quartiles"]
        if r["group"] in ("django", "wsgi") and spread:
            lines.append(f"{r['title']}: ours ÷ upstream in each round, quartiles: " + "; ".join(
                f"{name} {low:.2f}-{high:.2f}" for name, (low, high) in spread.items()))
    note = _django_c16_floor(results, floors)
    if note:
        lines.append(note)
    return lines


def _round_ratio_quartiles(samples: "dict[str, list[float]]") -> "dict[str, tuple[float, float]]":
    """For each implementation, the quartiles of its ratio to upstream in each
    round (measured a moment apart): how far the machine's noise moves the
    ratio within this run."""
    up = samples.get("upstream", [])
    found = {}
    for name, times in samples.items():
        if name != "upstream" and len(up) == len(times) >= 2:
            low, _, high = statistics.quantiles([t / u for t, u in zip(times, up)], n=4)
            found[name] = (low, high)
    return found
