"""Django on PostgreSQL with persistent connections, under asgiref_fast, in
a fresh interpreter: ``python pg_scenarios.py CONFIG_JSON SCENARIO``. It
prints one JSON line of what it saw; test_postgres.py checks it.

Requests go through Django's ASGIHandler in process, C clients at a time,
each sending its next request once it has the last one's response. The
garbage collector is off all through, so that nothing it would free counts.
"""

import asyncio
import gc
import json
import sys
import threading
import time

gc.disable()

import asgiref_fast  # noqa: E402

asgiref_fast.install()

from asgiref_fast import _lanes  # noqa: E402
from asgiref_fast._bench.django_app import SCOPE, exchange  # noqa: E402

APP = "asgiref-fast-test"  # application_name of the app's connections


def setup(config: dict):
    # The test hook for the lanes' idle time: set before any lane exists.
    _lanes.pool().idle_seconds = config.get("idle_seconds", _lanes.pool().idle_seconds)
    import django
    from django.conf import settings
    from django.db import connection, transaction
    from django.db.backends.signals import connection_created
    from django.http import HttpResponse
    from django.urls import path

    def item(request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT value FROM item WHERE id = %s", [1])
            (value,) = cursor.fetchone()
        return HttpResponse(f"item {value} {connection.connection.info.backend_pid}")

    def write_then_fail(request):
        # Under ATOMIC_REQUESTS, the whole request's transaction.
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO item (id, value) VALUES (%s, 'written')", [int(request.GET["id"])])
        raise ValueError("the view fails after writing")

    def broken_transaction(request):
        # An error inside a transaction, then the view fails: the
        # connection must come back usable for the next request.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO item (id, value) VALUES (%s, 'half')", [int(request.GET["id"])])
                cursor.execute("SELECT 1 / 0")
        return HttpResponse("unreachable")

    module = type(sys)("pg_urls")
    module.urlpatterns = [path("item", item), path("write_then_fail", write_then_fail),
                          path("broken", broken_transaction)]
    sys.modules["pg_urls"] = module
    database = dict(config["database"])
    database.update(CONN_MAX_AGE=config["conn_max_age"], CONN_HEALTH_CHECKS=config.get("health_checks", False),
                    ATOMIC_REQUESTS=config.get("atomic", False), OPTIONS={"application_name": APP})
    settings.configure(
        DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["testserver"], ROOT_URLCONF="pg_urls",
        INSTALLED_APPS=[], DATABASES={"default": database},
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        LOGGING_CONFIG=None,  # the failing views' tracebacks are expected
    )
    django.setup()
    opened = []
    connection_created.connect(lambda sender, connection, **kw: opened.append(threading.get_ident()),
                               weak=False)
    from django.core.handlers.asgi import ASGIHandler

    return ASGIHandler(), opened


class Monitor:
    """A connection of its own (not the app's) to watch the app's."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn + " application_name=monitor", autocommit=True)

    def backends(self) -> "list[int]":
        return [pid for (pid,) in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [APP]).fetchall()]

    def terminate_all(self) -> int:
        killed = self.conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            [APP]).fetchone()[0]
        deadline = time.monotonic() + 30
        while self.backends() and time.monotonic() < deadline:
            time.sleep(0.01)
        return killed

    def rows(self, ids: "list[int]") -> int:
        return self.conn.execute("SELECT count(*) FROM item WHERE id = ANY(%s)", [ids]).fetchone()[0]


async def get(app, path: str, query: bytes = b"") -> "tuple[int, bytes]":
    scope = {**SCOPE, "path": path, "raw_path": path.encode(), "query_string": query}
    sent = await exchange(app, scope)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


async def load(app, clients: int, requests: "int | None" = None, seconds: "float | None" = None,
               monitor: "Monitor | None" = None) -> dict:
    """*clients* clients of /item, for *requests* each or *seconds*; the
    statuses seen, and the peak of the app's open connections (sampled by
    *monitor* between requests)."""
    statuses: "dict[int, int]" = {}
    peak = 0
    end = None if seconds is None else time.monotonic() + seconds

    async def client():
        nonlocal peak
        n = 0
        while (requests is None or n < requests) and (end is None or time.monotonic() < end):
            status, _ = await get(app, "/item")
            statuses[status] = statuses.get(status, 0) + 1
            n += 1
            if monitor is not None and n % 25 == 0:
                peak = max(peak, len(monitor.backends()))

    await asyncio.gather(*(client() for _ in range(clients)))
    if monitor is not None:
        peak = max(peak, len(monitor.backends()))
    return {"statuses": statuses, "peak": peak}


def lane_count() -> int:
    return sum(t.name.startswith("asgiref_fast-lane") for t in threading.enumerate())


def wait_for_lanes_to_retire(seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while lane_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not lane_count()


def create_table(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS item")
        conn.execute("CREATE TABLE item (id integer PRIMARY KEY, value text)")
        conn.execute("INSERT INTO item VALUES (1, 'one')")


# -- Scenarios ----------------------------------------------------------------

def reuse_and_retire(app, opened, monitor, config) -> dict:
    """Load, then idle until every lane has retired: what stays open?"""
    result = asyncio.run(load(app, config["clients"], requests=config["requests"], monitor=monitor))
    lanes = lane_count()
    open_after_load = len(monitor.backends())
    retired = wait_for_lanes_to_retire()
    deadline = time.monotonic() + 30  # a backend ends a moment after its client closes
    while monitor.backends() and time.monotonic() < deadline:
        time.sleep(0.05)
    return dict(result, opened=len(opened), opened_on_threads=len(set(opened)), lanes=lanes,
                open_after_load=open_after_load,
                retired=retired, open_after_retire=len(monitor.backends()), gc_enabled=gc.isenabled())


def atomic_requests(app, opened, monitor, config) -> dict:
    async def run():
        outcomes = []
        for i in range(10):
            outcomes.append((await get(app, "/write_then_fail", f"id={100 + i}".encode()))[0])
            outcomes.append((await get(app, "/broken", f"id={200 + i}".encode()))[0])
            outcomes.append((await get(app, "/item"))[0])
        return outcomes

    outcomes = asyncio.run(run())
    return {"outcomes": outcomes, "rows_left": monitor.rows([*range(100, 110), *range(200, 210)]),
            "opened": len(opened)}


def killed_backends(app, opened, monitor, config) -> dict:
    async def run():
        statuses = {}
        killed = 0
        for _ in range(5):
            result = await load(app, config["clients"], requests=20)
            for status, n in result["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
            killed += monitor.terminate_all()
        return statuses, killed

    statuses, killed = asyncio.run(run())
    return {"statuses": statuses, "killed": killed, "opened": len(opened)}


def recycled_by_age(app, opened, monitor, config) -> dict:
    result = asyncio.run(load(app, config["clients"], seconds=config["seconds"], monitor=monitor))
    ages = [age for (age,) in monitor.conn.execute(
        "SELECT extract(epoch FROM now() - backend_start)::float FROM pg_stat_activity "
        "WHERE application_name = %s", [APP]).fetchall()]
    return dict(result, opened=len(opened), lanes=lane_count(), ages=ages)


def main() -> None:
    config = json.loads(sys.argv[1])
    create_table(config["dsn"])
    app, opened = setup(config)
    monitor = Monitor(config["dsn"])
    result = globals()[sys.argv[2]](app, opened, monitor, config)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
