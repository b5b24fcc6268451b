"""python -m asgiref_fast bench: the report, its JSON and its chart."""

import json
import os
import subprocess
import sys

import pytest


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "asgiref_fast", "bench", *args],
        capture_output=True, text=True, timeout=300, env=env or os.environ.copy(),
    )


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
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
