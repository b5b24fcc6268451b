"""A throwaway PostgreSQL cluster for the tests and the bench: initdb in a
temporary directory, listening on 127.0.0.1 at a free port with password
authentication over TCP (as a deployment connects), started and always
stopped by its owner. Needs the server binaries (Debian: ``apt-get install
postgresql``); ``find_bindir()`` says whether they are here.

As root, the cluster runs as the ``postgres`` user (PostgreSQL refuses to
run as root).
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

USER = "bench"
PASSWORD = "bench-password"
START_SECONDS = 60
STOP_SECONDS = 30


def find_bindir() -> "str | None":
    """Where initdb, pg_ctl and postgres are, or None."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if candidates:
        return os.path.dirname(candidates[-1])
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30).stdout.strip()
        if os.path.exists(os.path.join(bindir, "initdb")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """``with Cluster() as pg:`` a running cluster; ``pg.settings(name)``
    Django's DATABASES entry for a database of it; stopped on exit."""

    def __init__(self, bindir: "str | None" = None) -> None:
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)")
        self.host, self.port = "127.0.0.1", _free_port()
        self.user, self.password = USER, PASSWORD
        self.dir = tempfile.mkdtemp(prefix="asgiref-fast-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self._as: "list[str]" = []
        self._started = False

    def _run(self, *args: str, timeout: float = START_SECONDS) -> None:
        subprocess.run([*self._as, *args], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> "Cluster":
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", self.user, "--pwfile", pwfile,
                  "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-sync")
        options = (f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories='' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   "-c log_connections=on -c log_disconnections=on")
        self._started = True
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-o", options,
                  "-w", "-t", str(START_SECONDS), "start", timeout=START_SECONDS + 10)
        return self

    def stop(self) -> None:
        try:
            if self._started:
                try:
                    self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                              "-t", str(STOP_SECONDS), "stop", timeout=STOP_SECONDS + 10)
                except (subprocess.SubprocessError, OSError):
                    self._kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _kill(self) -> None:
        # pg_ctl could not stop it: the postmaster's pid is the first line of its pid file.
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def __enter__(self) -> "Cluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dsn(self, dbname: str = "postgres") -> str:
        return (f"host={self.host} port={self.port} user={self.user} password={self.password} "
                f"dbname={dbname}")

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def settings(self, name: str) -> dict:
        """Django's DATABASES entry for database *name*."""
        return {"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": self.user,
                "PASSWORD": self.password, "HOST": self.host, "PORT": str(self.port)}

    def log_text(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
