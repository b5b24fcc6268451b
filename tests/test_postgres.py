"""Persistent database connections (CONN_MAX_AGE) under asgiref_fast, against
a real PostgreSQL: a throwaway cluster this module starts (initdb in a
temporary directory, 127.0.0.1, a free port, password auth) and stops.

Each scenario runs Django in a fresh interpreter (pg_scenarios.py) on this
run's twin, with the garbage collector off, and reports what it saw.
Skipped where PostgreSQL's server binaries or psycopg are absent.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django")
pytest.importorskip("psycopg")

from asgiref_fast._bench.postgres import Cluster, find_bindir  # noqa: E402

TESTS = Path(__file__).resolve().parent
CLIENTS = 8

pytestmark = pytest.mark.skipif(find_bindir() is None, reason="PostgreSQL's server binaries are not installed "
                                "(Debian: apt-get install postgresql)")


@pytest.fixture(scope="module")
def cluster():
    with Cluster() as pg:
        yield pg


@pytest.fixture
def database(cluster, request):
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:50]
    cluster.create_database(name)
    return cluster, name


def scenario(database, name: str, **config) -> dict:
    cluster, db = database
    config = {"dsn": cluster.dsn(db), "database": cluster.settings(db), "clients": CLIENTS, **config}
    out = subprocess.run([sys.executable, str(TESTS / "pg_scenarios.py"), json.dumps(config), name],
                         capture_output=True, text=True, timeout=240, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.timeout(300)
def test_connections_are_reused_and_closed_when_lanes_retire(database):
    seen = scenario(database, "reuse_and_retire", conn_max_age=60, requests=150, idle_seconds=0.5)
    requests = CLIENTS * 150
    assert seen["statuses"] == {"200": requests}
    # Each lane opened one connection, reused from request to request.
    assert seen["opened"] == seen["opened_on_threads"] <= CLIENTS + 2
    assert seen["peak"] <= CLIENTS + 2
    assert seen["retired"]
    # Every lane retired: every connection closed, with no garbage collection.
    assert seen["open_after_retire"] == 0 and seen["gc_enabled"] is False


@pytest.mark.timeout(300)
def test_atomic_requests_roll_back_failed_requests(database):
    seen = scenario(database, "atomic_requests", conn_max_age=60, atomic=True)
    assert seen["outcomes"] == [500, 500, 200] * 10
    assert seen["rows_left"] == 0
    assert seen["opened"] == 1  # the same connection served on, after every failure


@pytest.mark.timeout(300)
def test_failed_transactions_leave_the_connection_usable(database):
    seen = scenario(database, "atomic_requests", conn_max_age=60, atomic=False)
    # Autocommit: the first view's write stays (it was committed); the
    # broken transaction's does not.
    assert seen["outcomes"] == [500, 500, 200] * 10
    assert seen["rows_left"] == 10
    assert seen["opened"] == 1


@pytest.mark.timeout(300)
def test_killed_backends_are_replaced_with_health_checks(database):
    seen = scenario(database, "killed_backends", conn_max_age=60, health_checks=True)
    assert seen["killed"] > 0
    assert seen["statuses"] == {"200": 5 * CLIENTS * 20}
    assert seen["opened"] > seen["killed"] // 5  # new ones after the kills


@pytest.mark.timeout(300)
def test_connections_older_than_max_age_are_recycled_under_load(database):
    seen = scenario(database, "recycled_by_age", conn_max_age=1, seconds=4)
    assert set(seen["statuses"]) == {"200"}
    assert seen["opened"] > seen["lanes"]  # some were replaced, as under WSGI
    assert seen["peak"] <= CLIENTS + 2
