"""Rows per second that the ``ticket_history`` load path writes into PostgreSQL.

What it measures: ``history.store.merge_tickets(conn, tenant, tickets, "bulk_import", window=(start, end),
listed_ids=...)`` called once per monthly window on a pooled connection (``PostgresResource.connection()``),
exactly as the backfill asset's write step does: COPY into the temporary staging table, ANALYZE, then the
INSERT ... ON CONFLICT merge with the window's anti-join delete, into the real schema (``sql/``: generated
``search_vector`` tsvector column, its GIN index, the primary key and the ``(tenant_id, resolved_at)`` index).
SDP is not involved: ``history_import.py`` measures the fetching.

On what: the project's own PostgreSQL (``local.services.EmbeddedPostgres``, temporary folder, fsync off as
the project starts it) and ``--rows`` (default 1,000,000) tickets derived from the 1,717 shipped Microsoft
support articles that have symptoms and a resolution: subject = article title + a variant suffix,
description = a slice of the symptoms' text, resolution = a slice of the resolution's text, varied
deterministically by row so that rows differ; spread evenly over 24 monthly windows. Tickets are generated
while COPY streams them, one window at a time, so at most one window's ids are held in memory.

Then ``--rerun-windows`` (default 3) windows are merged again with identical content (all rows unchanged),
as a re-run backfill does, and that rate is printed on an earlier line.

How to run (about 2 minutes for 1,000,000 rows on 2 cores)::

    .venv/bin/python benchmarks/history_load.py                  # 1,000,000 rows
    .venv/bin/python benchmarks/history_load.py --rows 100000    # quick
    .venv/bin/python benchmarks/history_load.py --rows 200000 --explain   # statement times + EXPLAIN ANALYZE

``--explain`` turns on PostgreSQL's statement log and auto_explain (ANALYZE, BUFFERS) for the run and prints
where the server's time went per statement kind, plus the plan of one merge; it slows the run a little.

The last line is ``load_rate_rows_per_s=<n>`` (goal: >= 20,000): rows written by the first pass divided by
its wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _measure import (  # benchmarks/ is on sys.path when a script in it runs
    migrated_postgres,
    postgres_cpu_s,
    remove_postgres,
)

TENANT = "bench"
ID_BASE = 123_640_000_000_000_000  # SDP cloud-style 18-digit ids
SUFFIXES = ("reported by {user}", "on {host}", "after the {month} update", "for the {dept} team",
            "since this morning", "again on {host}", "for a new starter", "on a shared mailbox")
USERS = ("Aisha", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kofi", "Lena")
DEPTS = ("finance", "sales", "HR", "legal", "warehouse", "support", "marketing")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def say(message: str) -> None:
    print(f"[history_load] {message}", flush=True)


def month_windows(months: int) -> list[tuple[datetime, datetime]]:
    """The ``months`` full calendar months before this one, oldest first, as [start, end) pairs."""
    from enhancement_pipeline.history.importer import month_windows as cut

    today = datetime.now(UTC)
    index = today.year * 12 + today.month - 1 - months
    start = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
    return cut(start, today.replace(day=1, hour=0, minute=0, second=0, microsecond=0))


def article_texts() -> list[tuple[str, str, str]]:
    """(title, symptoms text, resolution text) of every shipped Microsoft article that has both."""
    from enhancement_pipeline.local.datasets import markdown_to_html, ms_articles
    from enhancement_pipeline.servicedesk.payloads import html_to_text

    return [(a["title"].strip(), html_to_text(markdown_to_html(a["symptoms"])),
             html_to_text(markdown_to_html(a["resolution"])))
            for a in ms_articles() if a.get("symptoms") and a.get("resolution")]


def text_slice(text: str, i: int, min_len: int, spread: int) -> str:
    """A deterministic slice of ``text`` for row ``i``: ``min_len`` .. ``min_len + spread`` characters,
    starting and ending at word boundaries."""
    length = min_len + (i * 7_919) % spread
    if len(text) <= length:
        return text
    start = (i * 104_729) % (len(text) - length)
    start = text.rfind(" ", 0, start) + 1 if start else 0
    end = text.find(" ", start + length)
    return text[start:end if end > 0 else len(text)].strip()


def tickets_for(rows: range, start: datetime, end: datetime, texts: list) -> Iterator:
    """The window's tickets, built one at a time (``Ticket`` models, as the importer hands them over)."""
    from enhancement_pipeline.models import Ticket

    span_s = int((end - start).total_seconds())
    n = len(texts)
    for i in rows:
        title, symptoms, resolution = texts[(i * 7_753) % n]
        suffix = SUFFIXES[i % len(SUFFIXES)].format(user=USERS[i % len(USERS)], host=f"WS-{i % 4096:04d}",
                                                    month=MONTHS[i % 12], dept=DEPTS[i % len(DEPTS)])
        resolved = start + timedelta(seconds=(i * 2_654_435_761) % span_s)
        yield Ticket(tenant_id=TENANT, ticket_id=str(ID_BASE + i), display_id=str(i), subject=f"{title} ({suffix})",
                     description=text_slice(symptoms, i, 200, 1_000), status="Resolved",
                     created_at=resolved - timedelta(hours=1 + i % 72), resolved_at=resolved,
                     resolution=text_slice(resolution, i + 1, 100, 800))


def merge_window(postgres_resource, rows: range, start: datetime, end: datetime, texts: list):
    """One window through the asset's write step: ``merge_tickets`` on a pooled connection."""
    from enhancement_pipeline.history.store import merge_tickets

    listed_ids = [str(ID_BASE + i) for i in rows]  # every id SDP listed, as the importer passes them
    with postgres_resource.connection() as conn:
        return merge_tickets(conn, TENANT, tickets_for(rows, start, end, texts), "bulk_import", window=(start, end),
                             listed_ids=listed_ids)


def enable_statement_log(db_url: str) -> None:
    """Log every statement's duration and the EXPLAIN ANALYZE of statements over 200 ms (new sessions)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        for setting, value in (("log_min_duration_statement", "0"), ("session_preload_libraries", "auto_explain"),
                               ("auto_explain.log_min_duration", "200"), ("auto_explain.log_analyze", "on"),
                               ("auto_explain.log_buffers", "on"), ("auto_explain.log_nested_statements", "on")):
            conn.execute(f"ALTER SYSTEM SET {setting} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")


def summarize_statement_log(log_file: Path) -> None:
    """Server time per statement kind from the log, and the plan of the slowest merge."""
    durations: dict[str, list[float]] = {}
    plans: list[tuple[float, str]] = []
    text = log_file.read_text(errors="replace")
    # "duration: N ms  statement: SQL" for simple queries; "parse|bind|execute <unnamed>: SQL" for the merge,
    # which psycopg sends with parameters. The SQL may start on the next line.
    for match in re.finditer(r"duration: ([\d.]+) ms\s+(statement|parse \S+|bind \S+|execute \S+): (.*?)(?=\n\S|\Z)",
                             text, re.S):
        ms, phase, sql = float(match.group(1)), match.group(2).split()[0], " ".join(match.group(3).split())
        if phase in ("parse", "bind"):  # psycopg prepares a statement after 5 runs on a connection
            kind = f"({phase} of prepared statements)"
        elif sql.startswith("WITH upserted"):
            kind = "merge (INSERT ... ON CONFLICT + window DELETE)"
        else:
            kind = sql.split(" (")[0][:48] or "(empty)"
        durations.setdefault(kind, []).append(ms)
    for match in re.finditer(r"duration: ([\d.]+) ms\s+plan:\n(.*?)(?=\n\d{4}-\d\d-\d\d |\Z)", text, re.S):
        plans.append((float(match.group(1)), match.group(2)))
    say("server time by statement (from the PostgreSQL log):")
    for kind, values in sorted(durations.items(), key=lambda kv: -sum(kv[1])):
        say(f"  {sum(values) / 1000:8.2f} s  {len(values):4d}x  {kind}")
    if plans:
        ms, plan = max(plans, key=lambda p: p[0] if "upserted" in p[1] else 0)
        say(f"plan of the slowest merge ({ms / 1000:.2f} s, EXPLAIN ANALYZE BUFFERS via auto_explain):")
        print(plan.rstrip(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--rerun-windows", type=int, default=3, help="windows merged again, unchanged")
    parser.add_argument("--explain", action="store_true", help="statement log + auto_explain summary")
    args = parser.parse_args()

    import psycopg

    from enhancement_pipeline.storage.postgres import PostgresResource, close_pools

    windows = month_windows(args.months)
    per_window = [args.rows // len(windows) + (1 if w < args.rows % len(windows) else 0) for w in range(len(windows))]
    firsts = [sum(per_window[:w]) for w in range(len(windows))]
    say(f"machine: {os.cpu_count()} cores; {args.rows:,} rows over {len(windows)} monthly windows "
        f"{windows[0][0]:%Y-%m} .. {windows[-1][0]:%Y-%m}")
    t0 = time.perf_counter()
    texts = article_texts()
    say(f"{len(texts)} shipped articles as ticket text in {time.perf_counter() - t0:.1f} s")

    postgres, db_url = migrated_postgres("ep-bench-load-")
    try:
        if args.explain:
            enable_statement_log(db_url)
        resource = PostgresResource(database_url=db_url)
        say(f"postgres :{postgres.port} ready, schema migrated")

        # First pass: an empty table, every window inserted (a first backfill).
        pg0, cpu0, wall0 = postgres_cpu_s(postgres.data_dir), time.process_time(), time.perf_counter()
        written = 0
        for w, (start, end) in enumerate(windows):
            t = time.perf_counter()
            load = merge_window(resource, range(firsts[w], firsts[w] + per_window[w]), start, end, texts)
            seconds = time.perf_counter() - t
            written += load.written
            elapsed = time.perf_counter() - wall0
            say(f"{start:%Y-%m}: {load.written:,} rows (+{load.inserted:,} new, {load.updated} changed, "
                f"{load.unchanged} unchanged, {load.deleted} removed) in {seconds:.2f} s = "
                f"{load.written / seconds:,.0f}/s; total {written:,} in {elapsed:.1f} s = {written / elapsed:,.0f}/s")
        wall = time.perf_counter() - wall0
        cpu, pg_cpu = time.process_time() - cpu0, postgres_cpu_s(postgres.data_dir) - pg0

        with psycopg.connect(db_url, autocommit=True) as conn:
            rows = conn.execute("SELECT count(*) FROM ticket_history WHERE tenant_id = %s", (TENANT,)).fetchone()[0]
            sizes = conn.execute(
                "SELECT pg_size_pretty(pg_table_size('ticket_history')), "
                "pg_size_pretty(pg_relation_size('ticket_history_search_idx')), "
                "pg_size_pretty(pg_relation_size('ticket_history_pkey')), "
                "avg(length(subject) + length(description) + coalesce(length(resolution), 0))::int "
                "FROM ticket_history").fetchone()
        if rows != args.rows or written != args.rows:
            raise SystemExit(f"expected {args.rows} rows, merged {written}, the table holds {rows}")
        say(f"verified: ticket_history holds {rows:,} rows; table {sizes[0]}, GIN index {sizes[1]}, "
            f"primary key {sizes[2]}; {sizes[3]} characters of text per row on average")
        say(f"first pass: {wall:.1f} s; CPU: this process {cpu:.1f} s ({cpu / wall:.0%} of one core), "
            f"postgres {pg_cpu:.1f} s ({pg_cpu / wall:.0%} of one core)")

        # Second pass: the same windows again, unchanged (a re-run backfill).
        rerun = windows[:args.rerun_windows]
        t, again = time.perf_counter(), 0
        for w, (start, end) in enumerate(rerun):
            tw = time.perf_counter()
            load = merge_window(resource, range(firsts[w], firsts[w] + per_window[w]), start, end, texts)
            again += load.written
            if load.inserted or load.updated or load.deleted:
                raise SystemExit(f"re-run of {start:%Y-%m} changed rows: {load}")
            say(f"re-run {start:%Y-%m}: {load.unchanged:,} unchanged in {time.perf_counter() - tw:.2f} s")
        rerun_s = time.perf_counter() - t
        say(f"rerun_rate_rows_per_s={again / rerun_s:.0f} ({again:,} unchanged rows, {len(rerun)} windows, "
            f"{rerun_s:.1f} s)")
        if args.explain:
            summarize_statement_log(postgres.log_file)
        print(f"load_rate_rows_per_s={written / wall:.0f}", flush=True)
    finally:
        close_pools()
        remove_postgres(postgres)


if __name__ == "__main__":
    main()
