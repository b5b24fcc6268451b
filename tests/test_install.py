"""install(): ``import asgiref...`` resolves to asgiref_fast, in fresh
interpreters so that each case starts clean."""

import os
import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )


def test_asgiref_modules_are_ours():
    proc = run_python("""
        import asgiref_fast
        asgiref_fast.install()
        asgiref_fast.install()  # harmless
        import asgiref, asgiref.sync
        from asgiref import local, wsgi
        from asgiref.current_thread_executor import CurrentThreadExecutor
        import asgiref_fast.sync, asgiref_fast.local, asgiref_fast.wsgi
        import asgiref_fast.current_thread_executor as cte
        assert asgiref.sync is asgiref_fast.sync
        assert asgiref.sync.SyncToAsync is asgiref_fast.sync.SyncToAsync
        assert local is asgiref_fast.local and wsgi is asgiref_fast.wsgi
        assert CurrentThreadExecutor is cte.CurrentThreadExecutor
        for name in ("compatibility", "server", "testing", "timeout", "typing"):
            module = __import__("asgiref." + name, fromlist=["x"])
            assert module is __import__("asgiref_fast." + name, fromlist=["x"]), name
        assert asgiref.__version__ == asgiref_fast.ASGIREF_VERSION
        try:
            import asgiref.nonexistent
        except ImportError:
            pass
        else:
            raise AssertionError("unknown asgiref module imported")
        print("ok")
    """)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_install_after_upstream_import_names_the_modules():
    pytest.importorskip("asgiref")  # upstream, installed beside us (Django needs it)
    proc = run_python("""
        import asgiref.sync, asgiref_fast
        try:
            asgiref_fast.install()
        except RuntimeError as exc:
            print(exc)
    """)
    assert "asgiref.sync" in proc.stdout and "asgiref.local" in proc.stdout, proc.stderr
    # What works instead, where the server imports asgiref first (daphne):
    assert "`asgiref-fast run daphne mysite.asgi:application`" in proc.stdout
    assert "ASGIREF_FAST=1" in proc.stdout and "top of manage.py" not in proc.stdout


def test_django_asgi_handler_serves_a_request():
    pytest.importorskip("django")
    proc = run_python("""
        import asyncio
        import asgiref_fast
        asgiref_fast.install()
        import asgiref.sync
        import django
        from django.conf import settings
        from django.http import HttpResponse
        from django.urls import path

        def view(request):
            return HttpResponse("hello " + request.GET["name"])

        urlpatterns = [path("hi", view)]
        settings.configure(DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
                           SECRET_KEY="x", MIDDLEWARE=["django.middleware.common.CommonMiddleware"])
        django.setup()
        from django.core.handlers.asgi import ASGIHandler
        import django.core.handlers.asgi as handler_module
        assert handler_module.ThreadSensitiveContext is asgiref_fast.sync.ThreadSensitiveContext

        async def main():
            sent = []
            inbox = [{"type": "http.request", "body": b"", "more_body": False}]

            async def receive():
                if inbox:
                    return inbox.pop()
                await asyncio.sleep(30)
                return {"type": "http.disconnect"}

            async def send(message):
                sent.append(message)

            scope = {"type": "http", "method": "GET", "path": "/hi", "query_string": b"name=fast",
                     "headers": [(b"host", b"testserver")], "http_version": "1.1",
                     "server": ("testserver", 80), "client": ("127.0.0.1", 1234), "scheme": "http"}
            await asyncio.wait_for(ASGIHandler()(scope, receive, send), 30)
            return sent

        sent = asyncio.run(main())
        print(sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]).decode())
    """)
    assert proc.stdout.strip() == "200 hello fast", proc.stderr
