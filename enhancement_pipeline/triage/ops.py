"""The per-ticket run's triage steps (Dagster wiring): ``suggest_triage`` (the vote is ``triage.classify``) and
``apply_triage`` (a tenant's apply mode: ``triage.apply``)."""

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from enhancement_pipeline.enhancement.policy import NotePolicyResource
from enhancement_pipeline.history.embeddings import embedding_text, load_encoder
from enhancement_pipeline.history.search import MAX_QUERY_CHARS
from enhancement_pipeline.models import SimilarTicketsContext, Ticket
from enhancement_pipeline.servicedesk.client import SdpError, write_may_have_happened
from enhancement_pipeline.servicedesk.payloads import parse_request, to_ticket
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.triage import apply, classify, duplicates, rules
from enhancement_pipeline.triage.calibration_store import load_calibration, load_models
from enhancement_pipeline.triage.recent_store import compare_and_remember, has_recent_tickets
from enhancement_pipeline.triage.suggestions import FieldSuggestion, TriageSuggestions
from enhancement_pipeline.triage.taxonomy import Taxonomy
from enhancement_pipeline.triage.taxonomy_store import load_taxonomy


def allowed_by(taxonomy: Taxonomy | None):
    """The ``classify.suggest`` test of a label against the tenant's taxonomy: a name SDP has, under the chosen
    parent for a subcategory or item; without a stored taxonomy (never materialized) every label of the
    history is allowed, and the run's metadata says so. A field SDP did not tell (groups on some cloud
    tenants) allows nothing: a label SDP may not know is never suggested."""
    if taxonomy is None:
        return None

    def allowed(field: str, label: str, parents: Mapping[str, str]) -> bool:
        if field == "subcategory":
            return taxonomy.knows_path(parents.get("category"), label)
        if field == "item":
            return taxonomy.knows_path(parents.get("category"), parents.get("subcategory"), label)
        return taxonomy.knows(field, label)

    return allowed


@dg.op(description="Suggest category (to subcategory and item), priority and support group from the labels of the "
                   "most similar resolved tickets (a similarity-weighted vote, confidence calibrated on held-out "
                   "tickets), only with names the tenant's SDP taxonomy has, then the tenant's routing rules (they "
                   "win) and the priority's escalation path; below the tenant's threshold the note says there is no "
                   "confident suggestion. Also: possible duplicates and a possible major incident among the "
                   "tenant's open tickets of the last 72 h. Never fails the run.")
def suggest_triage(context: dg.OpExecutionContext, ticket: Ticket, similar: SimilarTicketsContext,
                   postgres: PostgresResource, notes: NotePolicyResource) -> TriageSuggestions:
    started = time.perf_counter()
    policy = notes.policy(ticket.tenant_id)
    threshold = policy.triage_min_confidence
    taxonomy, source, error = None, "none (sdp_taxonomy not materialized: every history label allowed)", None
    curves: dict = {}
    models: dict = {}
    model_errors: dict[str, str] = {}
    model_scores: dict[str, dict[str, float]] = {}
    try:
        with postgres.connection() as conn:
            # One snapshot: curves and models are replaced together, and must be read from the same fitting.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            taxonomy = load_taxonomy(conn, ticket.tenant_id)
            curves = load_calibration(conn, ticket.tenant_id)
            models, model_errors = load_models(conn, ticket.tenant_id)
        text = embedding_text(ticket.subject, ticket.description)
        for name, model in models.items():
            if not text:
                model_errors[name] = "no text to classify"
                continue
            try:
                model_scores[name] = model.scores([text])[0]
            except Exception as exc:  # a model that loads but cannot score must cost its field only
                model_errors[name] = f"cannot score: {type(exc).__name__}: {exc}"[:300]
        # A curve fitted on blended shares is wrong for the vote alone (and its children's curves were fitted under
        # blend-chosen parents): without the model, the shipped curves.
        unmatched = {f for f in classify.LABEL_FIELDS if f in model_errors
                     or any(p in model_errors for p in classify.ancestors(f))}
        curves = {f: c for f, c in curves.items() if f not in unmatched}
        if taxonomy is not None:
            source = f"sdp_taxonomy of {taxonomy.fetched_at:%Y-%m-%d %H:%M} UTC"
    except Exception as exc:  # triage is advice: a lost taxonomy read must not cost the note
        error = f"taxonomy unavailable: {type(exc).__name__}: {exc}"[:300]
        context.log.warning(f"{error}; suggesting nothing")
    if error is None:
        suggestions = classify.suggest(similar.neighbours, allowed=allowed_by(taxonomy), min_confidence=threshold,
                                       calibration={f: curve for f, (curve, _) in curves.items()},
                                       model_scores=model_scores)
        suggestions, routing = route(context, ticket, suggestions, taxonomy, policy.triage_rules_file)
        fields = [FieldSuggestion.of(s) for s in suggestions.values()]
    else:
        fields, routing = [], Routing()
    related, related_error = find_related(ticket, postgres, policy.triage_storm_min_tickets)
    if related_error:
        context.log.warning(f"duplicates not looked for: {related_error}")
    result = TriageSuggestions(fields=fields, min_confidence=threshold, taxonomy=source, error=error,
                               mode=policy.triage_mode,
                               related=related, related_error=related_error, escalation=routing.escalation,
                               escalation_priority=routing.priority)
    metadata: dict = {"taxonomy": source, "min_confidence": threshold, "neighbours": len(similar.neighbours),
                      "calibration": ", ".join(f"{f} (tenant's, {n} tickets)" for f, (_, n) in curves.items())
                                     + ("; " if curves else "") + "shipped curve for the other fields",
                      "classifiers": ", ".join(f"{f} ({models[f].samples:,} tickets)" for f in model_scores) or "none",
                      "classifier_errors": "; ".join(f"{f}: {e}" for f, e in model_errors.items()) or "none",
                      "error": error or "", "ms": round((time.perf_counter() - started) * 1000, 1)}
    for f in fields:
        metadata[f.field] = f"{f.label} ({f.confidence:.0%})" if f.label else f"none: {f.reason}"
    metadata.update({
        "open_tickets_compared": related.compared,
        "possible_duplicates": ", ".join(f"{d.ticket_id} ({d.cosine})" for d in related.duplicates) or "none",
        "possible_major_incident": (f"{len(related.storm) + 1} tickets: {', '.join(related.storm)}"
                                    if related.storm else "no"),
        "duplicates_error": related_error or ""})
    metadata.update(routing.metadata)
    context.add_output_metadata(metadata)
    return result


def find_related(ticket: Ticket, postgres: PostgresResource, storm_min_tickets: int
                 ) -> tuple[duplicates.Findings, str | None]:
    """Possible duplicates and storm among the tenant's open tickets (``triage.duplicates``), and the ticket
    remembered for the next ones; ``(Findings(), reason)`` when they could not be looked for. Never raises."""
    try:
        with postgres.connection() as conn:
            if not has_recent_tickets(conn):
                return duplicates.Findings(), "recent_tickets is missing (pgvector not installed: sql/0009)"
            encoder = load_encoder()
            text = ticket.text.strip()[:MAX_QUERY_CHARS]
            # The same text the similar-ticket search encoded: the encoder's cache answers.
            vector = encoder.encode([text])[0] if encoder is not None and text else None
            recent = compare_and_remember(conn, ticket, vector, getattr(encoder, "model_name", None),
                                          datetime.now(UTC))
    except Exception as exc:  # advice only: the note goes out without it
        return duplicates.Findings(), f"{type(exc).__name__}: {exc}"[:300]
    return duplicates.compare(created_at=ticket.created_at or datetime.now(UTC), requester_id=ticket.requester_id,
                              requester=ticket.requester, site=ticket.site, recent=recent,
                              storm_min_tickets=storm_min_tickets), None


@dataclass(frozen=True)
class Routing:
    """What the tenant's rules added: the escalation steps of ``priority`` and the run's metadata about them."""

    escalation: list[str] = field(default_factory=list)
    priority: str | None = None
    metadata: dict[str, str] = field(default_factory=lambda: {"rules": "none"})


def route(context: dg.OpExecutionContext, ticket: Ticket, suggestions: dict[str, classify.Suggestion],
          taxonomy: Taxonomy | None, rules_file: str | None) -> tuple[dict[str, classify.Suggestion], Routing]:
    """``suggestions`` with the tenant's routing rules applied (``triage.rules``; read once per version of the
    file) and the escalation path of the suggested priority, else of the ticket's own. A rules file that
    cannot be read or does not validate leaves the learned suggestions as they are: a warning, and the reason
    in the run's metadata."""
    if not rules_file:
        return suggestions, Routing()
    try:
        tenant_rules = rules.load_rules_cached(Path(rules_file))
    except rules.RulesFileError as exc:
        reason = str(exc)[:1000]
        context.log.warning(f"routing rules not applied: {reason}")
        return suggestions, Routing(metadata={"rules": rules_file, "rules_error": reason})
    routed = rules.apply_rules(tenant_rules, ticket, suggestions, taxonomy)
    for message in routed.skipped:
        context.log.warning(f"routing rule skipped: {message}")
    priority = routed.suggestions["priority"].label if "priority" in routed.suggestions else None
    priority = priority or ticket.priority
    escalation = rules.escalation_for(tenant_rules, priority)
    return routed.suggestions, Routing(escalation=escalation, priority=priority if escalation else None, metadata={
        "rules": rules_file, "rules_error": "",
        "rules_applied": "; ".join(f"{f}: {why}" for f, why in routed.applied.items()) or "none",
        "rules_skipped": "; ".join(routed.skipped) or "none",
        "escalation": f"{priority}: {' → '.join(escalation)}" if escalation else "none"})


MAX_PUTS = len(apply.APPLY_FIELDS) + 1
"""At most one PUT per field SDP may refuse one at a time, and the first."""


@dg.op(description="Apply mode (the tenant's triage.mode: apply): write the confident suggestions into the request's "
                   "empty category, subcategory, item, priority and group with one PUT /requests/{id}, never over a "
                   "value already set; a field SDP refuses is dropped with SDP's reason and the rest sent again. Every "
                   "write and every refusal is in the run's metadata. In suggest mode it writes nothing. Never fails "
                   "the run: the note goes out either way.")
def apply_triage(context: dg.OpExecutionContext, ticket: Ticket, triage: TriageSuggestions,
                 sdp: ServiceDeskResource, postgres: PostgresResource, notes: NotePolicyResource) -> TriageSuggestions:
    policy = notes.policy(ticket.tenant_id)
    if policy.triage_mode != "apply":
        context.add_output_metadata({"mode": policy.triage_mode, "writes": "none (suggest mode)"})
        return triage
    started = time.perf_counter()
    outcome = write_suggestions(ticket, triage, sdp, postgres, policy.triage_apply_min_confidence,
                                dry_run=policy.shadow_mode)
    if policy.shadow_mode:
        context.add_output_metadata({"mode": "apply, shadow", "writes": "none (shadow mode)",
                                     "would_write": apply.describe(outcome.planned),
                                     "not_written": "; ".join(f"{f}: {why}" for f, why in outcome.skipped.items())
                                                    or "none", "error": outcome.error or ""})
        return triage
    for message in outcome.warnings:
        context.log.warning(message)
    if outcome.done:
        context.log.info(f"set in SDP on ticket {ticket.ticket_id}: {apply.describe(outcome.done)}")
    context.add_output_metadata({
        "mode": "apply", "apply_min_confidence": policy.triage_apply_min_confidence,
        "writes": apply.describe(outcome.done), "fields_set": len(outcome.done),
        "not_written": "; ".join(f"{f}: {why}" for f, why in outcome.skipped.items()) or "none",
        "puts": outcome.puts, "error": outcome.error or "",
        "ticket_url": dg.MetadataValue.url(sdp.request_url(ticket.tenant_id, ticket.ticket_id)),
        "ms": round((time.perf_counter() - started) * 1000, 1)})
    written = {w.field for w in outcome.done}
    return triage.model_copy(update={"fields": [f.model_copy(update={"applied": f.field in written})
                                                for f in triage.fields]})


@dataclass
class WriteOutcome:
    """What ``write_suggestions`` did: the writes SDP's answer shows (``done``), every other suggested field with
    why it was not written (``skipped``), the PUTs sent, and ``error`` when the writes stopped on a failure that
    names no field (SDP unreachable, the request deleted, the taxonomy unreadable)."""

    done: list[apply.FieldWrite] = field(default_factory=list)
    planned: list[apply.FieldWrite] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    puts: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def write_suggestions(ticket: Ticket, triage: TriageSuggestions, sdp: ServiceDeskResource,
                      postgres: PostgresResource, min_confidence: float, *, dry_run: bool = False) -> WriteOutcome:
    """Read the request as SDP has it now, plan (``apply.plan_writes``), PUT, and on a refusal that names one of
    the planned fields (4001, 4002, 4012, ...) drop that field (and those under it) and PUT the rest again.
    Idempotent: a retried run reads the fields it set as set and writes nothing more. ``dry_run`` (the tenant's
    shadow mode): plan only (``planned``), send nothing. Never raises."""
    out = WriteOutcome()
    try:
        with postgres.connection() as conn:
            taxonomy = load_taxonomy(conn, ticket.tenant_id)
        with sdp.client(ticket.tenant_id) as client:
            current = to_ticket(ticket.tenant_id, parse_request(client.get_request(ticket.ticket_id)))
            plan = apply.plan_writes(current, triage, taxonomy, min_confidence)
            out.planned = list(plan.writes)
            if dry_run:
                out.skipped.update(plan.skipped)
                return out
            while plan.writes and out.puts < MAX_PUTS:
                out.puts += 1
                try:
                    answer = client.update_request(ticket.ticket_id, plan.body())
                except SdpError as exc:
                    refused = apply.refused_field(plan, exc.messages)
                    if write_may_have_happened(exc):
                        reason = f"outcome unknown (SDP may have stored it): {exc}"[:300]
                    else:
                        reason = f"SDP refused it: {exc}"[:300]
                    if refused is None or write_may_have_happened(exc):
                        out.skipped.update({w.field: reason for w in plan.writes})
                        out.error = reason
                        out.warnings.append(f"triage not written into SDP: {reason}")
                        break
                    out.warnings.append(f"SDP refused {refused} ({reason}); writing the other fields")
                    plan = plan.without(refused, reason)
                    continue
                done, missing = apply.verify(plan, to_ticket(ticket.tenant_id, parse_request(answer)))
                out.done, plan = done, apply.WritePlan(skipped={**plan.skipped, **missing})
            out.skipped.update(plan.skipped)
            out.skipped.update({w.field: f"not sent: SDP refused {MAX_PUTS} PUTs" for w in plan.writes
                                if out.error is None})
    except Exception as exc:  # apply is a convenience: whatever goes wrong, the note must go out
        out.error = f"{type(exc).__name__}: {exc}"[:300]
        out.warnings.append(f"triage not written into SDP: {out.error}")
    return out
