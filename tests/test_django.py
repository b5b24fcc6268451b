"""asgiref_fast under a real Django project (tests/djangoproject/): Django's
test Client and AsyncClient, Channels' WebsocketCommunicator, and a real
uvicorn serving HTTP on loopback.

Each runs in a fresh interpreter started with ASGIREF_FAST=1, as a deployment
would switch asgiref_fast on, so that it is in place before Django imports
asgiref; the code there reports what it saw as JSON, and the tests check it.
"""

import http.client
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
import threading
from pathlib import Path

import pytest

import asgiref_fast

pytest.importorskip("django")
pytest.importorskip("channels")

TESTS = Path(__file__).resolve().parent


def project_env(db: Path) -> dict:
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "ASGIREF_FAST": "1",
        "PYTHONPATH": path,
        "DJANGO_SETTINGS_MODULE": "djangoproject.settings",
        "DJANGOPROJECT_DB": str(db),
    }


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """A database with every migration applied, for the tests to copy."""
    db = tmp_path_factory.mktemp("django") / "migrated.sqlite3"
    subprocess.run([sys.executable, "-m", "django", "migrate", "--verbosity=0"],
                   env=project_env(db), check=True, timeout=120)
    return db


@pytest.fixture
def db(migrated, tmp_path) -> Path:
    return Path(shutil.copy(migrated, tmp_path / "db.sqlite3"))


PRELUDE = """\
import asyncio, json
import django
django.setup()
import asgiref.sync, asgiref_fast.sync
assert asgiref.sync is asgiref_fast.sync, "ASGIREF_FAST=1 did not switch asgiref_fast on"
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

def report(**values):
    print(json.dumps(values))
"""


def in_django(db: Path, code: str) -> dict:
    """Runs *code* after PRELUDE in a fresh ASGIREF_FAST=1 interpreter and
    returns what it passed to report()."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=project_env(db), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_django_and_channels_use_asgiref_fast(db):
    seen = in_django(db, """
        import sys
        import asgiref_fast, channels.consumer, channels.db, django.core.handlers.asgi
        report(
            handler_context=(
                django.core.handlers.asgi.ThreadSensitiveContext is asgiref_fast.sync.ThreadSensitiveContext
            ),
            channels_async_to_sync=channels.consumer.async_to_sync is asgiref_fast.sync.async_to_sync,
            channels_db_base=issubclass(channels.db.DatabaseSyncToAsync, asgiref_fast.sync.SyncToAsync),
            loaders=sorted({type(m.__spec__.loader).__name__ for n, m in sys.modules.items()
                            if n == "asgiref" or n.startswith("asgiref.")}),
            compiled=asgiref_fast.COMPILED,
        )
    """)
    assert seen == {
        "handler_context": True,
        "channels_async_to_sync": True,
        "channels_db_base": True,
        "loaders": ["_StandIn"],  # no module of upstream asgiref was loaded
        "compiled": asgiref_fast.COMPILED,  # the same twin as this test run
    }


def test_client_sync_view_orm(db):
    seen = in_django(db, """
        client = Client()
        created = [client.post("/notes/", {"text": text}) for text in ("one", "two")]
        listed = client.get("/notes/")
        from djangoproject.notes.models import Note
        report(created=[(r.status_code, r.json()["text"]) for r in created], listed=listed.json(),
               stored=list(Note.objects.values_list("text", flat=True)))
    """)
    assert seen == {"created": [[201, "one"], [201, "two"]], "listed": {"notes": ["one", "two"]},
                    "stored": ["one", "two"]}


def test_client_sessions_and_auth(db):
    seen = in_django(db, """
        User.objects.create_user("ada", password="lovelace")
        client = Client()
        anonymous = client.get("/whoami/")
        logged_in = client.login(username="ada", password="lovelace")
        report(anonymous=[anonymous.status_code, anonymous["Location"]], logged_in=logged_in,
               whoami=client.get("/whoami/").json(),
               visits=[client.get("/visits/").json()["visits"] for _ in range(3)],
               other_client=Client().get("/visits/").json()["visits"])
    """)
    assert seen == {"anonymous": [302, "/accounts/login/?next=/whoami/"], "logged_in": True,
                    "whoami": {"user": "ada"}, "visits": [1, 2, 3], "other_client": 1}


def test_client_streaming_response(db):
    seen = in_django(db, """
        response = Client().get("/stream/?n=3")
        report(streaming=response.streaming, body=b"".join(response.streaming_content).decode())
    """)
    assert seen == {"streaming": True,
                    "body": "line 0 of 0 notes\nline 1 of 0 notes\nline 2 of 0 notes\n"}


def test_async_client(db):
    seen = in_django(db, """
        async def main():
            client = AsyncClient()
            created = await client.post("/notes/", {"text": "from async"})
            sync_view = await client.get("/notes/")
            async_view = await client.get("/async/")
            visits = [(await client.get("/visits/")).json()["visits"] for _ in range(2)]
            anonymous = await client.get("/whoami/")
            user = await sync_to_async(User.objects.create_user)("grace", password="hopper")
            await sync_to_async(client.force_login)(user)
            whoami = await client.get("/whoami/")
            stream = await client.get("/stream/?n=2")
            # A sync generator that uses the ORM: consume it off the event loop.
            body = await sync_to_async(b"".join)(stream.streaming_content)
            bridge = await client.get("/bridge/")
            return dict(created=created.status_code, sync_view=sync_view.json(), async_view=async_view.json(),
                        visits=visits, anonymous=anonymous.status_code, whoami=whoami.json(), body=body.decode(),
                        bridge=bridge.json())

        report(**asyncio.run(asyncio.wait_for(main(), 60)))
    """)
    assert seen == {
        "created": 201,
        "sync_view": {"notes": ["from async"]},
        "async_view": {"count": 1, "notes": ["from async"]},
        "visits": [1, 2],
        "anonymous": 302,
        "whoami": {"user": "grace"},
        "body": "line 0 of 1 notes\nline 1 of 1 notes\n",
        "bridge": {"same_thread": True, "main_thread": False},
    }


CHANNELS = """
    from channels.testing import WebsocketCommunicator
    from djangoproject.asgi import application

    async def room(headers=()):
        sync = WebsocketCommunicator(application, "/ws/sync/", headers=list(headers))
        async_ = WebsocketCommunicator(application, "/ws/async/", headers=list(headers))
        heard = {}
        try:
            for name, member in (("sync", sync), ("async", async_)):
                connected, _ = await member.connect(timeout=10)
                assert connected, name
                heard[name] = [await member.receive_from(timeout=10)]
            for speaker, text in ((sync, "hello"), (async_, "hi")):
                await speaker.send_to(text_data=text)
                for name, member in (("sync", sync), ("async", async_)):
                    heard[name].append(await member.receive_from(timeout=10))
            for member in (sync, async_):
                assert await member.receive_nothing(timeout=0.1)
        finally:
            await sync.disconnect()
            await async_.disconnect()
        return heard
"""


# channels.testing imports daphne, which needs cryptography, which needs cffi:
# cffi does not build for free-threaded 3.13 (it supports free-threading from
# 3.14 on), so the test extra cannot bring daphne there.
needs_daphne = pytest.mark.skipif(
    importlib.util.find_spec("daphne") is None
    and bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    and sys.version_info < (3, 14),
    reason="channels.testing needs daphne, which cannot be installed on free-threaded 3.13 (cffi)",
)


@needs_daphne
def test_channels_group_send_between_sync_and_async_consumers(db):
    seen = in_django(db, CHANNELS + """
    report(**asyncio.run(room()))
    """)
    said = ["sync said hello", "async said hi"]
    assert seen == {"sync": ["welcome AnonymousUser: 0 notes", *said],
                    "async": ["welcome AnonymousUser: 0 notes", *said]}


@needs_daphne
def test_channels_consumers_see_the_session_user(db):
    seen = in_django(db, CHANNELS + """
    client = Client()
    client.force_login(User.objects.create_user("ada"))
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    report(**asyncio.run(room(headers=[(b"cookie", cookie)])))
    """)
    assert seen["sync"][0] == seen["async"][0] == "welcome ada: 0 notes"


class Uvicorn:
    """A uvicorn process serving djangoproject on a socket this test bound."""

    def __init__(self, db: Path, log: Path):
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.log = log
        with sock, open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "djangoproject.asgi:application", "--fd", str(sock.fileno()),
                 "--lifespan", "off", "--log-level", "warning"],
                env=project_env(db), pass_fds=[sock.fileno()], stdout=out, stderr=subprocess.STDOUT,
            )
        # Only the server holds the socket now: if it dies, requests fail at once.

    def get(self, path: str, headers=None) -> "tuple[int, http.client.HTTPMessage, bytes]":
        # The first request also waits for the server to start, hence the timeout.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        except OSError as exc:
            raise AssertionError(f"GET {path}: {exc!r}; server log:\n{self.log.read_text()}") from exc
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def uvicorn(migrated, tmp_path_factory):
    pytest.importorskip("uvicorn")
    tmp = tmp_path_factory.mktemp("uvicorn")
    server = Uvicorn(Path(shutil.copy(migrated, tmp / "db.sqlite3")), tmp / "server.log")
    try:
        yield server
    finally:
        server.stop()


def test_uvicorn_process_runs_on_asgiref_fast(uvicorn):
    status, _, body = uvicorn.get("/facts/")
    assert status == 200, body
    facts = json.loads(body)
    assert facts["pid"] == uvicorn.process.pid  # the server itself answered
    assert facts["asgiref_sync"] == facts["handler_context"] == "asgiref_fast.sync"
    assert facts["active"] and facts["activity"] == "yes, switched on by ASGIREF_FAST at start-up"
    assert facts["compiled"] is asgiref_fast.COMPILED


def test_uvicorn_serves_orm_sessions_and_streams(uvicorn):
    status, _, body = uvicorn.get("/notes/")
    assert (status, json.loads(body)) == (200, {"notes": []})
    status, _, body = uvicorn.get("/async/")
    assert (status, json.loads(body)) == (200, {"count": 0, "notes": []})

    status, headers, body = uvicorn.get("/visits/")
    assert (status, json.loads(body)) == (200, {"visits": 1})
    cookie = headers["set-cookie"].split(";")[0]
    assert json.loads(uvicorn.get("/visits/", {"Cookie": cookie})[2]) == {"visits": 2}

    assert json.loads(uvicorn.get("/bridge/")[2]) == {"same_thread": True, "main_thread": False}

    status, headers, body = uvicorn.get("/stream/?n=4")
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert body.decode().splitlines() == [f"line {i} of 0 notes" for i in range(4)]


def test_uvicorn_concurrent_requests(uvicorn):
    statuses = [[] for _ in range(8)]

    def client(mine):
        mine.extend(uvicorn.get(path)[0] for path in ("/notes/", "/async/", "/bridge/") * 4)

    threads = [threading.Thread(target=client, args=(mine,)) for mine in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert statuses == [[200] * 12] * 8
