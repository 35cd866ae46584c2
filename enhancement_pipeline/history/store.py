"""Writing resolved tickets into ``ticket_history``."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from enhancement_pipeline.models import Ticket

_UPSERT = """
INSERT INTO ticket_history (tenant_id, ticket_id, subject, description, resolution, resolved_at, tags, source,
                            ingested_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (tenant_id, ticket_id) DO UPDATE
   SET subject = EXCLUDED.subject, description = EXCLUDED.description, resolution = EXCLUDED.resolution,
       resolved_at = EXCLUDED.resolved_at, tags = EXCLUDED.tags, source = EXCLUDED.source,
       ingested_at = EXCLUDED.ingested_at
"""


def upsert_history(conn: psycopg.Connection, tickets: Iterable[Ticket], source: str,
                   tags: dict[str, list[str]] | None = None) -> int:
    """Insert or update resolved tickets (``source``: bulk_import / sensor_resolved); returns rows written."""
    rows = [(t.tenant_id, t.ticket_id, t.subject, t.description, t.resolution, t.resolved_at,
             (tags or {}).get(t.ticket_id, []), source) for t in tickets]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(_UPSERT, rows)
    return len(rows)
