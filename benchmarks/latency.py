"""Seconds from ticket to note, bursts drained, CPU per ticket and idle memory, for each way runs are launched
(issue 16, item 5), side by side in one run on one machine.

It starts the real stack once, as ``make demo`` does (``local/demo.py``: PostgreSQL, redis-server, the SDP/KB/LLM
simulators over HTTP, the ``ticket_history`` backfill), then for each launch path writes its ``dagster.yaml`` into
the stack's ``DAGSTER_HOME``, starts that path's processes (``dagster-daemon``; run workers; the push receiver) and:

1. **warm-up**: 2 tickets, each waited for (a first run loads what every later run reuses);
2. **steady stream**: ``--steady`` tickets, one every ``--interval`` s; p50/p95 of seconds from the request's
   ``created_time`` to its note's ``added_time`` (both SDP's clock);
3. **burst**: ``--burst`` tickets opened back to back; drain rate = tickets / seconds from the first creation to
   the last note; p95 latency; CPU seconds per ticket of the whole stack (daemon, code server, run workers, push
   receiver, PostgreSQL, redis-server: user + system of every live process, plus what their reaped children
   used), measured from before the burst to its last note. The simulators, which stand in for SDP, the KB and the
   LLM, live in this process and are not counted;
4. **idle memory**: 20 s after the burst, the stack's PSS (proportional set size, ``/proc/<pid>/smaps_rollup``:
   pages shared by forked workers counted once, not once per process) and, for comparison, its RSS sum.

Then it stops that path's processes and starts the next. The LLM simulator answers at once (the goal's
condition). Paths (``--paths``, comma-separated):

- ``process-per-run``: Dagster's ``DefaultRunLauncher`` (the code server spawns a fresh interpreter per run),
  ``max_concurrent_runs: 4``, the new-ticket sensor alone finds tickets (polling every daemon loop). What the
  project ran before issue 16.
- ``warm-poll``: ``CheckedCeleryRunLauncher`` with one run worker already running (``enhancement-pipeline
  worker``, one process per core), ``max_concurrent_runs: 6``; polling only.
- ``warm-push``: the same, and SDP's webhook announces each ticket to the push receiver. What ``make demo`` runs.

Also printed: the CPU one run of ``enhance_ticket`` costs in this process, warm (``execute_in_process``, no
launch at all), the floor any launch path adds to; ``run overhead`` = a path's CPU per ticket minus it. That floor
includes the simulators' CPU (they answer from this process) and the paths' figures do not, so the overhead is
understated by what SDP, the KB and the LLM simulator spend per ticket.

Last line: ``latency p50_s=<a> p95_s=<b> burst_tickets_per_s=<c> cpu_s_per_ticket=<d> idle_rss_mb=<e>`` for the
last path given (the demo's, by default), ``idle_rss_mb`` being its PSS. Goals (issue 16, 2 cores): p50 <= 3 s,
p95 <= 5 s, >= 2 tickets/s, <= 0.3 CPU-s of run overhead per ticket, idle <= 1.5 GB.

    .venv/bin/python benchmarks/latency.py                          # make latency (30-40 min on 2 cores)
    .venv/bin/python benchmarks/latency.py --paths warm-push --burst 100
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(tempfile.mkdtemp(prefix="enhancement-latency-"))
ROOT.chmod(0o755)  # PostgreSQL runs as `nobody` when we are root: it must traverse to its folder
os.environ["ENHANCEMENT_DEMO_ROOT"] = str(ROOT)  # read by local/demo.py at import

import psutil  # noqa: E402
import yaml  # noqa: E402

from enhancement_pipeline.local import demo, sdp_simulator  # noqa: E402
from enhancement_pipeline.local.datasets import demo_split  # noqa: E402
from enhancement_pipeline.servicedesk.client import ServiceDeskClient  # noqa: E402
from enhancement_pipeline.settings import PROJECT_ROOT  # noqa: E402

PATHS = ("process-per-run", "warm-poll", "warm-push")


def say(message: str) -> None:
    print(f"[latency] {message}", flush=True)


@dataclass
class Result:
    path: str
    steady: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    burst_s: float | None = None
    burst_n: int = 0
    cpu_s: float | None = None
    cpu_by_role: dict[str, float] = field(default_factory=dict)
    pss_mb: float | None = None
    rss_mb: float | None = None
    pss_by_role: dict[str, float] = field(default_factory=dict)
    launched_by: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.burst_n / self.burst_s if self.burst_s else None

    @property
    def cpu_per_ticket(self) -> float | None:
        return self.cpu_s / self.burst_n if self.cpu_s is not None and self.burst_n else None


def role_of(args) -> str:
    """A process's role from its command line (``enhancement-pipeline worker`` -> ``worker``)."""
    words = " ".join(map(str, args))
    return next((role for word, role in (("api grpc", "code-server"), ("daemon", "daemon"), ("worker", "worker"),
                                         ("receiver", "receiver")) if word in words), "other")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (a value that was observed); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * q // 100) - 1)]


# -- the stack ----------------------------------------------------------------------------------------------------

def dagster_yaml(path: str) -> dict:
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    if path == "process-per-run":
        config["run_launcher"] = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
        config["run_coordinator"]["config"]["max_concurrent_runs"] = 4
        config["run_monitoring"]["max_resume_run_attempts"] = 0
    return config


class LaunchPath:
    """One launch path's processes on the shared stack."""

    def __init__(self, name: str, stack: demo.Stack, env: dict[str, str]):
        self.name, self.stack, self.env = name, stack, env
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        home = Path(self.env["DAGSTER_HOME"])
        (home / "dagster.yaml").write_text(yaml.safe_dump(dagster_yaml(self.name), sort_keys=False))
        logs = ROOT / "logs" / self.name
        logs.mkdir(parents=True, exist_ok=True)
        before = len(self.stack.processes)
        workspace = demo.start_code_server(self.stack, self.env, logs)
        if self.name != "process-per-run":
            demo.start_run_workers(self.stack, self.env, logs)  # the default concurrency: cores + 1
        demo.start_daemon(self.stack, self.env, logs, workspace)
        self.stack.sdp_state.webhooks.clear()
        if self.name == "warm-push":
            url = demo.start_receiver(self.stack, self.env, logs)
            self.stack.sdp_state.webhooks.append(sdp_simulator.Webhook(
                url=f"{url}/sdp/{demo.TENANT}/requests", headers={"X-Webhook-Secret": self.env["SDP_WEBHOOK_SECRET"]}))
        self.procs = self.stack.processes[before:]

    def stop(self) -> None:
        from enhancement_pipeline.local.services import stop_process_groups

        self.stack.sdp_state.webhooks.clear()
        stop_process_groups(self.procs)
        for proc in self.procs:
            self.stack.processes.remove(proc)
        self.procs = []

    def processes(self) -> list[tuple[str, psutil.Process]]:
        """Every live process of the stack this path runs on, with its role: its own trees (``code-server``,
        with the runs it spawns for a process per run; ``daemon``; ``worker``; ``receiver``), ``postgres``,
        ``redis``."""
        roots = [(role_of(p.args), p.pid) for p in self.procs]
        roots.append(("postgres", int((self.stack.postgres.root / "data" / "postmaster.pid").read_text().split()[0])))
        roots.append(("redis", self.stack.redis._proc.pid))
        found: dict[int, tuple[str, psutil.Process]] = {}
        for role, pid in roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    found[proc.pid] = (role, proc)
        return list(found.values())

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds so far by role: user + system of each live process and of the children it reaped."""
        total: dict[str, float] = {}
        for role, proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total[role] = total.get(role, 0.0) + t.user + t.system + t.children_user + t.children_system
        return total

    def memory_mb(self) -> tuple[float, float, dict[str, float]]:
        """(PSS, RSS) of the stack in MB, and its PSS by role."""
        pss = rss = 0
        by_role: dict[str, float] = {}
        for role, proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, OSError):
                rss += proc.memory_info().rss
                for line in Path(f"/proc/{proc.pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        by_role[role] = by_role.get(role, 0.0) + int(line.split()[1]) / 1024
        return pss / 2**20, rss / 2**20, by_role


# -- tickets ------------------------------------------------------------------------------------------------------

class Tickets:
    """Opens tickets through the SDP API from held-out real articles: each path gets the same texts in the same
    order (``restart``), every ticket a subject of its own (``(#n)``, so no KB answer comes from the cache)."""

    def __init__(self, stack: demo.Stack, client: ServiceDeskClient, texts):
        self.stack, self.client, self.texts, self.opened, self.next = stack, client, texts, 0, 0

    def restart(self) -> None:
        self.next = 0

    def open(self) -> tuple[str, int]:
        t = self.texts[self.next % len(self.texts)]
        self.next += 1
        self.opened += 1
        request = self.client.create_request({"subject": f"{t.subject} (#{self.opened})",
                                              "description": t.description_html,
                                              "requester": {"name": t.requester}, "status": {"name": "Open"}})
        return request["id"], int(request["created_time"]["value"])

    def noted_at(self, rid: str) -> int | None:
        with self.stack.sdp_state.lock:
            notes = list(self.stack.sdp_state.notes.get(rid, []))
        return int(notes[0]["added_time"]["value"]) if notes else None

    def wait(self, created: dict[str, int], timeout_s: float) -> dict[str, float]:
        """Seconds from creation to note for each of ``created`` once all have one (or ``timeout_s`` passed)."""
        deadline = time.monotonic() + timeout_s
        done: dict[str, float] = {}
        while len(done) < len(created) and time.monotonic() < deadline:
            for rid, created_ms in created.items():
                if rid not in done and (noted := self.noted_at(rid)) is not None:
                    done[rid] = (noted - created_ms) / 1000
            time.sleep(0.2)
        return done


def wait_for_sensor_tick(instance, after_s: float, timeout_s: float = 180) -> None:
    """Until the new-ticket sensor has ticked since ``after_s`` (the path's daemon is up and polling)."""
    from dagster._core.scheduler.instigation import InstigatorType

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.instigator_name == f"{demo.TENANT}__new_ticket_sensor":
                ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
                if ticks and ticks[0].timestamp > after_s:
                    return
        time.sleep(0.5)
    raise TimeoutError("the new-ticket sensor did not tick")


def forget_article_vectors(env: dict[str, str]) -> None:
    """Drop the KB article vectors the previous path left in Redis (``knowledge/vectors.py``): each path starts
    with none, as a new deployment does (the same texts come again, and their vectors would be free)."""
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    keys = list(client.scan_iter("kbvec:*", count=1000))
    if keys:
        client.delete(*keys)


def wait_idle(instance, timeout_s: float = 300) -> None:
    """Until no ``enhance_ticket`` run is queued or in progress (what the previous phase left is done)."""
    import dagster as dg

    busy = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED]
    deadline = time.monotonic() + timeout_s
    while instance.get_runs_count(dg.RunsFilter(job_name="enhance_ticket", statuses=busy)):
        if time.monotonic() > deadline:
            raise TimeoutError("runs still in flight")
        time.sleep(0.5)


def run_path(name: str, stack: demo.Stack, env: dict[str, str], instance, tickets: Tickets, args) -> Result:
    path = LaunchPath(name, stack, env)
    result = Result(name)
    tickets.restart()
    forget_article_vectors(env)
    started = time.time()
    path.start()
    try:
        wait_for_sensor_tick(instance, started)
        say(f"{name}: up in {time.time() - started:.0f} s; warm-up")
        tickets.wait(dict(tickets.open() for _ in range(2)), 300)
        wait_idle(instance)

        created: dict[str, int] = {}
        for i in range(args.steady):
            rid, ms = tickets.open()
            created[rid] = ms
            if i < args.steady - 1:
                time.sleep(args.interval)
        result.steady = list(tickets.wait(created, args.timeout).values())
        say(f"{name}: steady {len(result.steady)}/{args.steady} noted, p50 {pct(result.steady, 50):.1f} s, "
            f"p95 {pct(result.steady, 95):.1f} s")

        cpu_before = path.cpu_s()
        burst: dict[str, int] = {}
        for _ in range(args.burst):
            rid, ms = tickets.open()
            burst[rid] = ms
        done = tickets.wait(burst, args.burst_timeout)
        cpu_after = path.cpu_s()
        result.burst, result.burst_n = list(done.values()), len(done)
        if len(done) == len(burst):
            first = min(burst.values()) / 1000
            result.burst_s = max(tickets.noted_at(r) for r in burst) / 1000 - first
            result.cpu_by_role = {r: cpu_after[r] - cpu_before.get(r, 0.0) for r in cpu_after}
            result.cpu_s = sum(result.cpu_by_role.values())
        result.launched_by = launched_by(instance, list(burst))
        say(f"{name}: burst {len(done)}/{len(burst)} noted" + (
            f" in {result.burst_s:.0f} s ({result.rate:.2f} tickets/s), p95 {pct(result.burst, 95):.1f} s, "
            f"{result.cpu_per_ticket:.2f} CPU-s per ticket ("
            + ", ".join(f"{r} {v / result.burst_n:.2f}" for r, v in sorted(result.cpu_by_role.items())) + ")"
            if result.burst_s else " before the timeout"))
        time.sleep(20)
        result.pss_mb, result.rss_mb, result.pss_by_role = path.memory_mb()
        say(f"{name}: idle PSS {result.pss_mb:.0f} MB (RSS sum {result.rss_mb:.0f} MB): "
            + ", ".join(f"{r} {v:.0f}" for r, v in sorted(result.pss_by_role.items())))
    finally:
        path.stop()
    return result


def launched_by(instance, ticket_ids: list[str]) -> dict[str, int]:
    from collections import Counter

    import dagster as dg

    from enhancement_pipeline.delivery.claims import TRIGGER_TAG

    runs = instance.get_runs(dg.RunsFilter(job_name="enhance_ticket", tags={"ticket_id": ticket_ids}))
    return dict(Counter(r.tags.get(TRIGGER_TAG, "sensor") for r in runs))


def in_process_cpu_s(stack: demo.Stack, tickets: Tickets, n: int = 10) -> float:
    """CPU seconds of one warm ``enhance_ticket`` run executed in this process (no launcher, no daemon)."""
    import dagster as dg

    from enhancement_pipeline.definitions import defs
    from enhancement_pipeline.enhancement.job import enhance_ticket

    instance = dg.DagsterInstance.ephemeral()

    def one() -> None:
        rid, _ = tickets.open()
        enhance_ticket.execute_in_process(
            run_config={"ops": {"load_ticket": {"config": {"tenant_id": demo.TENANT, "ticket_id": rid}}},
                        "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            resources=defs.resources, instance=instance)

    tickets.next = len(tickets.texts) - n - 1  # texts no path's steady stream or burst uses first
    one()  # warm
    # The simulators answer from threads of this process: their CPU counts here too (an overestimate).
    before = time.process_time()
    for _ in range(n):
        one()
    return (time.process_time() - before) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    parser.add_argument("--steady", type=int, default=20, help="tickets of the steady stream")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between steady tickets")
    parser.add_argument("--burst", type=int, default=300, help="tickets of the burst")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the steady stream")
    parser.add_argument("--burst-timeout", type=float, default=2400, help="seconds to wait for the burst")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's folder (logs)")
    args = parser.parse_args()
    names = [p.strip() for p in args.paths.split(",") if p.strip()]
    if unknown := set(names) - set(PATHS):
        raise SystemExit(f"unknown path(s) {sorted(unknown)}; known: {', '.join(PATHS)}")
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    started = time.monotonic()
    # Distinct texts for every ticket of a path (a text seen twice is cheaper: its vectors are cached), taken from
    # the held-out articles; the history is the rest (1,367 tickets for the default 350, the demo has 1,693).
    history, texts = demo_split(n_new=max(24, 2 + args.steady + args.burst + 12))
    say(f"starting the stack in {ROOT}")
    stack, env = demo.start_stack(history)
    results: list[Result] = []
    try:
        os.environ.update(env)
        from enhancement_pipeline.settings import get_settings
        from enhancement_pipeline.tenants import get_tenants

        get_settings.cache_clear()
        get_tenants.cache_clear()
        demo.prepare_dagster_home(Path(env["DAGSTER_HOME"]))
        import dagster as dg

        from enhancement_pipeline.definitions import defs
        from enhancement_pipeline.history.assets import build_ticket_history
        from enhancement_pipeline.inventory.assets import build_system_inventory
        from enhancement_pipeline.local.datasets import history_months
        from enhancement_pipeline.storage.migrations import migrate

        migrate(env["DATABASE_URL"])
        instance = dg.DagsterInstance.get()
        tenant, = get_tenants()
        first, last = history_months(history)
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        dg.materialize([build_ticket_history(tenant)], resources=defs.resources, instance=instance, run_config=quiet,
                       tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})
        dg.materialize([build_system_inventory(tenant)], resources=defs.resources, instance=instance,
                       run_config=quiet)
        tickets = Tickets(stack, ServiceDeskClient(env["SDP_BASE_URL"], demo.SDP_KEY), texts)
        say(f"stack up in {time.monotonic() - started:.0f} s")
        floor = in_process_cpu_s(stack, tickets)
        say(f"one warm run in this process: {floor:.2f} CPU-s; history {len(history)} tickets, "
            f"{len(texts)} held-out texts")
        for name in names:
            results.append(run_path(name, stack, env, instance, tickets, args))
    finally:
        say("stopping every process the benchmark started")
        stack.stop()
    print()
    print(f"{'path':<16} | {'steady p50':>10} | {'steady p95':>10} | {'burst':>5} | {'tickets/s':>9} | "
          f"{'burst p95':>9} | {'CPU-s/ticket':>12} | {'run overhead':>12} | {'idle PSS MB':>11} | {'RSS sum MB':>10}"
          " | launched by")
    for r in results:
        overhead = f"{r.cpu_per_ticket - floor:.2f}" if r.cpu_per_ticket is not None else "-"
        print(f"{r.path:<16} | {pct(r.steady, 50):>10.1f} | {pct(r.steady, 95):>10.1f} | {r.burst_n:>5} | "
              f"{(f'{r.rate:.2f}' if r.rate else 'timeout'):>9} | {pct(r.burst, 95):>9.1f} | "
              f"{(f'{r.cpu_per_ticket:.2f}' if r.cpu_per_ticket is not None else '-'):>12} | {overhead:>12} | "
              f"{r.pss_mb or float('nan'):>11.0f} | {r.rss_mb or float('nan'):>10.0f} | "
              + ", ".join(f"{k} {v}" for k, v in sorted(r.launched_by.items())))
    for r in results:
        if r.cpu_by_role:
            print(f"{r.path}: CPU-s per ticket by role: "
                  + ", ".join(f"{k} {v / r.burst_n:.2f}" for k, v in sorted(r.cpu_by_role.items())))
    print(f"(one warm run executed in-process: {floor:.2f} CPU-s, simulators included; steady: {args.steady} tickets "
          f"one every {args.interval:g} s; burst: {args.burst} back to back; LLM simulated, instant)")
    print(f"took {time.monotonic() - started:.0f} s; folder {ROOT}" + ("" if args.keep else " (removed)"))
    if not args.keep:
        shutil.rmtree(ROOT, ignore_errors=True)
    last = results[-1]
    print(f"latency p50_s={pct(last.steady, 50):.2f} p95_s={pct(last.steady, 95):.2f} "
          f"burst_tickets_per_s={(last.rate or 0):.2f} cpu_s_per_ticket={(last.cpu_per_ticket or float('nan')):.2f} "
          f"idle_rss_mb={(last.pss_mb or float('nan')):.0f}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
