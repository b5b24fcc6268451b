"""python -m asgiref_fast bench: the report, its JSON and its chart."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "asgiref_fast", "bench", *args],
        capture_output=True, text=True, timeout=300, env=env or os.environ.copy(),
    )


@pytest.mark.bench_end_to_end
def test_report_json_and_plot(tmp_path):
    pytest.importorskip("asgiref.local")
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    proc = run("--only", "local_get", "hop", "--rounds", "2", "--json", str(out), "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert "Local getattr" in proc.stdout and "upstream" in proc.stdout
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert names == ["local_get", "hop"]
    for result in report["results"]:
        medians = result["median_seconds"]
        assert medians["upstream"] > 0 and medians["pure"] > 0
        assert result["ratio"]["pure"] == pytest.approx(medians["pure"] / medians["upstream"])
        assert result["speedup"]["pure"] == pytest.approx(medians["upstream"] / medians["pure"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Progress, on a non-terminal: one line per case, once it is measured.
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == ["[1/2", "[2/2"]
    assert "Local getattr: compiled" in progress[0] or "Local getattr: pure" in progress[0]


@pytest.mark.bench_end_to_end
def test_the_report_opens_with_how_much_faster_django_is():
    pytest.importorskip("asgiref.local")
    pytest.importorskip("django")
    proc = run("--only", "hop", "django_c1", "--rounds", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[2].startswith("How much faster than asgiref 3.13.0 (upstream ÷ asgiref_fast")
    assert lines[3].lstrip().startswith("Django ASGI request, concurrency 1  compiled ")
    assert lines[3].rstrip().endswith("x") and " pure " in lines[3]
    # The detail follows, in the same terms.
    assert any(line.startswith("operation") and "x faster" in line for line in lines[4:])


def test_a_run_without_django_rows_says_how_to_get_them():
    pytest.importorskip("asgiref.local")
    proc = run("--only", "local_get", "--rounds", "2")
    assert proc.returncode == 0, proc.stderr
    assert "no Django request row in this run" in proc.stdout.splitlines()[2]


def test_the_summary_has_the_real_server_row():
    from asgiref_fast._bench.runner import _summary

    report = {
        "results": [{"group": "django", "title": "Django ASGI request, concurrency 16",
                     "median_seconds": {"upstream": 3.0, "compiled": 1.0, "pure": 1.5}}],
        "server": {"conditions": {"workers": 2, "connections": 32},
                   "medians": {"upstream": {"rps": 700.0}, "compiled": {"rps": 1750.0},
                               "pure": {"rps": 1400.0}, "wsgi": {"rps": 2800.0}}},
    }
    lines = _summary(report, [])
    assert "compiled 3.00x  pure 2.00x" in lines[1]
    assert lines[2].lstrip().startswith("Django under uvicorn, 2 worker(s), 32 connections (req/s)")
    assert "compiled 2.50x  pure 2.00x  (gunicorn WSGI, no bridge: 4.00x)" in lines[2]


@pytest.mark.parametrize(("option", "path", "message"), [
    ("--json", "{tmp}/no/such/dir/out.json", "no such directory"),
    ("--json", "{tmp}", "is a directory"),
    ("--plot", "{tmp}/missing/out.png", "no such directory"),
])
def test_output_paths_are_checked_before_measuring(tmp_path, option, path, message):
    path = path.format(tmp=tmp_path)
    proc = run("--only", "hop", option, path)
    assert proc.returncode == 2
    assert f"{option} {path}: {message}" in proc.stderr and "Traceback" not in proc.stderr
    assert "[1/1]" not in proc.stderr  # nothing was measured


def test_unknown_case_is_refused():
    proc = run("--only", "no_such_case")
    assert proc.returncode == 2
    assert "unknown case" in proc.stderr


def test_missing_upstream_is_explained(tmp_path):
    # Hide upstream asgiref behind a package of the same name that fails.
    shadow = tmp_path / "asgiref"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = run("--only", "local_get", env=env)
    assert proc.returncode == 2
    assert "pip install" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.bench_end_to_end
def test_django_floors_add_up(tmp_path):
    # The request at concurrency 16 comes with the floors that bound it: the
    # request's work with no thread, Django's WSGI handler on 1 and 16
    # threads, and a bare loop-and-16-threads round trip, added up once the
    # inline floor has counted the request's hops.
    pytest.importorskip("asgiref.local")
    pytest.importorskip("django")
    out = tmp_path / "out.json"
    proc = run("--only", "django_c16", "--rounds", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    floors = {f["name"]: f for f in report["floors"]}
    assert set(floors) == {"django_c16_inline", "django_wsgi_1", "django_wsgi_16", "loop_roundtrip_16"}
    assert all(f["bounds"] == "django_c16" and f["median_seconds"] > 0 for f in floors.values())
    hops = report["django_hops_per_request"]["16"]
    assert hops >= 1 and hops == int(hops)  # the same calls in every request
    assert f"{hops:g} hops" in proc.stdout and "upstream takes" in proc.stdout
    for f in floors.values():
        assert f["title"] in proc.stdout


# -- --load: busy-loop processes beside the bench ------------------------------

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _busy_children(parent: int) -> "set[int]":
    """The bench's busy-loop processes: its children running busy.CODE."""
    from asgiref_fast._bench import busy

    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and busy.CODE.encode() in cmdline:
            found.add(int(entry))
    return found


def _watch_busy(bench: subprocess.Popen, count: int) -> "set[int]":
    """Every busy-loop process the bench starts, seen while it runs."""
    seen: "set[int]" = set()
    deadline = time.monotonic() + 120
    while len(seen) < count and bench.poll() is None and time.monotonic() < deadline:
        seen |= _busy_children(bench.pid)
        time.sleep(0.01)
    return seen


@needs_proc
@pytest.mark.timeout(300)
def test_load_runs_beside_the_bench_and_stops_after(tmp_path):
    pytest.importorskip("asgiref.local")
    out = tmp_path / "out.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "asgiref_fast", "bench", "--only", "hop", "--rounds", "3", "--load", "2",
         "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = _watch_busy(bench, 2)
        stdout, stderr = bench.communicate(timeout=240)
    finally:
        bench.kill()
        bench.wait()
    assert bench.returncode == 0, stderr
    assert len(seen) == 2
    assert not [pid for pid in seen if _running(pid)]
    assert "beside 2 busy-loop processes (--load 2)" in stdout.splitlines()[0]
    report = json.loads(out.read_text())
    assert report["load"] == 2 and "--load 2" in report["header"]


@needs_proc
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_load_is_stopped_when_the_bench_is_interrupted(sig):
    pytest.importorskip("asgiref.local")
    bench = subprocess.Popen(
        [sys.executable, "-m", "asgiref_fast", "bench", "--only", "hop", "--rounds", "100000", "--load", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = _watch_busy(bench, 1)
        assert seen, "the bench never started its busy-loop process"
        bench.send_signal(getattr(signal, sig))
        bench.communicate(timeout=120)
    finally:
        bench.kill()
        bench.wait()
    assert bench.returncode != 0
    assert not [pid for pid in seen if _running(pid)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("interrupt", "status"), [("KeyboardInterrupt()", 130), ("runner._Terminated(143)", 143)])
def test_an_interrupted_bench_does_not_wait_for_threads_a_case_left(interrupt, status):
    # What an interrupt landing inside ThreadPoolExecutor's worker start
    # leaves: a non-daemon thread that nothing will ever wake.
    pytest.importorskip("asgiref.local")
    script = f"""if True:
        import threading
        from asgiref_fast._bench import runner
        def cut_short(*args):
            threading.Thread(target=threading.Event().wait, name="left").start()
            raise {interrupt}
        runner._run = cut_short
        runner.main(["--only", "hop", "--rounds", "1"])
        """
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == status, proc.stderr
    assert "asgiref-fast bench: interrupted" in proc.stderr


@needs_proc
@pytest.mark.timeout(60)
def test_load_is_stopped_when_the_block_fails():
    from asgiref_fast._bench import busy

    with pytest.raises(ZeroDivisionError):
        with busy.load(2) as pids:
            assert len(pids) == 2 and all(_running(pid) for pid in pids)
            1 / 0
    assert not [pid for pid in pids if _running(pid)]


def test_no_load_is_said_too():
    from asgiref_fast._bench import busy

    assert "no added load" in busy.describe(0)
    assert "beside 1 busy-loop process (--load 1)" in busy.describe(1)


# -- --server: real servers on loopback ----------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--load", "-1"], "--load: must be at least 0, not -1"),
    (["--load", "two"], "--load: not a whole number: 'two'"),
    (["--rounds", "-1"], "--rounds: must be at least 1, not -1"),
    (["--rounds", "0"], "--rounds: must be at least 1, not 0"),
    (["--quick", "--server-rounds", "2"], "--server-rounds: only with --server, or in a full run"),
    (["--only", "hop", "--connections", "8", "--workers", "1"],
     "--connections, --workers: only with --server, or in a full run"),
    (["--server", "--server-duration", "0"], "--server-duration: must be at least 1, not 0"),
    (["--server", "nginx"], "invalid choice: 'nginx'"),
    (["--server", "--plot", "x.png"], "--plot draws the in-process cases"),
])
def test_argument_errors_are_clear(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_wrk_output_is_read():
    from asgiref_fast._bench.server import parse_wrk

    out = """Running 8s test @ http://127.0.0.1:40000/item
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    13.40ms    2.10ms  40.02ms   90.00%
  Latency Distribution
     50%  850.00us
     75%   12.00ms
     90%   20.00ms
     99%    1.02s
  38080 requests in 8.00s, 9.80MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   4760.00
Transfer/sec:      1.22MB
"""
    assert parse_wrk(out) == {"requests": 38080, "seconds": 8.0, "rps": 4760.0, "p50_ms": 0.85,
                              "p99_ms": 1020.0, "socket_errors": 3, "non_2xx": 4}


def test_uvicorn_connections_get_tcp_nodelay():
    # A socket passed to uvicorn by --fd gets no TCP_NODELAY from its event
    # loop: without it on the listening socket (which accepted ones inherit),
    # each response waited ~40 ms for a delayed ACK.
    import socket

    from asgiref_fast._bench.server import CONTENDERS, listener

    for name in ("upstream", "compiled", "pure", "nospin"):
        with listener(CONTENDERS[name]) as sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            with socket.create_connection(sock.getsockname()), sock.accept()[0] as accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@needs_proc
@pytest.mark.bench_end_to_end
@pytest.mark.timeout(300)
@pytest.mark.parametrize("client", ["wrk", "python"])
def test_server_comparison_end_to_end(tmp_path, client):
    # upstream and the pure twin can run everywhere uvicorn does; the WSGI
    # reference where gunicorn is installed too. Nothing is left running.
    import importlib.util
    import shutil

    pytest.importorskip("asgiref.local")
    pytest.importorskip("django")
    pytest.importorskip("uvicorn")
    if client == "wrk" and not shutil.which("wrk"):
        pytest.skip("wrk is not installed")
    names = ["upstream", "pure"] + (["wsgi"] if importlib.util.find_spec("gunicorn") else [])
    out = tmp_path / "out.json"
    scratch = tmp_path / "tmp"  # the bench's temporary files (its database)
    scratch.mkdir()
    proc = run("--server", *names, "--server-rounds", "1", "--server-duration", "2", "--workers", "2",
               "--connections", "4", "--client", client, "--json", str(out),
               env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    server = report["server"]
    assert list(server["medians"]) == names
    conditions = server["conditions"]
    assert conditions["workers"] == 2 and conditions["connections"] == 4 and conditions["rounds"] == 1
    assert conditions["load_generator"].startswith("wrk" if client == "wrk" else "Python clients")
    for name in names:
        medians = server["medians"][name]
        assert medians["rps"] > 0 and medians["p99_ms"] >= medians["p50_ms"] > 0
        assert medians["cpu_per_request_ms"] > 0
        (result,) = server["runs"][name]
        assert len(result["workers"]) == 2  # each worker answered /facts
        assert set(map(str, result["workers"])) <= set(result["cpu_seconds_by_process"])
        # Every process of every server is gone.
        assert not [pid for pid in result["cpu_seconds_by_process"] if _running(int(pid))]
    pure = server["medians"]["pure"]
    assert pure["ratio"]["rps_vs_upstream"] == pytest.approx(pure["rps"] / server["medians"]["upstream"]["rps"])
    if "wsgi" in names:
        assert pure["ratio"]["cpu_vs_wsgi"] == pytest.approx(
            pure["cpu_per_request_ms"] / server["medians"]["wsgi"]["cpu_per_request_ms"])
    # The report's conditions and table.
    assert "2 worker(s)" in proc.stdout and "at 4 connections" in proc.stdout
    assert "2 s x 1 round(s)" in proc.stdout and f"{os.cpu_count()} CPUs" in proc.stdout
    for name in names:
        assert server["contenders"][name]["title"] in proc.stdout
    assert not list(scratch.glob("asgiref-fast-*"))


@needs_proc
@pytest.mark.timeout(300)
def test_interrupted_server_comparison_stops_its_server():
    pytest.importorskip("asgiref.local")
    pytest.importorskip("django")
    pytest.importorskip("uvicorn")
    from asgiref_fast._bench.server import APP, group_members, process_tree

    bench = subprocess.Popen(
        [sys.executable, "-m", "asgiref_fast", "bench", "--server", "pure", "--server-duration", "60",
         "--workers", "2", "--client", "python"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait for the server's two workers, then interrupt the bench.
        server = workers = None
        deadline = time.monotonic() + 120
        while bench.poll() is None and time.monotonic() < deadline:
            for pid in process_tree(bench.pid):
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if APP.encode() in f.read():
                        server = pid
                        break
            if server is not None:
                workers = process_tree(server)
                if len(workers) >= 3:  # uvicorn's supervisor and its two workers at least
                    break
            time.sleep(0.05)
        assert server is not None, bench.communicate()
        bench.send_signal(signal.SIGINT)
        bench.communicate(timeout=120)
    finally:
        bench.kill()
        bench.wait()
    assert bench.returncode != 0
    assert not group_members(server)
    assert not [pid for pid in workers if _running(pid)]
