"""The bench's Django app (django_app.py) as a server loads it, for the
real-server comparison (server.py): ``asgiref_fast._bench.django_server:asgi``
for uvicorn, ``asgiref_fast._bench.django_server:wsgi`` for gunicorn. The same
view, middleware and database either way; the bench makes the database and
names it in $ASGIREF_FAST_BENCH_DB."""

import os

from .django_app import configure, run_sync_in_place

if os.environ.get("ASGIREF_FAST_BENCH_INLINE") == "1":  # the floor with no thread at all
    run_sync_in_place()
if os.environ.get("ASGIREF_FAST_BENCH_LANE_IDLE"):  # the PostgreSQL bench's shorter lane idle time
    from asgiref_fast import _lanes

    _lanes.pool().idle_seconds = float(os.environ["ASGIREF_FAST_BENCH_LANE_IDLE"])
configure(os.environ["ASGIREF_FAST_BENCH_DB"])


def __getattr__(name: str):
    # Only the handler the server asks for is made.
    if name == "asgi":
        from django.core.handlers.asgi import ASGIHandler as Handler
    elif name == "wsgi":
        from django.core.handlers.wsgi import WSGIHandler as Handler
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    handler = globals()[name] = Handler()
    return handler
