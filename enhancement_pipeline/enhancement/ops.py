"""The ops of ``enhance_ticket``: thin wiring around the domain functions and the resources.

The three context lookups run at once inside ``gather_context``; each degrades: whatever goes wrong inside it
becomes an empty section with the error recorded (in the section, the logs and its output's metadata), never a
failed run.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import dagster as dg

from enhancement_pipeline.delivery.failures import SDP_RETRY_POLICY, failing_for_good
from enhancement_pipeline.delivery.posting import post_note_once
from enhancement_pipeline.enhancement.llm import LlmResource
from enhancement_pipeline.enhancement.policy import NotePolicyResource
from enhancement_pipeline.enhancement.synthesis import synthesize
from enhancement_pipeline.history.embeddings import load_encoder
from enhancement_pipeline.history.search import find_similar_and_neighbours, has_embeddings
from enhancement_pipeline.inventory.ip_addresses import extract_ips
from enhancement_pipeline.inventory.lookup import lookup_systems
from enhancement_pipeline.knowledge.client import KnowledgeBaseResource
from enhancement_pipeline.knowledge.relevance import KB_CANDIDATES, KB_FLOOR, relevances, shown_articles
from enhancement_pipeline.knowledge.vectors import SharedArticleVectors
from enhancement_pipeline.models import (
    ContextSection,
    InventoryContext,
    KnowledgeContext,
    Note,
    SimilarTicketsContext,
    Ticket,
)
from enhancement_pipeline.servicedesk.payloads import parse_request, resolution_text, to_ticket
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.triage.classify import NEIGHBOURS
from enhancement_pipeline.triage.suggestions import TriageSuggestions

S = TypeVar("S", bound=ContextSection)


class TicketConfig(dg.Config):
    """Which ticket this run enhances (set by the tenant's ``new_ticket_sensor``, or by hand in the Launchpad)."""

    tenant_id: str
    ticket_id: str


@dg.op(description="Fetch the full request from ServiceDesk Plus (GET /api/v3/requests/{id}); transient SDP "
                   "failures are retried with backoff, a deleted ticket or a refused key fails at once.",
       retry_policy=SDP_RETRY_POLICY)
def load_ticket(context: dg.OpExecutionContext, config: TicketConfig, sdp: ServiceDeskResource,
                notes: NotePolicyResource) -> Ticket:
    started = time.perf_counter()
    tags = {"tenant": config.tenant_id, "ticket_id": config.ticket_id}
    if any(context.run.tags.get(k) != v for k, v in tags.items()):
        # A run launched by hand (the Launchpad, a script) carries what the sensors tag theirs with, so the
        # runs page, the sensors' dedupe and <tenant>/pipeline_metrics find it too.
        context.instance.add_run_tags(context.run_id, tags)
    with failing_for_good(context, config.tenant_id, config.ticket_id), sdp.client(config.tenant_id) as client:
        # A record we cannot read (PayloadError, naming its fields) fails the run with that reason, like a
        # request deleted since it was listed (SdpNotFound); payloads.py is lenient where the meaning is clear.
        request = parse_request(client.get_request(config.ticket_id))
        resolution = resolution_text(client.get_resolution(config.ticket_id)) if request.resolved_time else None
        ticket = to_ticket(config.tenant_id, request, resolution)
    context.add_output_metadata({
        "tenant_id": ticket.tenant_id, "ticket_id": ticket.ticket_id, "display_id": ticket.display_id or "",
        # Redacted: the event log is read by more people than SDP, and the subject is the requester's words.
        "subject": notes.policy(ticket.tenant_id).privacy.redactor(ticket).redact(ticket.subject),
        "status": ticket.status or "",
        # The description as SDP sent it (HTML), and the text the lookups and the note work from: at most
        # MAX_DESCRIPTION_CHARS, so a pasted 5 MB log is cut, and says so here.
        "description_chars": ticket.description_chars if ticket.description_chars is not None else "",
        "description_text_chars": len(ticket.description),
        "description_cut": (f"yes: the lookups and the note use its first {len(ticket.description):,} characters of "
                            f"text (MAX_DESCRIPTION_CHARS)" if ticket.description_cut else "no"),
        "ms": round((time.perf_counter() - started) * 1000, 1),
    })
    return ticket


@dataclass
class Lookup(Generic[S]):
    """One context lookup's result: its section, the metadata its output shows in the UI, and a warning when it
    degraded."""

    section: S
    metadata: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None


def _degrade(name: str, empty: Callable[..., S], work: Callable[[dict[str, Any]], S], op_started: float) -> Lookup[S]:
    """Run ``work(metadata)``; on any exception the section is ``empty(error=...)``. Adds count, error, ms and
    started_after_ms (since the op started: the lookups run at once, this shows it) to the metadata."""
    started = time.perf_counter()
    metadata: dict[str, Any] = {}
    warning = None
    try:
        section = work(metadata)
    except Exception as exc:  # a context lookup must never fail the run
        warning = f"{name} degraded to an empty section: {type(exc).__name__}: {exc}"
        section = empty(error=f"{type(exc).__name__}: {exc}"[:300])
    section.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    metadata.update({"count": len(section.items), "error": section.error or "", "ms": section.elapsed_ms,
                     "started_after_ms": round((started - op_started) * 1000, 1)})
    return Lookup(section, metadata, warning)


def find_similar_tickets(ticket: Ticket, postgres: PostgresResource, metadata: dict[str, Any]
                         ) -> SimilarTicketsContext:
    """Resolved tickets like ``ticket`` from ``ticket_history`` (hybrid where the history is embedded)."""
    with postgres.connection() as conn:
        # The model loads only where the tenant's history can have embeddings (once per process).
        encoder = load_encoder() if has_embeddings(conn) else None
        method = "hybrid" if encoder is not None else "lexical"
        items, neighbours = find_similar_and_neighbours(conn, ticket.tenant_id, ticket.text, encoder=encoder,
                                                        method=method, neighbours=NEIGHBOURS)
    metadata.update({"method": method, "ticket_ids": ", ".join(t.ticket_id for t in items),
                     "scores": ", ".join(f"{t.score:.3f}" for t in items), "neighbours": len(neighbours)})
    return SimilarTicketsContext(items=items, neighbours=neighbours)


def find_knowledge_articles(ticket: Ticket, kb: KnowledgeBaseResource, notes: NotePolicyResource,
                            metadata: dict[str, Any]) -> KnowledgeContext:
    """KB articles for ``ticket``: the KB's first ``KB_CANDIDATES``, judged by sentence embeddings."""
    # The KB's search API sees the ticket's words, not its requester's data: a GET query lands in URLs and
    # access logs.
    query = notes.policy(ticket.tenant_id).privacy.redactor(ticket).scrub(ticket.text)
    answers, cached = kb.search(ticket.tenant_id, query, limit=KB_CANDIDATES)
    encoder = load_encoder()
    # (The ticket's own text is judged, in this process: the floor needs no second call to anyone.)
    shared = SharedArticleVectors(encoder, kb.cache) if encoder is not None else None
    scores = relevances(encoder, ticket.text, answers, shared) if encoder is not None else None
    items = shown_articles(answers, scores)
    if shared is not None:
        metadata["article_vectors_reused"] = f"{shared.hits} of {shared.hits + shared.misses}"
    metadata.update({
        "article_ids": ", ".join(a.article_id for a in items), "cache_hit": cached,
        "kb_answers": len(answers), "below_floor": len(answers) - len(items) if scores is not None else 0,
        "relevance_floor": KB_FLOOR if scores is not None else "off (no sentence encoder)",
        "relevances": ", ".join(f"{s:.3f}" for s in scores or ())})
    return KnowledgeContext(items=items)


def find_systems(ticket: Ticket, ips: list[str], postgres: PostgresResource, metadata: dict[str, Any]
                 ) -> InventoryContext:
    """What ``system_inventory`` knows about ``ips`` (the ticket's addresses)."""
    if not ips:
        return InventoryContext(ips_found=[])
    with postgres.connection() as conn:
        items = lookup_systems(conn, ticket.tenant_id, ips)
    known = {s.ip_address for s in items}
    unknown = [ip for ip in ips if ip not in known]
    metadata.update({"ips": ", ".join(ips), "unknown_ips": ", ".join(unknown)})
    return InventoryContext(items=items, ips_found=ips, unknown_ips=unknown)


LOOKUPS = ("similar_tickets", "knowledge_articles", "inventory_lookup")
"""The outputs of ``gather_context``, one per lookup, in the order the note uses them."""


@dg.op(out={"similar_tickets": dg.Out(SimilarTicketsContext,
                                      description="Resolved tickets like this one, from ticket_history: weighted "
                                                  "term overlap fused with sentence embeddings (all-MiniLM-L6-v2 "
                                                  "on ONNX Runtime) where the history is embedded."),
            "knowledge_articles": dg.Out(KnowledgeContext,
                                         description="KB articles (search API, cached in Redis for an hour; the "
                                                     "query is the ticket's text without personal data or "
                                                     "secrets): the KB's first ten, judged by sentence "
                                                     "embeddings, at most three above the relevance floor."),
            "inventory_lookup": dg.Out(InventoryContext,
                                       description="What system_inventory knows about every IP address in the "
                                                   "ticket.")},
       description="The ticket's context, three lookups at once (threads: each mostly waits on Postgres or the "
                   "KB): similar resolved tickets, KB articles, and the inventory's systems for its IP addresses. "
                   "Each output's metadata shows what its lookup found, how long it took and when it started; a "
                   "lookup that fails degrades to an empty section with the error, never a failed run.")
def gather_context(context: dg.OpExecutionContext, ticket: Ticket, postgres: PostgresResource,
                   kb: KnowledgeBaseResource, notes: NotePolicyResource):
    # One op, not three: Dagster's in-process executor runs steps one after another, and a process per step
    # (its multiprocess executor) costs more than the lookups themselves; Dagster has no thread executor
    # (dagster-io/dagster#4041). Threads here make the wall time the slowest lookup's, not the sum.
    op_started = time.perf_counter()
    ips = extract_ips(ticket.text)
    works = {
        "similar_tickets": (SimilarTicketsContext, lambda m: find_similar_tickets(ticket, postgres, m)),
        "knowledge_articles": (KnowledgeContext, lambda m: find_knowledge_articles(ticket, kb, notes, m)),
        "inventory_lookup": (lambda error: InventoryContext(ips_found=ips, error=error),
                             lambda m: find_systems(ticket, ips, postgres, m)),
    }
    with ThreadPoolExecutor(max_workers=len(works), thread_name_prefix="lookup") as pool:
        futures = {name: pool.submit(_degrade, name, empty, work, op_started) for name, (empty, work) in works.items()}
        done = {name: future.result() for name, future in futures.items()}
    wall_ms = (time.perf_counter() - op_started) * 1000
    context.log.info(f"lookups: wall {wall_ms:.0f} ms, " + ", ".join(f"{name} {done[name].section.elapsed_ms:.0f} ms"
                                                                    for name in LOOKUPS))
    for name in LOOKUPS:
        if done[name].warning:
            context.log.warning(done[name].warning)
        yield dg.Output(done[name].section, output_name=name, metadata=done[name].metadata)


@dg.op(description="Write the note: personal data and secrets redacted, the LLM (OpenAI-compatible) when configured "
                   "and within the tenant's daily token budget, else deterministically; every citation checked "
                   "against the context.")
def synthesize_note(context: dg.OpExecutionContext, ticket: Ticket, similar: SimilarTicketsContext,
                    knowledge: KnowledgeContext, inventory: InventoryContext, triage: TriageSuggestions,
                    llm: LlmResource,
                    notes: NotePolicyResource, sdp: ServiceDeskResource) -> Note:
    started = time.perf_counter()
    policy = notes.policy(ticket.tenant_id)
    budget = notes.budget_state(ticket.tenant_id)
    complete, reason = (llm.answer, "") if llm.configured else (None, "no LLM key configured")
    if complete is not None and budget.spent:
        complete, reason = None, f"daily token budget spent ({budget.used:,} of {budget.budget:,} tokens)"
    note = synthesize(
        ticket, similar, knowledge, inventory, complete=complete, no_model_reason=reason, triage=triage,
        request_url=lambda ticket_id: sdp.request_url(ticket.tenant_id, ticket_id),
        privacy=policy.privacy,
        shadow=policy.shadow_mode, cost_usd=llm.cost_usd,
        reply_tone=policy.reply_draft if policy.reply_draft != "off" else None)
    tokens = note.prompt_tokens + note.completion_tokens
    used_today = notes.record_tokens(ticket.tenant_id, tokens) if tokens else budget.used
    # Only the redacted note goes into the event log: the UI and its database are not SDP.
    context.add_output_metadata({
        "mode": note.mode, "model": note.model or "", "prompt_version": note.prompt_version,
        "fallback_reason": note.fallback_reason or "", "words": note.word_count, "shadow": note.shadow,
        "prompt_tokens": note.prompt_tokens, "completion_tokens": note.completion_tokens,
        "llm_attempts": note.llm_attempts, "answer_path": note.answer_path or "none",
        "llm_steps": "; ".join(note.llm_steps) or "none", "estimated_cost_usd": round(note.cost_usd, 6),
        "tokens_used_today": used_today if used_today is not None else "unknown (Redis unavailable)",
        "daily_token_budget": budget.budget if budget.budget is not None else "none",
        "ungrounded_removed": note.removed_total, "removed_by_reason": _counts(note.removed),
        "vague": note.vague_reason or "no", "questions": len(note.questions),
        "reply_draft": ("yes" if note.reply_draft else "none") if policy.reply_draft != "off" else "off",
        "reshaped": _counts(note.reshaped), "redacted_values": _counts(note.redactions),
        "ms": round((time.perf_counter() - started) * 1000, 1),
        "note": dg.MetadataValue.md(note.redacted_markdown),
    })
    return note


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


@dg.op(description="Post the note on the ticket as a private note, at most once per ticket (nothing in shadow mode); "
                   "transient SDP failures, and a POST whose outcome SDP left unknown, are retried with backoff.",
       retry_policy=SDP_RETRY_POLICY, out=dg.Out(dg.Nothing, description="Done: the steps that must follow the "
                                                                          "note (asking the requester) wait for it."))
def post_note(context: dg.OpExecutionContext, note: Note, sdp: ServiceDeskResource,
              postgres: PostgresResource) -> None:
    if note.shadow:
        context.log.info(f"shadow mode: note for ticket {note.ticket_id} kept in the run's metadata, not posted")
        context.add_output_metadata({"status": "shadow", "note_id": ""})
        return
    started = time.perf_counter()
    with failing_for_good(context, note.tenant_id, note.ticket_id), sdp.client(note.tenant_id) as client:
        result = post_note_once(postgres.connection, client, note, context.run_id)
    context.log.info(f"note {result.status} on ticket {note.ticket_id}: note id {result.note_id}")
    context.add_output_metadata({"status": result.status, "note_id": result.note_id,
                                 "attempt": context.retry_number + 1,
                                 "ticket_url": dg.MetadataValue.url(sdp.request_url(note.tenant_id, note.ticket_id)),
                                 "ms": round((time.perf_counter() - started) * 1000, 1)})
