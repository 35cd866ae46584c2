"""``<tenant>/sdp_taxonomy`` for each tenant: the tenant's own SDP taxonomy, read through the API once a day.

The asset reads categories -> subcategories -> items, priorities, urgencies, impacts, levels, sites, modes,
request types, statuses, support groups (with their technicians where SDP tells) and technicians
(``triage.taxonomy_reader``) and stores them in ``sdp_taxonomy`` (``triage.taxonomy_store``), replacing the
tenant's previous taxonomy. A read that fails stores nothing: the previous taxonomy stays and the run fails
with the reason. Its check ``history_labels_known`` warns about labels in ``ticket_history`` (category,
subcategory, item, priority, support group) that the taxonomy does not hold: renamed or deleted in SDP since,
or a bug. ``build_taxonomy_schedule`` refreshes it daily.
"""

import time
from collections import Counter
from datetime import UTC

import dagster as dg
import psycopg

from enhancement_pipeline.servicedesk.client import SdpError
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant
from enhancement_pipeline.triage.taxonomy import Taxonomy

LABELS_CHECK = "history_labels_known"
SCHEDULE_CRON = "30 2 * * *"
"""When the daily refresh runs (UTC): before the working day of European and American tenants."""
SAMPLE = 20

_COUNT_KEYS = {"category": "categories", "subcategory": "subcategories", "item": "items", "priority": "priorities",
               "group": "support_groups", "urgency": "urgencies", "impact": "impacts", "level": "levels",
               "site": "sites", "status": "statuses", "mode": "modes", "request_type": "request_types",
               "technician": "technicians"}


def taxonomy_asset_key(tenant_id: str) -> dg.AssetKey:
    return dg.AssetKey([tenant_id, "sdp_taxonomy"])


def build_sdp_taxonomy(tenant: Tenant) -> dg.AssetsDefinition:
    """The tenant's ``<tenant>/sdp_taxonomy`` asset and its ``history_labels_known`` check (a warning)."""
    tenant_id = tenant.tenant_id
    key = taxonomy_asset_key(tenant_id)

    @dg.asset(
        key=key,
        group_name=tenant_id,
        kinds={"postgres"},
        check_specs=[dg.AssetCheckSpec(LABELS_CHECK, asset=key,
                                       description="Every category, subcategory, item, priority and support group "
                                                   "in ticket_history is one the taxonomy holds.")],
        description=f"Tenant {tenant_id}'s own ServiceDesk Plus taxonomy: categories -> subcategories -> items, "
                    "priorities, urgencies, impacts, levels, sites, support groups and their technicians (where "
                    "SDP tells), read through the v3 API daily; deleted entries left out. Triage suggests only "
                    "labels it holds.",
    )
    def sdp_taxonomy(context: dg.AssetExecutionContext, sdp: ServiceDeskResource,
                     postgres: PostgresResource) -> dg.MaterializeResult:
        from enhancement_pipeline.triage.taxonomy_reader import read_taxonomy
        from enhancement_pipeline.triage.taxonomy_store import save_taxonomy

        base_url = sdp.endpoint(tenant_id).base_url
        started = time.perf_counter()
        try:
            with sdp.client(tenant_id, budgeted=True) as client:
                taxonomy = read_taxonomy(client)
        except SdpError as exc:
            raise dg.Failure(f"could not read tenant {tenant_id}'s taxonomy from SDP at {base_url}: "
                             f"{type(exc).__name__}: {exc}; {_kept(postgres, tenant_id)}") from exc
        seconds = time.perf_counter() - started
        if not taxonomy.categories:
            # Every SDP ships categories: none listed is far likelier a key narrowed to nothing than a tenant
            # without any, and storing it would make every label unknown.
            raise dg.Failure(f"SDP at {base_url} listed no categories for tenant {tenant_id}; "
                             f"{_kept(postgres, tenant_id)}")
        with postgres.connection() as conn:
            previous = _previous(conn, tenant_id, context)
            save_taxonomy(conn, tenant_id, taxonomy)
            labels = history_label_counts(conn, tenant_id)
        for reason in taxonomy.notes:
            context.log.info(f"{tenant_id} taxonomy: {reason}")
        for resource, reason in taxonomy.unknown.items():
            context.log.warning(f"{tenant_id} taxonomy: SDP did not serve {resource} ({reason}); recorded as unknown")
        counts = taxonomy.counts()
        context.log.info(f"{tenant_id} taxonomy from {base_url} in {seconds:.1f} s: " + ", ".join(
            f"{_COUNT_KEYS[f]} {n if n is not None else 'unknown'}" for f, n in counts.items()))

        metadata: dict = {
            _COUNT_KEYS[f]: dg.MetadataValue.int(n) if n is not None else dg.MetadataValue.text("unknown")
            for f, n in counts.items()}
        ambiguous = _ambiguous_groups(taxonomy)
        metadata.update({
            "tenant_id": tenant_id, "sdp": dg.MetadataValue.url(base_url),
            "fetched_at": dg.MetadataValue.timestamp(taxonomy.fetched_at),
            "seconds": dg.MetadataValue.float(round(seconds, 2)),
            "unknown": dg.MetadataValue.md("\n".join(f"- `{r}`: {why}" for r, why in taxonomy.unknown.items()))
            if taxonomy.unknown else dg.MetadataValue.text("none"),
            "fallbacks": dg.MetadataValue.md("\n".join(f"- {n}" for n in taxonomy.notes))
            if taxonomy.notes else dg.MetadataValue.text("none"),
            "group_names_on_several_sites": dg.MetadataValue.text(", ".join(ambiguous) or "none"),
            "changes": dg.MetadataValue.md(_changes_table(taxonomy, previous)) if previous is not None
            else dg.MetadataValue.text("first taxonomy stored"),
        })
        return dg.MaterializeResult(metadata=metadata, check_results=[_labels_check(taxonomy, labels)])

    return sdp_taxonomy


def build_taxonomy_schedule(tenant: Tenant) -> dg.ScheduleDefinition:
    """``<tenant>__taxonomy_schedule``: materializes ``<tenant>/sdp_taxonomy`` (and its check) daily at
    ``SCHEDULE_CRON`` UTC; running from the start."""
    return dg.ScheduleDefinition(
        name=f"{tenant.tenant_id}__taxonomy_schedule", cron_schedule=SCHEDULE_CRON, execution_timezone="UTC",
        target=dg.AssetSelection.assets(taxonomy_asset_key(tenant.tenant_id)),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Refreshes {tenant.tenant_id}/sdp_taxonomy from SDP once a day.")


def history_label_counts(conn: psycopg.Connection, tenant_id: str) -> Counter:
    """Tickets in the tenant's ``ticket_history`` per label combination:
    ``Counter({(category, subcategory, item, priority, support_group, site): tickets})``, Nones included."""
    rows = conn.execute(
        "SELECT category, subcategory, item, priority, support_group, site, count(*) FROM ticket_history "
        "WHERE tenant_id = %s GROUP BY 1, 2, 3, 4, 5, 6", (tenant_id,)).fetchall()
    return Counter({tuple(r[:6]): r[6] for r in rows})


def unknown_history_labels(taxonomy: Taxonomy, labels: Counter) -> dict[str, Counter]:
    """Labels of ``history_label_counts`` the taxonomy does not hold, per field, with their ticket counts:
    ``{"category": Counter({"Old name": 12}), "subcategory": Counter({"Email/Outlook": 3}), ...}``.

    A subcategory is checked under its category and an item under its subcategory (shown as paths), each only
    when the level above is known; a group by name (on any site). Support groups are not checked when SDP did
    not tell them.
    """
    out: dict[str, Counter] = {f: Counter() for f in ("category", "subcategory", "item", "priority", "group")}
    for (category, subcategory, item, priority, group, _site), n in labels.items():
        if category is not None:
            if not taxonomy.knows("category", category):
                out["category"][category] += n
            elif subcategory is not None:
                if taxonomy.subcategory(category, subcategory) is None:
                    out["subcategory"][f"{category}/{subcategory}"] += n
                elif item is not None and not taxonomy.knows_path(category, subcategory, item):
                    out["item"][f"{category}/{subcategory}/{item}"] += n
        if priority is not None and not taxonomy.knows("priority", priority):
            out["priority"][priority] += n
        if group is not None and taxonomy.told("group") and not taxonomy.groups_named(group):
            out["group"][group] += n
    return {f: c for f, c in out.items() if c}


def _labels_check(taxonomy: Taxonomy, labels: Counter) -> dg.AssetCheckResult:
    unknown = unknown_history_labels(taxonomy, labels)
    rows = sorted(((f, label, n) for f, c in unknown.items() for label, n in c.items()), key=lambda r: -r[2])
    metadata: dict = {f"unknown_{_COUNT_KEYS[f]}": dg.MetadataValue.int(len(unknown.get(f, ())))
                      for f in ("category", "subcategory", "item", "priority", "group")}
    metadata["tickets_with_unknown_labels"] = dg.MetadataValue.int(sum(n for _, _, n in rows))
    metadata["history_tickets"] = dg.MetadataValue.int(sum(labels.values()))
    if rows:
        metadata["sample"] = dg.MetadataValue.md("| field | label | tickets |\n|---|---|---|\n" + "\n".join(
            f"| {f} | {label} | {n} |" for f, label, n in rows[:SAMPLE]))
    if not taxonomy.told("group"):
        metadata["groups_checked"] = dg.MetadataValue.text("no: SDP did not tell the support groups")
    return dg.AssetCheckResult(check_name=LABELS_CHECK, passed=not rows, severity=dg.AssetCheckSeverity.WARN,
                               metadata=metadata)


def _previous(conn: psycopg.Connection, tenant_id: str, context: dg.AssetExecutionContext) -> Taxonomy | None:
    from enhancement_pipeline.triage.taxonomy_store import StoredTaxonomyError, load_taxonomy

    try:
        return load_taxonomy(conn, tenant_id)
    except StoredTaxonomyError as exc:
        context.log.warning(str(exc))
        return None


def _kept(postgres: PostgresResource, tenant_id: str) -> str:
    """What the failed run leaves in place, in words."""
    try:
        with postgres.connection() as conn:
            row = conn.execute("SELECT fetched_at FROM sdp_taxonomy WHERE tenant_id = %s", (tenant_id,)).fetchone()
    except psycopg.Error:
        return "the stored taxonomy (if any) was left as it was"
    if row is None:
        return "no taxonomy is stored for the tenant yet"
    return f"the taxonomy read at {row[0].astimezone(UTC):%Y-%m-%d %H:%M} UTC stays"


def _ambiguous_groups(taxonomy: Taxonomy) -> list[str]:
    names = Counter(g.name for g in taxonomy.support_groups or [])
    return sorted(n for n, c in names.items() if c > 1)


def _changes_table(taxonomy: Taxonomy, previous: Taxonomy) -> str:
    changes = taxonomy.changes_since(previous)
    if not changes:
        return f"no change since the taxonomy read at {previous.fetched_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    lines = [f"since {previous.fetched_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC:", "",
             "| field | added | removed |", "|---|---|---|"]
    for f, (added, removed) in changes.items():
        lines.append(f"| {f} | {_few(added)} | {_few(removed)} |")
    return "\n".join(lines)


def _few(names: list[str], limit: int = 10) -> str:
    if not names:
        return "-"
    shown = ", ".join(names[:limit]).replace("|", "/")
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")



CALIBRATION_SAMPLE = 1000
"""Most recently resolved labelled tickets the calibration asks as new ones (about 20 ms each)."""
MAX_TRAINING = 100_000
"""Most recently resolved labelled tickets a tenant's classifiers are trained on."""
FOLDS = 2
"""The calibration sample is scored by models trained without it, in this many folds (cross-fitting): a small
tenant's sample may be most of its labelled history, and a model must not score tickets it was trained on."""
CALIBRATION_CRON = "0 3 * * *"

_LABELLED = """
SELECT ticket_id, subject, description, category, subcategory, item, priority, support_group
  FROM ticket_history
 WHERE tenant_id = %s AND resolution IS NOT NULL
   AND coalesce(category, subcategory, item, priority, support_group) IS NOT NULL
 ORDER BY resolved_at DESC NULLS LAST, ticket_id
 LIMIT %s
"""
_TRAINING = """
SELECT ticket_id, subject, description, category, priority, support_group
  FROM ticket_history
 WHERE tenant_id = %s AND resolution IS NOT NULL AND coalesce(category, priority, support_group) IS NOT NULL
 ORDER BY resolved_at DESC NULLS LAST, ticket_id
 LIMIT %s
"""


def calibration_asset_key(tenant_id: str) -> dg.AssetKey:
    return dg.AssetKey([tenant_id, "triage_calibration"])


def build_triage_calibration(tenant: Tenant) -> dg.AssetsDefinition:
    """``<tenant>/triage_calibration``: the tenant's confidence curve per label field (``triage.calibration``)."""
    from enhancement_pipeline.history.assets import history_asset_key

    tenant_id = tenant.tenant_id

    @dg.asset(
        key=calibration_asset_key(tenant_id),
        group_name=tenant_id,
        kinds={"postgres"},
        deps=[history_asset_key(tenant_id)],
        description=f"Tenant {tenant_id}'s triage classifiers and confidence: per top-level field (category, "
                    "priority, group) a TF-IDF + logistic regression model trained on its labelled resolved "
                    "tickets, and per field how often the suggestion (model and similar tickets' vote blended; "
                    f"the vote alone below) is right at each share, fitted on its {CALIBRATION_SAMPLE:,} most "
                    "recently resolved labelled tickets, each asked as a new one (itself left out of the search, "
                    "scored by models trained without it). The per-ticket runs suggest with both.",
    )
    def triage_calibration(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        from enhancement_pipeline.history.embeddings import embedding_text, load_encoder
        from enhancement_pipeline.history.search import find_similar_and_neighbours, has_embeddings
        from enhancement_pipeline.triage.calibration import fit_field, outcomes
        from enhancement_pipeline.triage.calibration_store import save_calibration, save_models
        from enhancement_pipeline.triage.classify import LABEL_FIELDS, NEIGHBOURS, TEMPERATURE

        started = time.perf_counter()
        pairs: dict[str, tuple[list[float], list[bool]]] = {f: ([], []) for f in LABEL_FIELDS}
        with postgres.connection() as conn:
            rows = conn.execute(_LABELLED, (tenant_id, CALIBRATION_SAMPLE)).fetchall()
            training = conn.execute(_TRAINING, (tenant_id, MAX_TRAINING)).fetchall()
            encoder = load_encoder() if has_embeddings(conn) else None
        method = "hybrid" if encoder is not None else "lexical"
        # Trained with no connection held: minutes on a large history must not keep a transaction open.
        trained = time.perf_counter()
        models, scores = train_models(training, rows)
        trained = time.perf_counter() - trained
        with postgres.connection() as conn:
            for i, (ticket_id, subject, description, *labels) in enumerate(rows):
                _, near = find_similar_and_neighbours(conn, tenant_id, embedding_text(subject, description), 1,
                                                      neighbours=NEIGHBOURS, encoder=encoder, method=method,
                                                      exclude_ids=[ticket_id])
                ticket_scores = {f: s[i] for f, s in scores.items()}
                for field, (share, right) in outcomes(near, dict(zip(LABEL_FIELDS, labels, strict=True)),
                                                      ticket_scores).items():
                    pairs[field][0].append(share)
                    pairs[field][1].append(right)
            fits = [fit for f in LABEL_FIELDS if (fit := fit_field(f, *pairs[f])) is not None]
            # A model without its blended curve would be read against the vote's curve: keep only matched pairs.
            kept = [m for m in models.values() if any(fit.field == m.field for fit in fits)]
            with conn.transaction():
                save_calibration(conn, tenant_id, fits)
                save_models(conn, tenant_id, kept)
        fitted = {fit.field: fit for fit in fits}
        context.log.info(f"{len(rows)} labelled tickets asked as new ({method}); curves for "
                         f"{', '.join(fitted) or 'no field'}")
        metadata: dict = {"tickets": len(rows), "method": method, "neighbours": NEIGHBOURS,
                          "temperature": TEMPERATURE, "seconds": round(time.perf_counter() - started, 1),
                          "fields_fitted": ", ".join(fitted) or "none (every field keeps the shipped curve)",
                          "models": ", ".join(f"{m.field} ({m.samples:,} tickets, {len(m.labels)} labels)"
                                              for m in kept) or "none (the vote alone)",
                          "training_tickets": len(training), "training_seconds": round(trained, 1)}
        for field in LABEL_FIELDS:
            fit = fitted.get(field)
            if fit is None:
                metadata[f"{field}_samples"] = len(pairs[field][0])
                continue
            metadata[f"{field}_samples"] = fit.samples
            metadata[f"{field}_vote_accuracy"] = dg.MetadataValue.float(round(fit.accuracy, 4))
            if fit.heldout_ece is not None:
                metadata[f"{field}_heldout_ece"] = dg.MetadataValue.float(fit.heldout_ece)
        return dg.MaterializeResult(metadata=metadata)

    return triage_calibration


def train_models(training: list[tuple], sample: list[tuple]) -> tuple[dict, dict[str, list[dict[str, float]]]]:
    """The tenant's classifiers (``text_model.TextModel`` by field) trained on ``training`` rows (ticket_id,
    subject, description, category, priority, group), and each ``sample`` row's scores per field from a model
    trained without it (``FOLDS`` folds over the sample; rows are ``_LABELLED``'s). A field without enough
    labels has neither."""
    from enhancement_pipeline.history.embeddings import embedding_text
    from enhancement_pipeline.triage.text_model import MODEL_FIELDS, TextModel

    column = {"category": 3, "priority": 4, "group": 5}
    texts = [embedding_text(r[1], r[2]) for r in training]
    sample_texts = [embedding_text(r[1], r[2]) for r in sample]
    fold_of = {r[0]: i % FOLDS for i, r in enumerate(sample)}
    models, scores = {}, {}
    for name in MODEL_FIELDS:
        labelled = [(t, r[column[name]]) for t, r in zip(texts, training, strict=True) if r[column[name]]]
        model = TextModel.fit(name, [t for t, _ in labelled], [y for _, y in labelled])
        if model is None:
            continue
        field_scores: list[dict[str, float]] = [{} for _ in sample]
        for fold in range(FOLDS):
            held = {r[0] for r in sample if fold_of[r[0]] == fold}
            rest = [(t, r[column[name]]) for t, r in zip(texts, training, strict=True)
                    if r[column[name]] and r[0] not in held]
            fold_model = TextModel.fit(name, [t for t, _ in rest], [y for _, y in rest])
            if fold_model is None:  # too few without the fold: no curve could be fitted on the blend
                break
            at = [i for i, r in enumerate(sample) if fold_of[r[0]] == fold]
            for i, s in zip(at, fold_model.scores([sample_texts[i] for i in at]), strict=True):
                field_scores[i] = s
        else:
            models[name], scores[name] = model, field_scores
    return models, scores


def build_calibration_schedule(tenant: Tenant) -> dg.ScheduleDefinition:
    """``<tenant>__triage_calibration_schedule``: refits ``<tenant>/triage_calibration`` daily at
    ``CALIBRATION_CRON`` UTC (after the night's resolved tickets are in the history); running from the start."""
    return dg.ScheduleDefinition(
        name=f"{tenant.tenant_id}__triage_calibration_schedule", cron_schedule=CALIBRATION_CRON,
        execution_timezone="UTC", target=dg.AssetSelection.assets(calibration_asset_key(tenant.tenant_id)),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Refits {tenant.tenant_id}/triage_calibration once a day.")
