"""An in-process Django ASGI app for the request benchmark, run as a worker
process per implementation: ``python -m asgiref_fast._bench.django_app IMPL``
with IMPL one of upstream, compiled, pure.

The worker answers lines ``REQUESTS CONCURRENCY`` on stdin with the seconds
it took to serve that many requests with that many in flight at once: a sync
view making one SQLite query, behind Django's SecurityMiddleware,
CommonMiddleware, CsrfViewMiddleware and XFrameOptionsMiddleware.
"""

import asyncio
import os
import sys
import tempfile
import time


def setup(impl: str):
    if impl != "upstream":
        import asgiref_fast

        asgiref_fast.install()
        assert asgiref_fast.COMPILED == (impl == "compiled"), f"{impl} twin is not available"
    import django
    from django.conf import settings
    from django.db import connection
    from django.http import HttpResponse
    from django.urls import path

    def view(request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT value FROM item WHERE id = %s", [1])
            (value,) = cursor.fetchone()
        return HttpResponse(f"item {value}")

    module = type(sys)("bench_urls")
    module.urlpatterns = [path("item", view)]
    sys.modules["bench_urls"] = module
    database = os.path.join(tempfile.mkdtemp(prefix="asgiref-fast-bench-"), "db.sqlite3")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="bench_urls",
        INSTALLED_APPS=[],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
    )
    django.setup()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, value TEXT)")
        cursor.execute("INSERT INTO item VALUES (1, 'one')")
    connection.close()
    from django.core.handlers.asgi import ASGIHandler

    return ASGIHandler()


SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/item", "raw_path": b"/item", "query_string": b"",
    "root_path": "", "headers": [(b"host", b"testserver")],
    "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
}


async def request(app) -> int:
    sent = []
    received = False

    async def receive():
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never disconnects

    async def send(message):
        sent.append(message)

    await app(dict(SCOPE), receive, send)
    return sent[0]["status"]


async def serve(app, requests: int, concurrency: int) -> float:
    async def client(n: int):
        for _ in range(n):
            status = await request(app)
            assert status == 200, status

    share, extra = divmod(requests, concurrency)
    started = time.perf_counter()
    await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))
    return time.perf_counter() - started


def main() -> None:
    app = setup(sys.argv[1])
    loop = asyncio.new_event_loop()
    print("ready", flush=True)
    for line in sys.stdin:
        requests, concurrency = map(int, line.split())
        print(loop.run_until_complete(serve(app, requests, concurrency)), flush=True)


if __name__ == "__main__":
    main()
