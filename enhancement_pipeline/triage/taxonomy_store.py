"""The ``sdp_taxonomy`` table (``sql/0008``): each tenant's taxonomy as one JSON document, replaced whole."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from enhancement_pipeline.triage.taxonomy import Taxonomy


class StoredTaxonomyError(ValueError):
    """The stored document no longer fits ``Taxonomy`` (written by an older version): re-materialize the asset."""


def save_taxonomy(conn: psycopg.Connection, tenant_id: str, taxonomy: Taxonomy) -> None:
    """Store ``taxonomy`` as the tenant's, replacing the one stored before (in the caller's transaction)."""
    conn.execute(
        "INSERT INTO sdp_taxonomy (tenant_id, taxonomy, fetched_at) VALUES (%s, %s, %s) "
        "ON CONFLICT (tenant_id) DO UPDATE SET taxonomy = EXCLUDED.taxonomy, fetched_at = EXCLUDED.fetched_at, "
        "stored_at = now()",
        (tenant_id, Jsonb(taxonomy.model_dump(mode="json")), taxonomy.fetched_at))


def load_taxonomy(conn: psycopg.Connection, tenant_id: str) -> Taxonomy | None:
    """The tenant's stored taxonomy, or None when ``<tenant>/sdp_taxonomy`` was never materialized.

    Raises ``StoredTaxonomyError`` when the stored document does not validate as a ``Taxonomy``.
    """
    row = conn.execute("SELECT taxonomy FROM sdp_taxonomy WHERE tenant_id = %s", (tenant_id,)).fetchone()
    if row is None:
        return None
    try:
        return Taxonomy.model_validate(row[0])
    except ValidationError as exc:
        raise StoredTaxonomyError(f"the stored taxonomy of tenant {tenant_id!r} does not fit this version "
                                  f"({exc.error_count()} error(s)); materialize {tenant_id}/sdp_taxonomy again"
                                  ) from exc
