"""Writing resolved tickets into ``ticket_history``: COPY into a staging table, then one merge statement.

Each row carries the request's labels (category, subcategory, item, priority, support group, technician,
site, requester id: ``sql/0006``), which count as content like the texts.

Two callers: the monthly backfill replaces a window (``window`` given: rows resolved in it that SDP no longer
lists are deleted, unless the listing could not be shown complete), and ``resolved_ticket_sensor`` upserts
what changed (no window). A row whose content did not change keeps its ``source`` and ``ingested_at``, so
re-running a backfill leaves the table identical, and provenance always names the import that last changed
the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg

from enhancement_pipeline.models import Ticket

Source = Literal["bulk_import", "sensor_resolved"]

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS history_stage (
    ticket_id text, subject text, description text, resolution text, resolved_at timestamptz,
    category text, subcategory text, item text, priority text, support_group text, technician text, site text,
    requester_id text
) ON COMMIT DELETE ROWS
"""

_MERGE = """
WITH upserted AS (
    INSERT INTO ticket_history AS t (tenant_id, ticket_id, subject, description, resolution, resolved_at, source,
                                     ingested_at, category, subcategory, item, priority, support_group, technician,
                                     site, requester_id)
    SELECT %(tenant)s, s.ticket_id, s.subject, s.description, s.resolution, s.resolved_at, %(source)s, now(),
           s.category, s.subcategory, s.item, s.priority, s.support_group, s.technician, s.site, s.requester_id
      FROM history_stage AS s
     -- ON CONFLICT computes the row's search vector before it finds the conflict: an unchanged row (the
     -- common case when a month is re-run) is left out here instead, ~30x cheaper. The window bounds let
     -- the resolved_at index find it; without a window (the sensor) nothing is left out.
     WHERE NOT EXISTS (
           SELECT 1 FROM ticket_history AS c
            WHERE c.tenant_id = %(tenant)s AND c.ticket_id = s.ticket_id
              AND c.resolved_at >= %(start)s AND c.resolved_at < %(end)s
              AND (c.subject, c.description, c.resolution, c.resolved_at, c.category, c.subcategory, c.item,
                   c.priority, c.support_group, c.technician, c.site, c.requester_id)
                  IS NOT DISTINCT FROM (s.subject, s.description, s.resolution, s.resolved_at, s.category,
                   s.subcategory, s.item, s.priority, s.support_group, s.technician, s.site, s.requester_id))
    ON CONFLICT (tenant_id, ticket_id) DO UPDATE
       SET subject = EXCLUDED.subject, description = EXCLUDED.description, resolution = EXCLUDED.resolution,
           resolved_at = EXCLUDED.resolved_at, source = EXCLUDED.source, ingested_at = EXCLUDED.ingested_at,
           category = EXCLUDED.category, subcategory = EXCLUDED.subcategory, item = EXCLUDED.item,
           priority = EXCLUDED.priority, support_group = EXCLUDED.support_group, technician = EXCLUDED.technician,
           site = EXCLUDED.site, requester_id = EXCLUDED.requester_id
     -- Labels count as content: a re-import fills the labels of rows imported before they were kept.
     WHERE (t.subject, t.description, t.resolution, t.resolved_at, t.category, t.subcategory, t.item, t.priority,
            t.support_group, t.technician, t.site, t.requester_id)
           IS DISTINCT FROM (EXCLUDED.subject, EXCLUDED.description, EXCLUDED.resolution, EXCLUDED.resolved_at,
            EXCLUDED.category, EXCLUDED.subcategory, EXCLUDED.item, EXCLUDED.priority, EXCLUDED.support_group,
            EXCLUDED.technician, EXCLUDED.site, EXCLUDED.requester_id)
       -- A row written after this import listed SDP (by resolved_ticket_sensor) is newer than what it fetched.
       AND (%(fresh_since)s::timestamptz IS NULL OR t.ingested_at < %(fresh_since)s)
    RETURNING (xmax = 0) AS inserted
), deleted AS (
    DELETE FROM ticket_history AS t
     WHERE %(window)s AND t.tenant_id = %(tenant)s
       AND t.resolved_at >= %(start)s AND t.resolved_at < %(end)s
       AND NOT EXISTS (SELECT 1 FROM history_stage AS s WHERE s.ticket_id = t.ticket_id)
       AND t.ticket_id <> ALL (%(keep)s::text[])
       AND (%(fresh_since)s::timestamptz IS NULL OR t.ingested_at < %(fresh_since)s)
    RETURNING 1
)
SELECT (SELECT count(*) FILTER (WHERE inserted) FROM upserted),
       (SELECT count(*) FILTER (WHERE NOT inserted) FROM upserted),
       (SELECT count(*) FROM deleted)
"""


@dataclass(frozen=True)
class HistoryLoad:
    """Counts of one merge: rows inserted, updated (content changed), unchanged, and deleted from the window."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def __add__(self, other: HistoryLoad) -> HistoryLoad:
        return HistoryLoad(self.inserted + other.inserted, self.updated + other.updated,
                           self.unchanged + other.unchanged, self.deleted + other.deleted)

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.unchanged


def merge_tickets(conn: psycopg.Connection, tenant_id: str, tickets: Iterable[Ticket], source: Source, *,
                  window: tuple[datetime, datetime] | None = None, listed_ids: Sequence[str] = (),
                  fresh_since: datetime | None = None, delete_unlisted: bool = True) -> HistoryLoad:
    """Merge ``tickets`` (all of ``tenant_id``) into ``ticket_history`` in one transaction.

    ``window`` ``(start, end)``, end exclusive: the tenant's rows resolved in it whose id is neither among
    ``tickets`` nor in ``listed_ids`` are deleted, so the window ends up equal to what SDP lists. Pass every
    id SDP listed, including those whose fetch failed, so a failed fetch never deletes a row.
    ``fresh_since``: when the caller started reading SDP; rows written since (by the resolved-ticket sensor,
    which may have seen a newer state) are neither deleted nor overwritten.
    ``delete_unlisted`` False: merge into the window but delete nothing (a listing that could not be shown
    complete: the rows it did not list may still be in SDP).
    Raises ``ValueError`` for a ticket of another tenant (nothing is written).
    """
    seen: set[str] = set()
    with conn.transaction():
        conn.execute(_STAGE)
        # A pooled connection may call this twice before its outer transaction commits.
        conn.execute("TRUNCATE history_stage")
        with conn.cursor().copy("COPY history_stage (ticket_id, subject, description, resolution, resolved_at, "
                                "category, subcategory, item, priority, support_group, technician, site, "
                                "requester_id) FROM STDIN") as copy:
            for t in tickets:
                if t.tenant_id != tenant_id:
                    raise ValueError(f"ticket {t.ticket_id} belongs to tenant {t.tenant_id!r}, not {tenant_id!r}")
                if t.ticket_id in seen:  # one row per ticket, or the merge would touch a row twice
                    continue
                seen.add(t.ticket_id)
                copy.write_row((t.ticket_id, t.subject, t.description, t.resolution, t.resolved_at, t.category,
                                t.subcategory, t.item, t.priority, t.support_group, t.technician, t.site,
                                t.requester_id))
        if window is not None:
            conn.execute("ANALYZE history_stage")  # so the window's delete plans a hash anti-join
        start, end = window or (None, None)
        inserted, updated, deleted = conn.execute(_MERGE, {
            "tenant": tenant_id, "source": source, "window": window is not None and delete_unlisted,
            "start": start, "end": end,
            "fresh_since": fresh_since,
            # Listed but not fetched: small, so an array; the fetched ones are matched through the stage.
            "keep": sorted(set(listed_ids) - seen),
        }).fetchone()
    return HistoryLoad(int(inserted), int(updated), len(seen) - int(inserted) - int(updated), int(deleted))


def window_counts(conn: psycopg.Connection, tenant_id: str, start: datetime, end: datetime) -> dict[str, int]:
    """Rows of the tenant resolved in ``[start, end)`` by month (``YYYY-MM-01`` keys, months with rows only)."""
    rows = conn.execute(
        "SELECT to_char(date_trunc('month', resolved_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD'), count(*) "
        "FROM ticket_history WHERE tenant_id = %s AND resolved_at >= %s AND resolved_at < %s GROUP BY 1",
        (tenant_id, start, end)).fetchall()
    return {month: int(n) for month, n in rows}
