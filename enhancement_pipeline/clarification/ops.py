"""``ask_requester``: the per-ticket run's step that posts a vague ticket's questions to its requester (Dagster
wiring; the message and the at-most-once ledger are ``clarification.asking``)."""

import time
from pathlib import Path

import dagster as dg

from enhancement_pipeline.clarification.asking import ask_once
from enhancement_pipeline.enhancement.policy import NotePolicyResource
from enhancement_pipeline.models import Note, Ticket
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.triage import rules


def why_not_ask(ticket: Ticket, note: Note, ask: bool, rules_file: str | None) -> str | None:
    """Why the requester is not asked (None: ask): the tenant does not ask, the ticket is not vague, shadow mode,
    a technician already works it, or the requester is a VIP in the tenant's rules file (one that cannot be read
    counts as naming every requester a VIP: when in doubt, do not write to the requester)."""
    if not ask:
        return "the tenant does not ask requesters (notes.ask_requester)"
    if not note.questions:
        return "not vague"
    if note.shadow:
        return "shadow mode"
    if ticket.technician:
        return f"a technician ({ticket.technician}) already works it"
    if rules_file:
        try:
            if rules.load_rules_cached(Path(rules_file)).is_vip(ticket):
                return "the requester is a VIP (the tenant's rules file)"
        except rules.RulesFileError as exc:
            return f"the rules file cannot be read, so VIPs are unknown: {str(exc)[:200]}"
    return None


@dg.op(description="A tenant with notes.ask_requester: once the technicians' note is posted, post a vague ticket's "
                   "questions to its requester as a requester-visible note, at most once per ticket, never for a VIP "
                   "requester or a ticket a technician already works. Never fails the run.",
       ins={"posted": dg.In(dg.Nothing, description="post_note is done: the requester is asked only after the "
                                                    "technicians have the note.")})
def ask_requester(context: dg.OpExecutionContext, ticket: Ticket, note: Note, sdp: ServiceDeskResource,
                  postgres: PostgresResource, notes: NotePolicyResource) -> None:
    started = time.perf_counter()
    policy = notes.policy(ticket.tenant_id)
    reason = why_not_ask(ticket, note, policy.ask_requester, policy.triage_rules_file)
    if reason is not None:
        context.add_output_metadata({"asked": "no", "reason": reason})
        return
    try:
        with sdp.client(ticket.tenant_id) as client:
            outcome = ask_once(postgres.connection, client, ticket.tenant_id, ticket.ticket_id, ticket.subject,
                               note.questions, context.run_id)
    except Exception as exc:  # the note is what matters; asking is a convenience
        context.log.warning(f"questions not sent to the requester: {type(exc).__name__}: {exc}")
        context.add_output_metadata({"asked": "no", "reason": f"{type(exc).__name__}: {exc}"[:300]})
        return
    if outcome.status in ("refused", "unknown"):
        context.log.warning(f"questions to the requester: {outcome.status}: {outcome.detail}")
    context.add_output_metadata({
        "asked": {"asked": "yes", "already": "before"}.get(outcome.status, "no"), "status": outcome.status,
        "note_id": outcome.note_id or "", "questions": len(note.questions), "reason": outcome.detail,
        "ms": round((time.perf_counter() - started) * 1000, 1)})
