"""Writing a validated inventory into ``system_inventory`` (the data team's file is the whole truth)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import psycopg

_COLUMNS = ("ip_address", "hostname", "role", "client", "location")


@dataclass(frozen=True)
class InventoryLoad:
    """Counts of one load: rows inserted, changed (``updated_at`` bumped), unchanged, and deleted."""

    inserted: int
    updated: int
    unchanged: int
    deleted: int


def replace_inventory(conn: psycopg.Connection, tenant_id: str, rows: pl.DataFrame) -> InventoryLoad:
    """Make the tenant's inventory equal ``rows`` in one transaction.

    COPY into a temporary table, then upsert: ``updated_at`` moves only for rows whose values changed, and
    records absent from the file are deleted.
    """
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE inventory_stage (ip_address inet, hostname text, role text, client text, "
                     "location text) ON COMMIT DROP")
        with conn.cursor().copy(f"COPY inventory_stage ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in rows.select(list(_COLUMNS)).iter_rows():
                copy.write_row(row)
        counts = conn.execute(
            """
            WITH upserted AS (
                INSERT INTO system_inventory AS t (tenant_id, ip_address, hostname, role, client, location, updated_at)
                SELECT %(tenant)s, ip_address, hostname, role, client, location, now() FROM inventory_stage
                ON CONFLICT (tenant_id, ip_address) DO UPDATE
                   SET hostname = EXCLUDED.hostname, role = EXCLUDED.role, client = EXCLUDED.client,
                       location = EXCLUDED.location, updated_at = now()
                 WHERE (t.hostname, t.role, t.client, t.location)
                       IS DISTINCT FROM (EXCLUDED.hostname, EXCLUDED.role, EXCLUDED.client, EXCLUDED.location)
                RETURNING (xmax = 0) AS inserted
            ), deleted AS (
                DELETE FROM system_inventory t
                 WHERE t.tenant_id = %(tenant)s
                   AND NOT EXISTS (SELECT 1 FROM inventory_stage s WHERE s.ip_address = t.ip_address)
                RETURNING 1
            )
            SELECT (SELECT count(*) FILTER (WHERE inserted) FROM upserted),
                   (SELECT count(*) FILTER (WHERE NOT inserted) FROM upserted),
                   (SELECT count(*) FROM deleted)
            """,
            {"tenant": tenant_id},
        ).fetchone()
    inserted, updated, deleted = (int(x) for x in counts)
    return InventoryLoad(inserted, updated, rows.height - inserted - updated, deleted)
