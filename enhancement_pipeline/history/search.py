"""Similar resolved tickets: full-text search over ``ticket_history`` (Postgres, GIN index)."""

from __future__ import annotations

import psycopg

from enhancement_pipeline.models import SimilarTicket

MAX_QUERY_CHARS = 2000

# plainto_tsquery ANDs every word, so a long description matches nothing; OR-ing its lexemes lets the
# rank (subject weighted over description over resolution, see sql/0001) decide instead.
_SIMILAR = """
WITH q AS (SELECT replace(plainto_tsquery('english', %(text)s)::text, ' & ', ' | ')::tsquery AS query)
SELECT h.ticket_id, h.subject, h.resolution, h.resolved_at, ts_rank_cd(h.search_vector, q.query, 32) AS score
FROM ticket_history AS h, q
WHERE h.tenant_id = %(tenant)s AND h.resolution IS NOT NULL AND h.search_vector @@ q.query
ORDER BY score DESC, h.resolved_at DESC
LIMIT %(limit)s
"""


def find_similar(conn: psycopg.Connection, tenant_id: str, text: str, limit: int = 5) -> list[SimilarTicket]:
    """Up to ``limit`` resolved tickets of ``tenant_id`` ranked by term overlap with ``text`` (score in 0..1)."""
    text = text.strip()[:MAX_QUERY_CHARS]
    if not text:
        return []
    rows = conn.execute(_SIMILAR, {"text": text, "tenant": tenant_id, "limit": limit}).fetchall()
    return [SimilarTicket(ticket_id=r[0], subject=r[1], resolution=r[2], resolved_at=r[3], score=float(r[4]))
            for r in rows]
