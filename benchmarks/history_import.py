"""Throughput of a full ``ticket_history`` backfill from ServiceDesk Plus, through the real code path.

What it measures: tickets imported per second by one single-run backfill of every monthly partition of the
``<tenant>/ticket_history`` asset (``history.assets.build_ticket_history``), materialized with
``dagster.materialize`` and the resources of ``definitions.build_resources``: SDP listing in pages of 100,
two calls per ticket (request + resolution) on the import thread pool, HTML -> text, the per-tenant
request budget in Redis, and the monthly COPY + merge into Postgres.

On what: the project's own PostgreSQL and Redis (``local.services``, in a temporary folder), and the SDP
simulator in a *separate process* (so its CPU does not share this process's GIL) holding ``--tickets``
(default 20,000) resolved requests made from the real Microsoft support articles shipped in the package
(``demo_split()`` history, cycled with varied subjects), resolved over the 24 full months before this one,
answering every call after ``--latency-ms`` (default 50 ms) with list caching on.

How to run (about 2 minutes on 2 cores)::

    .venv/bin/python benchmarks/history_import.py                      # budget 2000/s, 32 fetches at once
    .venv/bin/python benchmarks/history_import.py --concurrency 16 --budget 50
    .venv/bin/python benchmarks/history_import.py --tickets 5000 --sweep 8,16,32,64   # quick exploration
    .venv/bin/python benchmarks/history_import.py --profile /tmp/import.pstats        # per-thread cProfile

Prints progress and figures; the last line is ``import_rate_tickets_per_s=<n>`` (goal: >= 200), the
tickets written divided by the wall time of the whole ``materialize`` call (run start-up included).
With ``--sweep`` every listed concurrency runs first (table emptied between runs) and the last line is
still the ``--concurrency`` run, which comes last.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import multiprocessing as mp
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from datetime import UTC, date, datetime
from pathlib import Path

from _measure import postgres_cpu_s  # benchmarks/ is on sys.path when a script in it runs

SDP_KEY = "bench-sdp-key"
TENANT = "bench"


def say(message: str) -> None:
    print(f"[history_import] {message}", flush=True)


def month_start(day: date, months_back: int) -> date:
    """First day of the month ``months_back`` months before ``day``'s month."""
    index = day.year * 12 + (day.month - 1) - months_back
    return date(index // 12, index % 12 + 1, 1)


# -- the SDP simulator, in its own process --------------------------------------------------------------

def run_simulator(n_tickets: int, first: date, last_exclusive: date, latency_s: float, ready: mp.Queue,
                  stop: mp.Event) -> None:
    """Child process: seed ``n_tickets`` resolved requests from the shipped articles and serve them."""
    from enhancement_pipeline.local.datasets import demo_split
    from enhancement_pipeline.local.http_server import serve_in_thread
    from enhancement_pipeline.local.sdp_simulator import SdpState, create_app
    from enhancement_pipeline.servicedesk.payloads import datetime_to_millis

    history, _ = demo_split()
    state = SdpState(api_key=SDP_KEY, latency_s=latency_s, cache_lists=True)
    start_ms = datetime_to_millis(datetime(first.year, first.month, 1, tzinfo=UTC))
    span_ms = datetime_to_millis(datetime(last_exclusive.year, last_exclusive.month, 1, tzinfo=UTC)) - start_ms
    suffixes = ("", " (again)", " - second site", " after update", " for a new user", " on a shared mailbox",
                " - urgent", " since this morning")
    for i in range(n_tickets):
        base = history[i % len(history)]
        cycle = i // len(history)
        suffix = suffixes[cycle % len(suffixes)] + (f" #{cycle}" if cycle >= len(suffixes) else "")
        # Spread evenly but not in article order: a multiplicative hash of i over the 24 months.
        resolved = start_ms + (i * 2_654_435_761) % span_ms
        created = max(start_ms - 86_400_000, resolved - 3_600_000 * (1 + i % 72))
        state.add_request(subject=base.subject + suffix, description=base.description_html,
                          requester=base.requester, technician=base.technician, status="Resolved",
                          created_millis=created, resolved_millis=resolved, resolution_html=base.resolution_html,
                          category=base.category)
    server = serve_in_thread(create_app(state), name="sdp-simulator")
    ready.put(server.url)
    stop.wait()
    server.stop()


def wait_for_simulator(sim: mp.Process, ready: mp.Queue, timeout_s: float = 300) -> str:
    """The simulator's URL once it serves; raises SystemExit if its process dies first."""
    import queue

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return ready.get(timeout=1)
        except queue.Empty:
            if not sim.is_alive():
                raise SystemExit(f"the SDP simulator process exited with code {sim.exitcode}") from None
    raise SystemExit("the SDP simulator did not start in time")


def process_cpu_s(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


# -- per-thread cProfile (cProfile alone only sees the thread that enabled it) ---------------------------

class ThreadProfiles:
    """Enable a cProfile.Profile in this thread and in every thread started while active."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, *_args) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append(profile)
        profile.enable()

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start_in_thread)
        self._start_in_thread()
        return self

    def __exit__(self, *exc) -> None:
        threading.setprofile(None)
        self.profiles[0].disable()

    def dump(self, path: str, top: int = 30) -> None:
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            stats.add(profile)
        stats.dump_stats(path)
        say(f"profile of {len(self.profiles)} threads written to {path}; top {top} by own time:")
        stats.sort_stats("tottime").print_stats(top)


# -- one backfill ---------------------------------------------------------------------------------------

def run_backfill(*, sdp_url: str, db_url: str, redis_url: str, first: date, last: date, budget: int,
                 concurrency: int, sim_pid: int, pg_data: Path, profile_path: str | None = None) -> dict:
    import dagster as dg
    import psycopg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy, partitioned checks
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from enhancement_pipeline.definitions import build_resources
    from enhancement_pipeline.history.assets import build_ticket_history
    from enhancement_pipeline.settings import Settings
    from enhancement_pipeline.tenants import KbSettings, SdpSettings, Tenant

    tenant = Tenant(tenant_id=TENANT, history_start_date=first,
                    sdp=SdpSettings(base_url=sdp_url, request_budget_per_s=budget, import_concurrency=concurrency),
                    kb=KbSettings(base_url="http://127.0.0.1:9"))
    settings = Settings(tenant_id=TENANT, database_url=db_url, redis_url=redis_url, sdp_base_url=sdp_url)
    resources = build_resources(settings, [tenant])
    asset = build_ticket_history(tenant)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE ticket_history CASCADE")
    say(f"backfill {first:%Y-%m} .. {last:%Y-%m} as one run: request_budget_per_s={budget}, "
        f"import_concurrency={concurrency}")
    sim_cpu0, pg_cpu0 = process_cpu_s(sim_pid), postgres_cpu_s(pg_data)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    profiles = ThreadProfiles() if profile_path else None
    with profiles or contextlib.nullcontext():
        # Dagster's console logger at WARNING: the figures printed here are the benchmark's output.
        result = dg.materialize([asset], resources=resources, instance=dg.DagsterInstance.ephemeral(),
                                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                                tags={"dagster/asset_partition_range_start": first.isoformat(),
                                      "dagster/asset_partition_range_end": last.isoformat()})
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    sim_cpu, pg_cpu = process_cpu_s(sim_pid) - sim_cpu0, postgres_cpu_s(pg_data) - pg_cpu0
    if not result.success:
        raise SystemExit("the backfill run failed")
    meta = {k: v.value for k, v in
            result.asset_materializations_for_node(f"{TENANT}__ticket_history")[0].metadata.items()}
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM ticket_history WHERE tenant_id = %s", (TENANT,)).fetchone()[0]
    if profiles:
        profiles.dump(profile_path)
    figures = {"concurrency": concurrency, "budget": budget, "months": meta["months"], "listed": meta["listed"],
               "imported": meta["imported"], "failed": meta["failed"], "rows": rows,
               "asset_seconds": meta["seconds"], "run_seconds": round(wall, 2),
               "budget_wait_s": meta["budget_wait_thread_s"], "cpu_s": round(cpu, 1), "sim_cpu_s": round(sim_cpu, 1),
               "pg_cpu_s": round(pg_cpu, 1), "asset_rate": meta["tickets_per_s"],
               "rate": round(meta["imported"] / wall, 1)}
    say(f"listed {figures['listed']}, imported {figures['imported']}, failed {figures['failed']}, "
        f"months {figures['months']}, rows in table {rows}")
    say(f"seconds: run {figures['run_seconds']} (asset {figures['asset_seconds']}), budget wait "
        f"{figures['budget_wait_s']} s (summed over threads)")
    say(f"CPU: this process {figures['cpu_s']} s ({cpu / wall:.0%} of one core, "
        f"{1000 * cpu / max(1, meta['imported']):.2f} ms/ticket), simulator {figures['sim_cpu_s']} s, "
        f"postgres {figures['pg_cpu_s']} s")
    say(f"rate: {figures['rate']} tickets/s end to end ({figures['asset_rate']} /s inside the asset)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=24, help="full months before this one that hold tickets")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulator delay per call")
    parser.add_argument("--budget", type=int, default=2000, help="tenant request_budget_per_s")
    parser.add_argument("--concurrency", type=int, default=32, help="tenant import_concurrency")
    parser.add_argument("--sweep", default="", help="comma-separated concurrencies to try first, e.g. 8,16,32,64")
    parser.add_argument("--profile", default="", help="write a per-thread cProfile of the last run here")
    args = parser.parse_args()

    for name in ("DATABASE_URL", "REDIS_URL"):  # build_resources prefers these; this benchmark uses its own
        os.environ.pop(name, None)
    os.environ["SDP_API_KEY"] = SDP_KEY
    today = datetime.now(UTC).date()
    first, last = month_start(today, args.months), month_start(today, 1)
    end_exclusive = month_start(today, 0)
    say(f"machine: {os.cpu_count()} cores; tickets {args.tickets} resolved {first} .. {end_exclusive} "
        f"(exclusive), simulator latency {args.latency_ms:.0f} ms/call, cache_lists on")

    from enhancement_pipeline.local.services import EmbeddedPostgres, EmbeddedRedis
    from enhancement_pipeline.storage.migrations import migrate
    from enhancement_pipeline.storage.postgres import close_pools

    root = Path(tempfile.mkdtemp(prefix="ep-bench-import-"))
    root.chmod(0o755)  # PostgreSQL runs as `nobody` when this runs as root
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    sim = ctx.Process(target=run_simulator, name="sdp-simulator", daemon=True,
                      args=(args.tickets, first, end_exclusive, args.latency_ms / 1000, ready, stop))
    postgres = redis_server = None
    try:
        t0 = time.perf_counter()
        sim.start()
        postgres = EmbeddedPostgres(root / "pg").start()
        postgres.create_database("enhancement")
        db_url = postgres.url("enhancement")
        migrate(db_url)
        redis_server = EmbeddedRedis(root / "redis").start()
        sdp_url = wait_for_simulator(sim, ready)
        say(f"services up in {time.perf_counter() - t0:.1f} s: postgres :{postgres.port}, redis "
            f":{redis_server.port}, SDP simulator pid {sim.pid} at {sdp_url}")
        with urllib.request.urlopen(f"{sdp_url}/_sim/stats") as response:
            say(f"simulator holds {json.load(response)['requests']} requests")

        common = dict(sdp_url=sdp_url, db_url=db_url, redis_url=redis_server.url(), first=first, last=last,
                      budget=args.budget, sim_pid=sim.pid, pg_data=postgres.data_dir)
        sweep = [int(c) for c in args.sweep.split(",") if c.strip()]
        results = [run_backfill(concurrency=c, **common) for c in sweep]
        final = run_backfill(concurrency=args.concurrency, profile_path=args.profile or None, **common)
        for r in [*results, final]:
            say(f"concurrency {r['concurrency']:>3}: {r['rate']:>7.1f} tickets/s, {r['run_seconds']} s, "
                f"CPU here {r['cpu_s']} s, simulator {r['sim_cpu_s']} s, postgres {r['pg_cpu_s']} s")
        with urllib.request.urlopen(f"{sdp_url}/_sim/stats") as response:
            say(f"simulator calls (all runs): {json.load(response)['calls']}")
        if final["rows"] != args.tickets or final["imported"] != args.tickets:
            raise SystemExit(f"expected {args.tickets} rows, the table holds {final['rows']}")
        say(f"verified: ticket_history holds {final['rows']} rows")
        print(f"import_rate_tickets_per_s={final['rate']:.0f}", flush=True)
    finally:
        stop.set()
        sim.join(15)
        if sim.is_alive():
            sim.terminate()
        close_pools()
        if redis_server is not None:
            redis_server.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
