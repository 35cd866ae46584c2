"""SIGTERM stops what ``enhancement-pipeline ui`` and ``demo`` started, as Ctrl-C does.

``StopSignals`` and ``stop_process_groups`` (what both commands use) on a real tree of processes, one of which
ignores SIGTERM as Dagster's code servers do; then ``ui`` end to end on a prepared demo folder (its webserver
answering HTTP first), and ``demo`` stopped once its dagster-daemon runs. Processes are checked by pid through
/proc; every wait is bounded, and whatever a failed test leaves running is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from enhancement_pipeline.local.services import EmbeddedPostgres, Stopped, StopSignals, free_port
from enhancement_pipeline.settings import PROJECT_ROOT

CLI = Path(sys.executable).parent / "enhancement-pipeline"
# Servers these tests start are sized for 1 GB, not for the machine.
SMALL_POSTGRES = {"EMBEDDED_POSTGRES_MEMORY": "1GB"}


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name in parentheses may contain spaces
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX"  # a zombie has stopped; only its exit status is left


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if _alive(p)}


def _wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(interval_s)
    return result


def _kill(pids: set[int]) -> None:
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Not tmp_path: its parents are mode 0700 and PostgreSQL runs as `nobody` when tests run as root.
    path = Path(tempfile.mkdtemp(prefix="ep-stop-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- StopSignals in this process ----------------------------------------------------------------------------

def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.5)  # the handler runs in the main thread at its next check, well within this


def test_first_signal_raises_later_ones_are_ignored_and_handlers_come_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals() as stop:
        with pytest.raises(Stopped) as raised:
            _deliver(signal.SIGTERM)
        assert raised.value.signum == stop.signum == signal.SIGTERM
        assert isinstance(raised.value, KeyboardInterrupt)  # so Ctrl-C's cleanup paths run for SIGTERM
        _deliver(signal.SIGTERM)  # cleanup in progress: nothing raised
        _deliver(signal.SIGINT)
        assert stop.signum == signal.SIGTERM
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_shield_only_records_the_signal() -> None:
    with StopSignals() as stop:
        with stop.shield():
            _deliver(signal.SIGINT)
        assert stop.signum == signal.SIGINT
        _deliver(signal.SIGTERM)  # the first was recorded: this one is a second one
    assert stop.signum == signal.SIGINT


# --- StopSignals and stop_process_groups on a real process tree ----------------------------------------------

# A leader ignoring SIGTERM with a child ignoring it too (as Dagster's code server does); it prints both pids.
_LEADER = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"])
print(child.pid, flush=True)
while True:
    time.sleep(1)
"""

# Shaped like the `ui` command: start a process group, wait, stop it in the finally; exit 128 + signal.
_COMMAND = f"""
import subprocess, sys, time
from enhancement_pipeline.local.services import StopSignals, stop_process_groups

with StopSignals() as stop:
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-c", {_LEADER!r}], start_new_session=True,
                                      stdout=subprocess.PIPE, text=True))
        print("tree", procs[0].pid, procs[0].stdout.readline().strip(), flush=True)
        time.sleep(600)
    except KeyboardInterrupt:
        pass
    finally:
        with stop.shield():
            print("cleaning", flush=True)
            stop_process_groups(procs, timeout_s=120)
            print("cleaned", flush=True)
sys.exit(128 + stop.signum)
"""


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_whole_tree_and_a_second_one_does_not_cut_the_cleanup_short(
        scratch: Path, first: int) -> None:
    out, err = scratch / "out", scratch / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        command = subprocess.Popen([sys.executable, "-u", "-c", _COMMAND], stdout=stdout, stderr=stderr,
                                   start_new_session=True)
    tree: set[int] = set()
    try:
        line = _wait_until(lambda: next((ln for ln in out.read_text().splitlines() if ln.startswith("tree ")),
                                        None), 60, "the command's process tree")
        leader, child = (int(p) for p in line.split()[1:])
        tree = {leader, child}
        assert _alive(leader) and _alive(child)

        command.send_signal(first)
        _wait_until(lambda: "cleaning" in out.read_text(), 30, "the cleanup to start")
        # Both members ignore SIGTERM: the cleanup waits for the leader. Signals now must not cut it short.
        command.send_signal(signal.SIGTERM)
        command.send_signal(signal.SIGINT)
        _wait_until(lambda: err.read_text().count("already stopping") == 2, 30, "both signals noted")
        assert command.poll() is None and "cleaned" not in out.read_text()
        assert _alive(leader) and _alive(child)

        os.kill(leader, signal.SIGKILL)  # ends the wait; the rest of the group (child) must then be killed
        assert command.wait(60) == 128 + first
        assert "cleaned" in out.read_text()
        _wait_until(lambda: not any(_alive(p) for p in tree), 30, f"{tree} gone")
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(10)
        _kill(tree)


# --- the commands end to end -----------------------------------------------------------------------------------

class _Watched:
    """A command started in its own session, with every process seen below it remembered (to check they
    all went, and to kill what a failed test leaves behind)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen([str(CLI), *args], cwd=PROJECT_ROOT, env={**os.environ, **env},
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: set[int] = set()

    def look(self) -> set[int]:
        self.seen |= _descendants(self.proc.pid)
        return self.seen

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self, what: str) -> None:
        assert self.proc.poll() is None, f"exited ({self.proc.returncode}) before {what}:\n{self.output()[-3000:]}"

    def terminate_and_wait(self, timeout_s: float) -> int:
        self.look()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout_s:.0f} s after SIGTERM:\n{self.output()[-3000:]}") from None

    def kill_everything(self) -> None:
        if self.proc.poll() is None:
            self.look()
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        _kill(self.seen)


def _postgres_stopped(data_dir: Path, pid: int) -> bool:
    return not (data_dir / "postmaster.pid").exists() and not _alive(pid)


def test_ui_stops_its_webserver_and_postgres_on_sigterm(scratch: Path) -> None:
    # What `ui` needs of a finished demo: its Postgres data folder with the app's and Dagster's databases.
    data_dir = scratch / "postgres" / "data"
    postgres = EmbeddedPostgres(scratch / "postgres", memory_bytes=1024**3).start()
    try:
        for name in ("enhancement", "dagster"):
            postgres.create_database(name)
    finally:
        postgres.stop()
    port = free_port()
    ui = _Watched(["ui", "--port", str(port)], {"ENHANCEMENT_DEMO_ROOT": str(scratch), **SMALL_POSTGRES},
                  scratch / "ui.log")
    postmaster = None
    try:
        def answers() -> bool:
            ui.running("the webserver answered")
            ui.look()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_until(answers, 180, "the webserver answering HTTP", interval_s=0.5)
        postmaster = _postmaster_pid(data_dir)
        assert postmaster is not None and _alive(postmaster)
        webservers = {p for p in ui.look() if "dagster-webserver" in _cmdline(p)}
        assert webservers, f"no dagster-webserver below the ui command: {[_cmdline(p) for p in ui.seen]}"

        assert ui.terminate_and_wait(120) == 0, ui.output()[-3000:]
        _wait_until(lambda: _postgres_stopped(data_dir, postmaster), 30, "Postgres stopped")
        _wait_until(lambda: not any(_alive(p) for p in ui.seen), 30,
                    f"every process of the ui gone: {[_cmdline(p) for p in ui.seen if _alive(p)]}")
    finally:
        ui.kill_everything()
        if postmaster is not None and _alive(postmaster):
            EmbeddedPostgres(scratch / "postgres")._stop_stale()


def test_demo_stops_its_daemon_redis_and_postgres_on_sigterm_mid_run(scratch: Path) -> None:
    root = scratch / "demo"
    demo = _Watched(["demo", "--tickets", "6"], {"ENHANCEMENT_DEMO_ROOT": str(root), **SMALL_POSTGRES},
                    scratch / "demo.log")
    postmaster = None
    try:
        def code_server_up() -> bool:
            demo.running("its dagster-daemon started a code server")
            # The daemon's code server ignores SIGTERM: the case the demo's process-group kill is for.
            return "dagster-daemon started" in demo.output() and any("api grpc" in _cmdline(p) for p in demo.look())

        _wait_until(code_server_up, 240, "the demo's daemon and its code server", interval_s=0.5)
        postmaster = _postmaster_pid(root / "postgres" / "data")
        assert postmaster is not None and _alive(postmaster)
        assert any("redis-server" in _cmdline(p) for p in demo.seen)
        _wait_until(lambda: any(" worker " in _cmdline(p) for p in demo.look()), 60, "the demo's run worker")

        assert demo.terminate_and_wait(120) == 128 + signal.SIGTERM, demo.output()[-3000:]
        assert "stopped by SIGTERM" in demo.output()
        _wait_until(lambda: _postgres_stopped(root / "postgres" / "data", postmaster), 30, "Postgres stopped")
        _wait_until(lambda: not any(_alive(p) for p in demo.seen), 30,
                    f"every process of the demo gone: {[_cmdline(p) for p in demo.seen if _alive(p)]}")
    finally:
        demo.kill_everything()
        if postmaster is not None and _alive(postmaster):
            EmbeddedPostgres(root / "postgres")._stop_stale()
