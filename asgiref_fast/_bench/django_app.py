"""An in-process Django ASGI app for the request benchmark, run as a worker
process per implementation: ``python -m asgiref_fast._bench.django_app IMPL``
with IMPL one of upstream, compiled, pure, or a floor:

- ``inline``: the same ASGI requests with every sync_to_async call run in
  place on the event loop, so no thread is involved at all;
- ``wsgi``: the same app under Django's WSGIHandler, CONCURRENCY plain
  threads each making one request after another; no sync/async hop.

The worker answers lines ``REQUESTS CONCURRENCY`` on stdin with the seconds
it took to serve that many requests with that many in flight at once: a sync
view making one SQLite query, behind Django's SecurityMiddleware,
CommonMiddleware, CsrfViewMiddleware and XFrameOptionsMiddleware. The inline
floor adds how many sync_to_async calls each request made.

It times them as a server sees them in steady state (see Window): every
client keeps a request in flight from before the timed stretch to after it,
and the requests that start the clients off are not timed.
"""

import asyncio
import io
import json
import os
import sys
import tempfile
import threading
import time

FLOORS = ("inline", "wsgi")
# Django's DATABASES["default"] as JSON, instead of SQLite at the given path
# (the PostgreSQL bench, pg_bench.py, sets it).
DATABASE_VARIABLE = "ASGIREF_FAST_BENCH_DATABASE"
HOPS = [0]  # sync_to_async calls the inline floor ran in place


def setup(impl: str, database: str):
    """The app's ASGI (or, for the wsgi floor, WSGI) handler, on *impl*, with
    a fresh database at *database*."""
    if impl != "upstream":
        import asgiref_fast

        asgiref_fast.install()
        if impl not in FLOORS:
            assert asgiref_fast.COMPILED == (impl == "compiled"), f"{impl} twin is not available"
    if impl == "inline":
        run_sync_in_place()
    configure(database)
    create_database()
    if impl == "wsgi":
        from django.core.handlers.wsgi import WSGIHandler

        return WSGIHandler()
    from django.core.handlers.asgi import ASGIHandler

    return ASGIHandler()


def run_sync_in_place() -> None:
    """The inline floor: every sync_to_async call (of the asgiref in effect)
    runs in place on the event loop, so no thread is involved at all."""
    # Django refuses its sync-only calls on a loop's thread unless told.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from asgiref.sync import SyncToAsync

    async def run_in_place(self, *args, **kwargs):
        HOPS[0] += 1
        return self.func(*args, **kwargs)

    SyncToAsync.__call__ = run_in_place


def configure(database: str) -> None:
    """Sets Django up for the app: the view at /item, on SQLite at *database*,
    behind the four middleware; and /facts, which says what serves it (the
    real-server bench asks each server process)."""
    import django
    from django.conf import settings
    from django.db import connection
    from django.http import HttpResponse, JsonResponse
    from django.urls import path

    def view(request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT value FROM item WHERE id = %s", [1])
            (value,) = cursor.fetchone()
        return HttpResponse(f"item {value}")

    async def facts(request):
        # Async: under ASGI it runs on the server's event loop, which it names.
        return JsonResponse(served_by(request))

    module = type(sys)("bench_urls")
    module.urlpatterns = [path("item", view), path("facts", facts)]
    sys.modules["bench_urls"] = module
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        ROOT_URLCONF="bench_urls",
        INSTALLED_APPS=[],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        DATABASES={"default": json.loads(os.environ[DATABASE_VARIABLE]) if os.environ.get(DATABASE_VARIABLE)
                   else {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
    )
    django.setup()


def create_database() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, value TEXT)")
        cursor.execute("INSERT INTO item VALUES (1, 'one')")
    connection.close()


def served_by(request) -> dict:
    """What serves *request*: this process, the asgiref in it, the twin and
    whether it spins, the event loop and HTTP parser (ASGI) or the server
    software (WSGI)."""
    import asgiref.sync

    found = {
        "pid": os.getpid(),
        "interface": "asgi" if "asgi" in type(request).__module__ else "wsgi",
        "asgiref_sync": asgiref.sync.__name__,
        "server_software": request.META.get("SERVER_SOFTWARE", ""),
        "loop": None,
        "http": None,
        "compiled": None,
        "max_spinners": None,
        "location": None,
        "inline": bool(HOPS[0]) or os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE") == "true",
    }
    if found["interface"] == "asgi":
        found["loop"] = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        found["http"] = next((name for name in ("httptools", "h11")
                              if f"uvicorn.protocols.http.{name}_impl" in sys.modules), None)
    if asgiref.sync.__name__ == "asgiref_fast.sync":
        import asgiref_fast
        from asgiref_fast import _impl

        found["location"] = os.path.dirname(os.path.realpath(asgiref_fast.__file__))
        found["compiled"] = asgiref_fast.COMPILED
        found["max_spinners"] = _impl.workqueue.configure_spinning()["max_spinners"] if asgiref_fast.COMPILED else 0
    return found


SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/item", "raw_path": b"/item", "query_string": b"",
    "root_path": "", "headers": [(b"host", b"testserver")],
    "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
}


async def request(app) -> int:
    return (await exchange(app, dict(SCOPE)))[0]["status"]


async def exchange(app, scope: dict) -> "list[dict]":
    """One request with an empty body to *app*: the messages it sent."""
    sent: "list[dict]" = []
    received = False

    async def receive():
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never disconnects

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


class Window:
    """Times *requests* completions at a steady *concurrency*.

    Clients keep requesting until the window is full, so each one has a
    request in flight all through it: the load never ramps up or drains inside
    it. It opens at the completion that ends the warm-in (two requests per
    client: their first ones start all at once, after the worker sat idle
    while the other implementations ran) and closes at the *requests*-th
    completion after that. Requests still in flight then finish untimed.
    """

    def __init__(self, requests: int, concurrency: int) -> None:
        self.warm = 2 * concurrency
        self.last = self.warm + requests
        self.done = 0  # completions so far, warm-in and drain included
        self.opened = self.closed = 0.0
        self.lock = threading.Lock()  # the WSGI floor's threads share one

    def full(self) -> bool:
        return self.done >= self.last

    def completed(self) -> None:
        with self.lock:
            self.done += 1
            if self.done == self.warm:
                self.opened = time.perf_counter()
            elif self.done == self.last:
                self.closed = time.perf_counter()

    def stop(self) -> None:
        with self.lock:
            self.done = max(self.done, self.last)

    def seconds(self) -> float:
        return self.closed - self.opened


async def serve(app, window: Window, concurrency: int) -> float:
    async def client():
        while not window.full():
            status = await request(app)
            assert status == 200, status
            window.completed()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return window.seconds()


def wsgi_request(app) -> str:
    environ = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/item", "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    statuses = []
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        b"".join(body)
    finally:
        body.close()
    return statuses[0]


def serve_wsgi(app, window: Window, concurrency: int) -> float:
    failures = []

    def client():
        try:
            while not window.full():
                status = wsgi_request(app)
                assert status.startswith("200"), status
                window.completed()
        except BaseException as exc:
            failures.append(exc)
            window.stop()  # the others too

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return window.seconds()


def main() -> None:
    impl = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="asgiref-fast-bench-") as tmp:
        serve_lines(impl, setup(impl, os.path.join(tmp, "db.sqlite3")))


def serve_lines(impl: str, app) -> None:
    loop = asyncio.new_event_loop()
    print("ready", flush=True)
    for line in sys.stdin:
        requests, concurrency = map(int, line.split())
        window = Window(requests, concurrency)
        if impl == "wsgi":
            print(serve_wsgi(app, window, concurrency), flush=True)
        elif impl == "inline":
            HOPS[0] = 0
            seconds = loop.run_until_complete(serve(app, window, concurrency))
            print(seconds, HOPS[0] / window.done, flush=True)
        else:
            print(loop.run_until_complete(serve(app, window, concurrency)), flush=True)


if __name__ == "__main__":
    main()
