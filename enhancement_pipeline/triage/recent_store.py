"""``recent_tickets`` (sql/0009): the tenant's recently opened tickets, for duplicate and storm detection."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import psycopg

from enhancement_pipeline.history.embeddings import vector_literal
from enhancement_pipeline.models import Ticket
from enhancement_pipeline.triage.duplicates import WINDOW, RecentTicket

KEEP = timedelta(days=7)
"""Rows older than this (by created_at) are deleted as new ones are written."""

_OPEN_RECENT = """
SELECT r.ticket_id, r.display_id, r.created_at, r.requester_id, r.requester, r.site,
       CASE WHEN r.embedding IS NULL OR %(vector)s::halfvec IS NULL OR r.model IS DISTINCT FROM %(model)s THEN NULL
            ELSE 1 - (r.embedding <=> %(vector)s::halfvec) END
  FROM recent_tickets AS r
 WHERE r.tenant_id = %(tenant)s AND r.ticket_id <> %(ticket)s
   AND r.created_at >= %(since)s AND r.created_at <= %(until)s
   AND NOT EXISTS (SELECT 1 FROM ticket_history AS h WHERE h.tenant_id = r.tenant_id AND h.ticket_id = r.ticket_id)
"""

_REMEMBER = """
INSERT INTO recent_tickets (tenant_id, ticket_id, display_id, created_at, requester_id, requester, site, subject,
                            model, embedding)
VALUES (%(tenant)s, %(ticket)s, %(display)s, %(created)s, %(requester_id)s, %(requester)s, %(site)s, %(subject)s,
        %(model)s, %(vector)s::halfvec)
ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET
    display_id = excluded.display_id, created_at = excluded.created_at, requester_id = excluded.requester_id,
    requester = excluded.requester, site = excluded.site, subject = excluded.subject, model = excluded.model,
    embedding = excluded.embedding, seen_at = now()
"""


def has_recent_tickets(conn: psycopg.Connection) -> bool:
    """Whether the table exists (it needs pgvector: sql/0009)."""
    return conn.execute("SELECT to_regclass('recent_tickets') IS NOT NULL").fetchone()[0]


def compare_and_remember(conn: psycopg.Connection, ticket: Ticket, vector: np.ndarray | None, model: str | None,
                         now: datetime, window: timedelta = WINDOW) -> list[RecentTicket]:
    """The tenant's open tickets created in ``window`` before the ticket (up to ``now`` when it has no creation
    time), with their cosine to ``vector`` (None where either has no embedding, or another model wrote theirs);
    then the ticket itself is written (or refreshed, on a re-run), and rows older than ``KEEP`` deleted, in one
    transaction. Raises ``psycopg.Error`` on database failures (the caller degrades)."""
    created = ticket.created_at or now
    literal = vector_literal(vector) if vector is not None else None
    with conn.transaction():
        rows = conn.execute(_OPEN_RECENT, {"tenant": ticket.tenant_id, "ticket": ticket.ticket_id,
                                           "since": created - window, "until": max(created, now),
                                           "vector": literal, "model": model}).fetchall()
        conn.execute(_REMEMBER, {"tenant": ticket.tenant_id, "ticket": ticket.ticket_id, "display": ticket.display_id,
                                 "created": created, "requester_id": ticket.requester_id,
                                 "requester": ticket.requester, "site": ticket.site, "subject": ticket.subject[:500],
                                 "model": model if vector is not None else None, "vector": literal})
        conn.execute("DELETE FROM recent_tickets WHERE tenant_id = %s AND created_at < %s",
                     (ticket.tenant_id, now - KEEP))
    return [RecentTicket(ticket_id=r[0], display_id=r[1], created_at=r[2], requester_id=r[3], requester=r[4],
                         site=r[5], cosine=None if r[6] is None else float(r[6])) for r in rows]
