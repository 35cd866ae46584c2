"""The fault matrix (issue 12, item 8): tickets opened while something breaks, and whether each got exactly one note.

It starts the real stack as ``make demo`` does (``local/demo.py``: PostgreSQL, redis-server, the SDP/KB/LLM
simulators over HTTP, the ``ticket_history`` backfill, ``dagster-daemon`` with its code server and run workers)
in a temporary folder of its own (``ENHANCEMENT_DEMO_ROOT``, so ``.local/demo`` is left alone), then runs each
scenario: a fault is switched on, tickets are opened through the SDP simulator's API while it is on, the fault is
taken away, and the benchmark waits (bounded) until every ticket has its note and no run of them is in flight.
Faults go through the simulators' HTTP admin routes (``POST``/``DELETE /_sim/faults``) and real processes (SIGKILL,
``pg_ctl stop``); nothing in the pipeline is patched.

Scenarios (``--scenarios`` takes names or numbers, comma-separated; default all):

1. ``none``: no fault.
2. ``sdp-phases``: SDP answers the pipeline 429 with ``Retry-After: 3`` for 12 s, then 503 for 9 s, then a 502 HTML
   page for 9 s, then every call is 20 s slow (carried out and answered after 20 s) for 25 s. Tickets are opened
   across the 55 s (ticket creation itself is exempt from the faults).
3. ``sdp-slow-notes``: SDP stores each note POST at once but answers after 20 s (the client gives up at 15 s,
   ``ServiceDeskResource.timeout_s``): every POST's outcome is unknown to the pipeline.
4. ``llm-503``: the LLM answers 503 to every call of the batch (notes are then composed without the model);
   ``llm-down``: the LLM server is stopped for the batch (connection refused), started again afterwards.
5. ``redis-kill``: redis-server SIGKILLed 5 s into the batch, restarted (same port) 30 s later.
6. ``postgres-stop``: PostgreSQL (app tables *and* Dagster's storage) stopped 8 s into the batch, started 10 s later.
7. ``daemon-kill``: ``dagster-daemon`` alone SIGKILLed 5 s into the batch, restarted 20 s later.
8. ``daemon-group-kill``: the daemon and the code server (each its own process group) SIGKILLed 8 s into the
   batch, restarted 10 s later. The run workers are processes of their own (Celery, ``enhancement-pipeline worker``).
9. ``worker-kill``: one run worker's pool process (its pid from the run's engine events) SIGKILLed inside
   ``post_note`` just before its POST (its notes listing is held 6 s by a simulator delay to catch the moment),
   another just after SDP stored its note (its POST is stored after 1 s and answered after 25 s; killed when the
   note shows on the ticket). Celery marks their tasks failed and run monitoring resumes the runs.
   ``worker-group-kill``: one of the two run workers SIGKILLed whole (main and pool processes: a machine lost)
   while it runs a batch ticket, started again 20 s later; the launcher finds the worker gone for its run
   (two monitoring polls) and the run is resumed on the other worker.
10. ``bad-input``: 14 bad-input tickets among normal ones: empty subject, 1 MB and 5 MB descriptions, NUL bytes,
    control characters, only HTML, emoji, right-to-left text, one 500 KB line, null requester, numeric
    ``created_time``, numeric subject, string ``status`` (the last five stored raw with ``SdpState.set_raw_fields``,
    the SDP API refusing such shapes), and a ticket deleted between the sensor's listing and the run's fetch.
    A bad ticket counts as handled with one note or with a run that failed for good (``enhancement/failure``
    ``unreadable_ticket`` / ``ticket_not_found``); the deleted one expects no note.
11. ``burst``: 300 tickets opened back to back (reports tickets/s; ``--burst`` sets how many).

Each scenario prints ``scenario | tickets | exactly once | missing | duplicates | stuck | seconds to drain`` (a
ticket is *exactly once* with one note carrying ``NOTE_MARKER``; *missing* expected a note and has none;
*duplicates* has more than one; *stuck* counts its ``enhance_ticket`` runs still queued/starting/started/canceling
at the end, read from Dagster's run storage), a detail line, and at the end
``faults scenarios_ok=<k>/<n> lost=<x> duplicated=<y> stuck=<z>``.

The stack runs two run workers of two processes each (stand-ins for two machines).

Overrides, so that recovery fits into minutes (printed at the start): the ``dagster.yaml`` written into the
benchmark's ``DAGSTER_HOME`` has ``run_monitoring.poll_interval_seconds: 5`` and ``cancel_timeout_seconds: 20``;
``DELIVERY_SWEEP_INTERVAL_S=20``, ``DELIVERY_SWEEP_MIN_AGE_MINUTES=1``, ``DELIVERY_SWEEP_RETRY_WAIT_MINUTES=1``;
``ENHANCE_TICKET_MAX_RUNTIME_S=120`` (read by ``delivery/failures.py`` into ``enhance_ticket``'s
``dagster/max_runtime``, 600 s otherwise). The SDP request budget is 500/s as in the demo.

How long: starting the stack (with the demo's ``ticket_history`` backfill) takes 1-2 min; then each scenario takes
its ticket window (0-55 s) plus the drain, bounded by ``--drain-timeout`` (360 s; 1200 s for the burst, which
warm workers drain at about 2 tickets/s on 2 cores: ``benchmarks/latency.py``). Runs whose worker died are resumed
within run monitoring's poll (5 s here). The whole matrix at the default 30 tickets: see the latest issue note::

    .venv/bin/python benchmarks/faults.py                              # everything (make faults)
    .venv/bin/python benchmarks/faults.py --scenarios 1,3,7 --tickets 5
    .venv/bin/python benchmarks/faults.py --scenarios burst --keep    # keep the folder (logs/daemon.log)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(tempfile.mkdtemp(prefix="enhancement-faults-"))
ROOT.chmod(0o755)  # PostgreSQL runs as `nobody` when we are root: it must traverse to its folder
os.environ["ENHANCEMENT_DEMO_ROOT"] = str(ROOT)  # read by local/demo.py at import

OVERRIDES_ENV = {"DELIVERY_SWEEP_INTERVAL_S": "20", "DELIVERY_SWEEP_MIN_AGE_MINUTES": "1",
                 "DELIVERY_SWEEP_RETRY_WAIT_MINUTES": "1", "ENHANCE_TICKET_MAX_RUNTIME_S": "120"}
OVERRIDES_YAML = {"poll_interval_seconds": 5, "cancel_timeout_seconds": 20}
os.environ.update(OVERRIDES_ENV)

# (The imports below read the settings: they come after the environment overrides above.)
import yaml  # noqa: E402

from enhancement_pipeline.enhancement.render import NOTE_MARKER  # noqa: E402
from enhancement_pipeline.local import demo, llm_simulator  # noqa: E402
from enhancement_pipeline.local.datasets import ArticleTicket, demo_split  # noqa: E402
from enhancement_pipeline.local.http_server import serve_in_thread  # noqa: E402
from enhancement_pipeline.servicedesk.client import SdpError, ServiceDeskClient  # noqa: E402
from enhancement_pipeline.settings import PROJECT_ROOT  # noqa: E402

IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
FOR_GOOD = ("unreadable_ticket", "ticket_not_found")
NOT_TICKET_CREATION = r"^(?!POST /api/v3/requests$)"  # the pipeline's calls, not the benchmark opening tickets
NOTES_POST = r"^POST /api/v3/requests/\d+/notes$"
MANY = 10**6
RUN_WORKERS = 2
WORKER_CONCURRENCY = 2
"""Two run workers of two processes each: stand-ins for two machines (dagster.yaml's max_concurrent_runs: 6)."""


def say(message: str) -> None:
    print(f"[faults] {message}", flush=True)


# -- the stack -------------------------------------------------------------------------------------------------

@dataclass
class Bench:
    """The running stack and what the scenarios need to break and mend it."""

    stack: demo.Stack
    env: dict[str, str]
    instance: object
    client: ServiceDeskClient
    texts: list[ArticleTicket]
    daemon: subprocess.Popen | None = None
    daemon_restarts: int = 0
    code_server: subprocess.Popen | None = None
    workspace: Path | None = None
    workers: list[subprocess.Popen | None] = field(default_factory=list)
    """The run workers (Celery), one process group each; None while one is killed."""
    worker_restarts: int = 0
    opened: int = 0
    old_groups: list[int] = field(default_factory=list)
    """Process groups of daemons killed alone: their code server and run workers may live on; killed at the end."""

    @property
    def sdp_url(self) -> str:
        return self.env["SDP_BASE_URL"]

    @property
    def llm_port(self) -> int:
        return int(self.env["LLM_BASE_URL"].rsplit(":", 1)[1].split("/")[0])


def write_dagster_yaml(dagster_home: Path) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    config["run_monitoring"].update(OVERRIDES_YAML)
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def start_bench() -> Bench:
    """The demo's stack, its migrations and history backfill, and the daemon; waits for the sensor's first tick."""
    history, texts = demo_split(n_new=24)
    stack, env = demo.start_stack(history)
    try:
        return _start_on(stack, env, history, texts)
    except BaseException:
        stack.stop()
        raise


def _start_on(stack: demo.Stack, env: dict[str, str], history, texts) -> Bench:
    from enhancement_pipeline.settings import get_settings
    from enhancement_pipeline.tenants import get_tenants

    os.environ.update(env)
    get_settings.cache_clear()  # read again with the stack's environment
    get_tenants.cache_clear()
    write_dagster_yaml(Path(env["DAGSTER_HOME"]))
    import dagster as dg

    from enhancement_pipeline.definitions import defs
    from enhancement_pipeline.history.assets import build_ticket_history
    from enhancement_pipeline.local.datasets import history_months
    from enhancement_pipeline.storage.migrations import migrate

    migrate(env["DATABASE_URL"])
    instance = dg.DagsterInstance.get()
    tenant, = get_tenants()
    first, last = history_months(history)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    dg.materialize([build_ticket_history(tenant)], resources=defs.resources, instance=instance, run_config=quiet,
                   tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})
    bench = Bench(stack, env, instance, ServiceDeskClient(env["SDP_BASE_URL"], demo.SDP_KEY), texts)
    start_code_server(bench)
    for i in range(RUN_WORKERS):
        start_worker(bench, i)
    start_daemon(bench)
    wait_until(lambda: demo._sensor_has_ticked(instance, f"{demo.TENANT}__new_ticket_sensor"), 180, 1.0)
    return bench


def start_daemon(bench: Bench) -> None:
    logs = ROOT / "logs"
    logs.mkdir(exist_ok=True)
    bench.daemon = demo.start_daemon(bench.stack, bench.env, logs, bench.workspace)


def start_code_server(bench: Bench) -> None:
    """The code location's gRPC server (a new port each time: the workspace file is rewritten)."""
    logs = ROOT / "logs"
    logs.mkdir(exist_ok=True)
    before = len(bench.stack.processes)
    bench.workspace = demo.start_code_server(bench.stack, bench.env, logs)
    bench.code_server = bench.stack.processes[before]


def start_worker(bench: Bench, i: int) -> None:
    """Run worker ``i`` (0-based; its log ``logs/worker<i+1>.log``), as a supervisor would start it."""
    logs = ROOT / "logs"
    logs.mkdir(exist_ok=True)
    worker, = demo.start_run_workers(bench.stack, bench.env, logs, count=1, concurrency=WORKER_CONCURRENCY,
                                     first=i + 1)
    while len(bench.workers) <= i:
        bench.workers.append(None)
    bench.workers[i] = worker


def ensure_workers(bench: Bench) -> None:
    """A supervisor's job: a run worker that exited on its own is started again."""
    for i, worker in enumerate(bench.workers):
        if worker is not None and worker.poll() is not None:
            bench.worker_restarts += 1
            say(f"run worker {i + 1} had exited: started again (as a supervisor would)")
            bench.stack.processes.remove(worker)
            start_worker(bench, i)


def kill_worker_group(bench: Bench, i: int) -> None:
    """SIGKILL run worker ``i``'s whole process group: its main process and every pool process (a machine lost)."""
    worker = bench.workers[i]
    bench.workers[i] = None  # first: the drain loop's supervisor must not start it again meanwhile
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    bench.stack.processes.remove(worker)


def restart_worker(bench: Bench, i: int) -> None:
    if bench.workers[i] is None:
        start_worker(bench, i)


def ensure_daemon(bench: Bench) -> None:
    """A supervisor's job (systemd ``Restart=always``): a daemon that exited on its own is started again."""
    if bench.code_server is None or bench.code_server.poll() is not None:
        say("the code server had exited: started again (as a supervisor would), and the daemon with it")
        if bench.code_server is not None:
            bench.stack.processes.remove(bench.code_server)
        start_code_server(bench)
        if bench.daemon is not None and bench.daemon.poll() is None:
            # It read the old server's address at start: start it again on the new one.
            os.killpg(bench.daemon.pid, signal.SIGKILL)
            bench.daemon.wait(10)
    if bench.daemon is None or bench.daemon.poll() is not None:
        bench.daemon_restarts += 1
        say("dagster-daemon had exited: started again (as a supervisor would)")
        start_daemon(bench)


def kill_daemon(bench: Bench, whole_group: bool) -> None:
    """SIGKILL the daemon; ``whole_group``: its process group and the code server too (what a lost machine
    running both, or a container's restart, does)."""
    pid = bench.daemon.pid
    if whole_group:
        os.killpg(pid, signal.SIGKILL)
        code_server = bench.code_server
        with contextlib.suppress(ProcessLookupError):
            os.killpg(code_server.pid, signal.SIGKILL)
        code_server.wait(10)
        bench.stack.processes.remove(code_server)
        bench.code_server = None
    else:
        os.kill(pid, signal.SIGKILL)
    bench.daemon.wait(10)
    bench.stack.processes.remove(bench.daemon)
    bench.old_groups.append(pid)
    bench.daemon = None


def restart_daemon(bench: Bench) -> None:
    if bench.code_server is None:
        start_code_server(bench)
    if bench.daemon is None:
        start_daemon(bench)


def run_worker_pids(bench: Bench, run_id: str) -> list[int]:
    """The live run worker of ``run_id``: the pid its engine events report (``metadata["pid"]``: a Celery pool
    process, whose command line does not name the run), checked with ``/proc``."""
    from dagster import DagsterEventType

    pids = []
    for entry in bench.instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data else None
        if pid is not None and str(pid.value).isdigit() and int(pid.value) != os.getpid():
            pids.append(int(pid.value))
    alive = []
    for pid in dict.fromkeys(reversed(pids)):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if " worker " in cmd or "multiprocessing" in cmd or "execute_run" in cmd:
            alive.append(pid)
    return alive[:1]


# -- simulators over HTTP ----------------------------------------------------------------------------------------

def http(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        return json.loads(answer.read() or b"{}")


def sdp_fault(bench: Bench, **fault) -> None:
    http("POST", f"{bench.sdp_url}/_sim/faults", {"times": MANY, **fault})


def sdp_clear(bench: Bench) -> None:
    http("DELETE", f"{bench.sdp_url}/_sim/faults")


def llm_faults(bench: Bench, count: int, status: int) -> None:
    for _ in range(count):
        http("POST", f"http://127.0.0.1:{bench.llm_port}/_sim/faults", {"status": status})


def llm_stop(bench: Bench) -> None:
    server = bench.stack.servers[2]
    server.stop()


def llm_fresh(bench: Bench) -> None:
    """A new LLM simulator on the same port (no pending faults): stop the old one if it still serves."""
    old = bench.stack.servers[2]
    if old.thread.is_alive():
        old.stop()
    state = llm_simulator.LlmSimState(api_key=demo.LLM_KEY)
    bench.stack.servers[2] = serve_in_thread(llm_simulator.create_app(state), port=bench.llm_port,
                                             name="llm-simulator")


# -- tickets -----------------------------------------------------------------------------------------------------

@dataclass
class Batch:
    """A scenario's tickets: ``expect`` maps each id to whether it should get a note (False: deleted)."""

    expect: dict[str, bool] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    opened_at: float = 0.0
    detail: list[str] = field(default_factory=list)


def open_ticket(bench: Bench, batch: Batch, subject: str | None = None, description: str | None = None,
                label: str = "normal") -> str:
    t = bench.texts[bench.opened % len(bench.texts)]
    bench.opened += 1
    request = bench.client.create_request({
        "subject": subject if subject is not None else f"{t.subject} (#{bench.opened})",
        "description": description if description is not None else t.description_html,
        "requester": {"name": t.requester}, "status": {"name": "Open"}})
    if not batch.opened_at:
        batch.opened_at = time.monotonic()
    batch.expect[request["id"]] = True
    batch.labels[request["id"]] = label
    return request["id"]


def open_spread(bench: Bench, batch: Batch, n: int, window_s: float) -> list[str]:
    """``n`` normal tickets, evenly over ``window_s`` seconds."""
    ids = []
    for i in range(n):
        ids.append(open_ticket(bench, batch))
        if i < n - 1 and window_s:
            time.sleep(window_s / n)
    return ids


def in_background(steps: list[tuple[float, Callable[[], None]]]) -> threading.Thread:
    """Run each ``(at_s, action)`` ``at_s`` seconds from now, in order, on a thread."""
    start = time.monotonic()

    def play() -> None:
        for at_s, action in steps:
            time.sleep(max(0.0, start + at_s - time.monotonic()))
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - reported, the scenario goes on
                say(f"fault step {getattr(action, '__name__', action)} failed: {exc!r}")

    thread = threading.Thread(target=play, name="fault-timeline", daemon=True)
    thread.start()
    return thread


# -- counting ----------------------------------------------------------------------------------------------------

def marked_notes(bench: Bench, rid: str) -> int | None:
    """Notes on ``rid`` that carry the pipeline's marker, through the SDP API; None when the ticket is gone."""
    from enhancement_pipeline.servicedesk.client import SdpNotFound

    try:
        notes = bench.client.list_notes(rid)
        return sum(NOTE_MARKER in bench.client.note_description(rid, n) for n in notes)
    except SdpNotFound:
        return None


def runs_of(bench: Bench, rid: str) -> list:
    from dagster import RunsFilter

    return bench.instance.get_runs(RunsFilter(job_name="enhance_ticket", tags={"ticket_id": rid}))


def refused_for_good(runs: list) -> str | None:
    """The ``enhancement/failure`` of the ticket's newest run when it failed for good, else None."""
    if runs and runs[0].status.value == "FAILURE" and runs[0].tags.get("enhancement/failure") in FOR_GOOD:
        return runs[0].tags["enhancement/failure"]
    return None


def settled(bench: Bench, batch: Batch) -> bool:
    """Every ticket has its note (or was refused for good, or is gone) and none of its runs is in flight."""
    for rid, wants_note in batch.expect.items():
        runs = runs_of(bench, rid)
        if any(r.status.value in IN_FLIGHT for r in runs):
            return False
        if not wants_note:
            continue
        if not marked_notes(bench, rid) and refused_for_good(runs) is None:
            return False
    return True


def drain(bench: Bench, batch: Batch, timeout_s: float, timeline: threading.Thread | None) -> float | None:
    """Seconds from the first ticket opened until ``settled``; None when ``timeout_s`` passed first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(2)
        if timeline is not None and timeline.is_alive():
            continue
        try:
            ensure_daemon(bench)
            ensure_workers(bench)
            if settled(bench, batch):
                return time.monotonic() - batch.opened_at
        except Exception as exc:  # noqa: BLE001 - storage or SDP briefly away: look again
            say(f"while draining: {type(exc).__name__}: {str(exc)[:120]}")
    return None


@dataclass
class Row:
    name: str
    tickets: int
    once: int
    missing: int
    duplicates: int
    stuck: int
    drained_s: float | None
    detail: list[str]

    @property
    def ok(self) -> bool:
        return self.drained_s is not None and not (self.missing or self.duplicates or self.stuck)

    def line(self) -> str:
        seconds = f"{self.drained_s:.0f}" if self.drained_s is not None else "timeout"
        return (f"{self.name:<18} | {self.tickets:>7} | {self.once:>12} | {self.missing:>7} | {self.duplicates:>10} | "
                f"{self.stuck:>5} | {seconds:>16}")


HEADER = (f"{'scenario':<18} | {'tickets':>7} | {'exactly once':>12} | {'missing':>7} | {'duplicates':>10} | "
          f"{'stuck':>5} | {'seconds to drain':>16}")


def count(bench: Bench, name: str, batch: Batch, drained_s: float | None) -> Row:
    once = missing = dups = stuck = 0
    refused: dict[str, str] = {}
    lost: list[str] = []
    for rid, wants_note in batch.expect.items():
        runs = runs_of(bench, rid)
        stuck += sum(r.status.value in IN_FLIGHT for r in runs)
        notes = marked_notes(bench, rid) or 0
        once += notes == 1
        dups += notes > 1
        if not wants_note:
            continue
        if notes == 0:
            reason = refused_for_good(runs)
            if reason:
                refused[rid] = reason
            else:
                missing += 1
                status = runs[0].status.value if runs else "no run"
                lost.append(f"missing {rid} ({batch.labels[rid]}): newest run {status}, {len(runs)} run(s)")
        if notes > 1:
            lost.append(f"duplicated {rid} ({batch.labels[rid]}): {notes} notes, {len(runs)} run(s)")
    if refused:
        batch.detail.append("refused for good: "
                            + ", ".join(f"{batch.labels[r]} ({why})" for r, why in refused.items()))
    return Row(name, len(batch.expect), once, missing, dups, stuck, drained_s, batch.detail + lost[:10])


# -- the scenarios -----------------------------------------------------------------------------------------------

def s_none(bench: Bench, batch: Batch, n: int) -> threading.Thread | None:
    open_spread(bench, batch, n, 30)
    return None


def s_sdp_phases(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    def phase(**fault) -> Callable[[], None]:
        def switch() -> None:
            sdp_clear(bench)
            if fault:
                sdp_fault(bench, match=NOT_TICKET_CREATION, **fault)
        switch.__name__ = f"sdp {fault or 'clear'}"
        return switch

    timeline = in_background([
        (0, phase(status=429, sdp_code=4015, retry_after=3)),
        (12, phase(status=503, sdp_code=None)),
        (21, phase(status=502, sdp_code=None, html=True)),
        (30, phase(status=200, takes_effect_after_s=20, delay_s=20)),
        (55, phase()),
    ])
    open_spread(bench, batch, n, 55)
    return timeline


def s_sdp_slow_notes(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    sdp_fault(bench, match=NOTES_POST, status=200, takes_effect_after_s=0, delay_s=20)
    open_spread(bench, batch, n, 30)
    # Clear once every ticket's note is on it (or after 5 min): until then every POST answers late.
    return in_background([(0, lambda: wait_for_notes(bench, batch, 300)), (0, lambda: sdp_clear(bench))])


def s_llm_503(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    llm_faults(bench, 4 * n + 20, 503)  # each note: a call and 2 retries; more than enough
    open_spread(bench, batch, n, 30)
    return in_background([(0, lambda: wait_for_notes(bench, batch, 300)), (0, lambda: llm_fresh(bench))])


def s_llm_down(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    llm_stop(bench)
    open_spread(bench, batch, n, 30)
    return in_background([(0, lambda: wait_for_notes(bench, batch, 300)), (0, lambda: llm_fresh(bench))])


def s_redis_kill(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    redis = bench.stack.redis

    def kill() -> None:
        redis._proc.send_signal(signal.SIGKILL)
        redis._proc.wait(10)

    timeline = in_background([(5, kill), (35, redis.start)])
    open_spread(bench, batch, n, 40)
    return timeline


def s_postgres_stop(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    postgres = bench.stack.postgres
    timeline = in_background([(8, postgres.stop), (18, postgres.start)])
    open_spread(bench, batch, n, 30)
    return timeline


def s_daemon_kill(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    timeline = in_background([(5, lambda: kill_daemon(bench, whole_group=False)), (25, lambda: restart_daemon(bench))])
    open_spread(bench, batch, n, 30)
    return timeline


def s_daemon_group_kill(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    timeline = in_background([(8, lambda: kill_daemon(bench, whole_group=True)), (18, lambda: restart_daemon(bench))])
    open_spread(bench, batch, n, 30)
    return timeline


def s_worker_group_kill(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    timeline = in_background([(8, lambda: kill_worker_group_mid_run(bench, batch, 0)),
                              (0, lambda: time.sleep(20)), (0, lambda: restart_worker(bench, 0))])
    open_spread(bench, batch, n, 30)
    return timeline


def kill_worker_group_mid_run(bench: Bench, batch: Batch, i: int, timeout_s: float = 60) -> None:
    """SIGKILL run worker ``i``'s whole process group as soon as one of its pool processes runs a batch ticket."""
    group = bench.workers[i].pid
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for rid in list(batch.expect):
            for run in runs_of(bench, rid):
                if run.status.value != "STARTED":
                    continue
                for pid in run_worker_pids(bench, run.run_id):
                    with contextlib.suppress(ProcessLookupError):
                        if os.getpgid(pid) == group:
                            kill_worker_group(bench, i)
                            batch.detail.append(f"SIGKILLed run worker {i + 1} (process group {group}) while it ran "
                                                f"ticket {rid} (run {run.run_id[:8]})")
                            return
        time.sleep(0.2)
    kill_worker_group(bench, i)
    batch.detail.append(f"SIGKILLed run worker {i + 1}: no batch run seen on it within {timeout_s:.0f} s")


def s_worker_kill(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    before = open_ticket(bench, batch, label="killed before POST")
    sdp_fault(bench, match=rf"^GET /api/v3/requests/{before}/notes$", status=200, takes_effect_after_s=0,
              delay_s=6, times=3)
    after = open_ticket(bench, batch, label="killed after stored")
    sdp_fault(bench, match=rf"^POST /api/v3/requests/{after}/notes$", status=200, takes_effect_after_s=1,
              delay_s=25, times=1)
    threads = [threading.Thread(target=kill_worker_before_post, args=(bench, batch, before), daemon=True),
               threading.Thread(target=kill_worker_after_stored, args=(bench, batch, after), daemon=True)]
    for t in threads:
        t.start()
    open_spread(bench, batch, max(0, n - 2), 20)
    return in_background([(0, lambda: [t.join() for t in threads])])


def kill_worker_before_post(bench: Bench, batch: Batch, rid: str, timeout_s: float = 180) -> None:
    """SIGKILL the worker of ``rid``'s run once ``post_note`` has started (its notes listing is held 6 s)."""
    from dagster import DagsterEventType

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in runs_of(bench, rid):
            starts = bench.instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
            if any(e.dagster_event.step_key == "post_note" for e in starts):
                time.sleep(1)
                batch.detail.append(f"before POST: {kill_pids(run_worker_pids(bench, run.run_id))}")
                return
        time.sleep(0.3)
    batch.detail.append("before POST: post_note never started in time, nothing killed")


def kill_worker_after_stored(bench: Bench, batch: Batch, rid: str, timeout_s: float = 180) -> None:
    """SIGKILL the worker of ``rid``'s run as soon as its note shows on the ticket (the POST not answered yet)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if marked_notes(bench, rid):
                runs = [r for r in runs_of(bench, rid) if r.status.value == "STARTED"]
                pids = [p for r in runs for p in run_worker_pids(bench, r.run_id)]
                batch.detail.append(f"after stored: {kill_pids(pids)}")
                return
        except SdpError:
            pass
        time.sleep(0.3)
    batch.detail.append("after stored: the note never showed in time, nothing killed")


def kill_pids(pids: list[int]) -> str:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return f"SIGKILLed run worker pid(s) {pids}" if pids else "no run worker process found"


BAD_INPUTS: list[tuple[str, dict, dict, tuple[str, ...]]] = [
    # (label, create_request fields, raw fields stored afterwards, raw keys dropped)
    ("empty subject", {}, {"subject": ""}, ()),
    ("1 MB description", {"description": "<p>" + "disk full on the file server. " * 34_000 + "</p>"}, {}, ()),
    ("5 MB description", {"description": "<p>" + "mail queue stuck again today. " * 170_000 + "</p>"}, {}, ()),
    ("NUL bytes", {"subject": "Printer\x00offline",
                   "description": "<p>queue\x00 stuck \x00\x00 since 9am</p>"}, {}, ()),
    ("control characters", {"subject": "VPN\x07 drops\x1b[31m", "description": "<p>\x01\x02\x08\x0b\x0c\x7f lost</p>"},
     {}, ()),
    ("only HTML", {"description": "<div><img src='x.png'><table><tr><td></td></tr></table><br/><hr/></div>"}, {}, ()),
    ("emoji", {"subject": "🔥🔥 Outlook 💥 crashes 😡", "description": "<p>🙏 please help 📧📧📧 👩‍💻🏳️‍🌈</p>"}, {}, ()),
    ("right-to-left text", {"subject": "خطأ في البريد الإلكتروني",
                            "description": "<p>השרת לא מגיב \u202eevil\u202c מאז הבוקר</p>"},
     {}, ()),
    ("500 KB line", {"description": "timeout " * 64_000}, {}, ()),
    ("null requester", {}, {"requester": None}, ()),
    ("numeric created_time", {}, {"created_time": None}, ()),  # set to its own millis below
    ("numeric subject", {}, {"subject": 123456}, ()),
    ("string status", {}, {"status": "Open"}, ()),
]


def s_bad_input(bench: Bench, batch: Batch, n: int) -> threading.Thread:
    state = bench.stack.sdp_state
    normal = max(n - len(BAD_INPUTS) - 1, 0)
    every = max(1, normal // (len(BAD_INPUTS) + 1)) if normal else 0
    opened_normal = 0
    for label, fields, raw, drop in BAD_INPUTS:
        rid = open_ticket(bench, batch, subject=fields.get("subject"), description=fields.get("description"),
                          label=label)
        if label == "numeric created_time":
            raw = {"created_time": int(state.requests[rid]["created_time"]["value"])}
        if raw or drop:
            state.set_raw_fields(rid, raw, drop)
        for _ in range(every):
            if opened_normal < normal:
                open_ticket(bench, batch)
                opened_normal += 1
        time.sleep(1)
    deleted = open_ticket(bench, batch, label="deleted after listing")
    batch.expect[deleted] = False
    deleter = threading.Thread(target=delete_once_listed, args=(bench, batch, deleted), daemon=True)
    deleter.start()
    while opened_normal < normal:
        open_ticket(bench, batch)
        opened_normal += 1
        time.sleep(1)
    return in_background([(0, deleter.join)])


def delete_once_listed(bench: Bench, batch: Batch, rid: str, timeout_s: float = 120) -> None:
    """Delete ``rid`` in SDP as soon as the sensor has listed it (its run exists), before the run fetches it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if wait_until(lambda: bool(runs_of(bench, rid)), 0.1, 0.1):
            bench.stack.sdp_state.delete_request(rid)  # the simulator has no DELETE route: its state, as SDP's UI
            batch.detail.append("deleted a ticket once its run existed")
            return
        time.sleep(0.1)
    batch.detail.append("the deleted ticket's run never came: deleted anyway")
    bench.stack.sdp_state.delete_request(rid)


def s_burst(bench: Bench, batch: Batch, n: int) -> None:
    open_spread(bench, batch, n, 0)


def wait_for_notes(bench: Bench, batch: Batch, timeout_s: float) -> None:
    """Until every ticket that wants a note has one or was refused for good (or ``timeout_s``)."""
    wait_until(lambda: all(marked_notes(bench, r) or refused_for_good(runs_of(bench, r))
                           for r, wants in batch.expect.items() if wants), timeout_s, 3.0)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a service of the stack may be down right now
            if predicate():
                return True
        time.sleep(interval_s)
    return False


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    run: Callable[[Bench, Batch, int], threading.Thread | None]
    tickets: int | None = None  # None: --tickets
    drain_timeout_s: float | None = None  # None: --drain-timeout


SCENARIOS = [
    Scenario(1, "none", s_none),
    Scenario(2, "sdp-phases", s_sdp_phases),
    Scenario(3, "sdp-slow-notes", s_sdp_slow_notes),
    Scenario(4, "llm-503", s_llm_503),
    Scenario(4, "llm-down", s_llm_down),
    Scenario(5, "redis-kill", s_redis_kill),
    Scenario(6, "postgres-stop", s_postgres_stop),
    Scenario(7, "daemon-kill", s_daemon_kill),
    Scenario(8, "daemon-group-kill", s_daemon_group_kill),
    Scenario(9, "worker-kill", s_worker_kill),
    Scenario(9, "worker-group-kill", s_worker_group_kill),
    Scenario(10, "bad-input", s_bad_input),
    Scenario(11, "burst", s_burst, tickets=300, drain_timeout_s=1200),
]


def select(spec: str | None) -> list[Scenario]:
    if not spec:
        return SCENARIOS
    wanted = {w.strip() for w in spec.split(",") if w.strip()}
    chosen = [s for s in SCENARIOS if s.name in wanted or str(s.number) in wanted]
    unknown = wanted - {s.name for s in chosen} - {str(s.number) for s in chosen}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(f'{s.number}:{s.name}' for s in SCENARIOS)}")
    return chosen


def heal(bench: Bench) -> None:
    """Before a scenario: no fault left on, every service of the stack up."""
    sdp_clear(bench)
    ensure_daemon(bench)
    for i in range(len(bench.workers)):
        restart_worker(bench, i)
    ensure_workers(bench)
    if not bench.stack.servers[2].thread.is_alive():
        llm_fresh(bench)


def run_scenario(bench: Bench, scenario: Scenario, n: int, drain_timeout_s: float) -> Row:
    heal(bench)
    batch = Batch()
    say(f"scenario {scenario.number} {scenario.name}: {n} ticket(s)")
    timeline = scenario.run(bench, batch, n)
    # A scenario's own bound is a floor: --drain-timeout can give it longer (the burst's 1200 s, say).
    drained = drain(bench, batch, max(scenario.drain_timeout_s or 0, drain_timeout_s), timeline)
    if timeline is not None:
        timeline.join(60)
    heal(bench)
    wait_until(lambda: bench.instance.get_runs(limit=1) is not None, 60, 1)  # Dagster's storage answers again
    row = count(bench, scenario.name, batch, drained)
    if scenario.name == "burst" and drained:
        row.detail.append(f"{len(batch.expect) / drained:.2f} tickets/s from the first ticket opened to drained")
    return row


def print_overrides() -> None:
    say("overrides for recovery within minutes: dagster.yaml run_monitoring "
        + ", ".join(f"{k}={v}" for k, v in OVERRIDES_YAML.items()) + "; "
        + ", ".join(f"{k}={v}" for k, v in OVERRIDES_ENV.items())
        + "; SDP_REQUEST_BUDGET_PER_S=500 (the demo's)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", help="names or numbers, comma-separated (default: all)")
    parser.add_argument("--tickets", type=int, default=30, help="tickets per scenario (the burst: 300)")
    parser.add_argument("--burst", type=int, default=300, help="tickets of the burst scenario")
    parser.add_argument("--drain-timeout", type=float, default=360.0, help="seconds to wait for a scenario to drain")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's folder (logs) at the end")
    args = parser.parse_args()
    scenarios = select(args.scenarios)
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    started = time.monotonic()
    print_overrides()
    say(f"starting the stack in {ROOT}")
    bench = start_bench()
    rows: list[Row] = []
    try:
        say(f"stack up in {time.monotonic() - started:.0f} s")
        for scenario in scenarios:
            n = args.burst if scenario.name == "burst" else scenario.tickets or args.tickets
            row = run_scenario(bench, scenario, n, args.drain_timeout)
            rows.append(row)
            print(row.line(), flush=True)
            for line in row.detail:
                print(f"    {line}", flush=True)
    finally:
        say("stopping every process the benchmark started")
        bench.client.close()
        bench.stack.stop()
        for pgid in bench.old_groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
    print()
    print_overrides()
    print(HEADER)
    for row in rows:
        print(row.line())
    if bench.daemon_restarts:
        print(f"(dagster-daemon exited on its own {bench.daemon_restarts} time(s) and was started again)")
    if bench.worker_restarts:
        print(f"(a run worker exited on its own {bench.worker_restarts} time(s) and was started again)")
    print(f"took {time.monotonic() - started:.0f} s; folder {ROOT}" + ("" if args.keep else " (removed)"))
    print(f"faults scenarios_ok={sum(r.ok for r in rows)}/{len(rows)} lost={sum(r.missing for r in rows)} "
          f"duplicated={sum(r.duplicates for r in rows)} stuck={sum(r.stuck for r in rows)}")
    if not args.keep:
        shutil.rmtree(ROOT, ignore_errors=True)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
