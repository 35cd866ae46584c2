"""``triage_calibration`` (sql/0010): each tenant's fitted confidence curve per label field; ``triage_models``
(sql/0012): its trained classifiers, read by the runs through a per-process cache."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable

import psycopg
from psycopg.types.json import Jsonb

from enhancement_pipeline.triage.calibration import FieldFit
from enhancement_pipeline.triage.classify import Calibration
from enhancement_pipeline.triage.text_model import TextModel

log = logging.getLogger(__name__)
MODEL_CACHE_SIZE = 32
"""Fitted models a process keeps (tenant x field); one is a few MB (its vocabulary and coefficients)."""
_cache: OrderedDict[tuple[str, str], tuple[object, TextModel]] = OrderedDict()
_cache_lock = threading.Lock()


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


def save_models(conn: psycopg.Connection, tenant_id: str, models: Iterable[TextModel]) -> None:
    """Replace the tenant's models with ``models``, in the caller's transaction (with ``save_calibration``: a
    field's curve and model always match)."""
    import sklearn

    conn.execute("DELETE FROM triage_models WHERE tenant_id = %s", (tenant_id,))
    for m in models:
        conn.execute("INSERT INTO triage_models (tenant_id, field, model, samples, labels, sklearn) VALUES "
                     "(%s, %s, %s, %s, %s, %s)", (tenant_id, m.field, m.to_bytes(), m.samples, len(m.labels),
                                                  sklearn.__version__))


def load_models(conn: psycopg.Connection, tenant_id: str) -> tuple[dict[str, TextModel], dict[str, str]]:
    """The tenant's models by field, and for each stored one that could not be read, why (its curve must then not
    be used: it was fitted on blended shares). A model is read from the table once per process and fitting; a run
    asks only for the fitting times (one small query)."""
    rows = conn.execute("SELECT field, fitted_at, samples FROM triage_models WHERE tenant_id = %s",
                        (tenant_id,)).fetchall()
    models, errors = {}, {}
    for field, fitted_at, samples in rows:
        key = (tenant_id, field)
        with _cache_lock:
            cached = _cache.get(key)
            if cached is not None and cached[0] == fitted_at:
                _cache.move_to_end(key)
                models[field] = cached[1]
                continue
        data = conn.execute("SELECT model FROM triage_models WHERE tenant_id = %s AND field = %s AND fitted_at = %s",
                            (tenant_id, field, fitted_at)).fetchone()
        if data is None:  # refitted between the two queries: the next run reads the new one
            errors[field] = "replaced while being read"
            continue
        try:
            model = TextModel.from_bytes(field, bytes(data[0]), samples)
        except ValueError as exc:
            log.warning("tenant %s: %s", tenant_id, exc)
            errors[field] = str(exc)
            continue
        with _cache_lock:
            _cache[key] = (fitted_at, model)
            _cache.move_to_end(key)
            while len(_cache) > MODEL_CACHE_SIZE:
                _cache.popitem(last=False)
        models[field] = model
    return models, errors
