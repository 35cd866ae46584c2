"""Reading what ``metrics.figures`` summarizes: the note ledger (``posted_notes``, ``ticket_launches``) in the app
database and the tenant's ``enhance_ticket`` runs in Dagster's run storage."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import psycopg

from enhancement_pipeline.metrics.figures import PostedNoteRow, RunRow

MAX_RUNS = 50_000
"""Runs read per window at most (an MSP's busiest tenant opens a few thousand tickets a day)."""


def posted_notes_since(conn: psycopg.Connection, tenant_id: str, since: datetime) -> list[PostedNoteRow]:
    """The tenant's notes recorded as posted at or after ``since``."""
    rows = conn.execute(
        "SELECT ticket_id, posted_at, ticket_created_at, mode, fallback_reason, coalesce(prompt_tokens, 0),"
        " coalesce(completion_tokens, 0), coalesce(cost_usd, 0) FROM posted_notes"
        " WHERE tenant_id = %s AND state = 'posted' AND posted_at >= %s", (tenant_id, since)).fetchall()
    return [PostedNoteRow(*row) for row in rows]


def claimed_since(conn: psycopg.Connection, tenant_id: str, since: datetime) -> list[str]:
    """Tickets whose first run was launched (claimed by the sensor or the push receiver) at or after ``since``."""
    return [r[0] for r in conn.execute("SELECT ticket_id FROM ticket_launches WHERE tenant_id = %s AND"
                                       " claimed_at >= %s", (tenant_id, since))]


def runs_since(instance: dg.DagsterInstance, job_name: str, tenant_id: str, since: datetime) -> list[RunRow]:
    """The tenant's runs of ``job_name`` created at or after ``since`` (run tag ``tenant``), newest first."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, tags={"tenant": tenant_id}, created_after=since), limit=MAX_RUNS)
    return [RunRow(ticket_id=r.dagster_run.tags.get("ticket_id"), status=r.dagster_run.status.value,
                   tags=dict(r.dagster_run.tags)) for r in records]
