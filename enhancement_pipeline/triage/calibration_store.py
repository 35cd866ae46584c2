"""``triage_calibration`` (sql/0010): each tenant's fitted confidence curve per label field."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg.types.json import Jsonb

from enhancement_pipeline.triage.calibration import FieldFit
from enhancement_pipeline.triage.classify import Calibration


def save_calibration(conn: psycopg.Connection, tenant_id: str, fits: Iterable[FieldFit]) -> None:
    """Replace the tenant's curves with ``fits`` (fields not among them go back to the shipped curve), in the
    caller's transaction."""
    conn.execute("DELETE FROM triage_calibration WHERE tenant_id = %s", (tenant_id,))
    for fit in fits:
        conn.execute("INSERT INTO triage_calibration (tenant_id, field, knots, samples) VALUES (%s, %s, %s, %s)",
                     (tenant_id, fit.field, Jsonb([list(k) for k in fit.curve.knots]), fit.samples))


def load_calibration(conn: psycopg.Connection, tenant_id: str) -> dict[str, tuple[Calibration, int]]:
    """The tenant's curves by field, with the samples each was fitted on; {} before the asset first ran. A
    stored curve that is not monotone (edited by hand) raises ``ValueError``."""
    rows = conn.execute("SELECT field, knots, samples FROM triage_calibration WHERE tenant_id = %s",
                        (tenant_id,)).fetchall()
    return {field: (Calibration(tuple((float(x), float(y)) for x, y in knots)), samples)
            for field, knots, samples in rows}
