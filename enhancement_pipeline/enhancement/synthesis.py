"""Compose the note: the LLM when one is configured and answers, else the deterministic note."""

from __future__ import annotations

import logging
from collections.abc import Callable

from enhancement_pipeline.enhancement.llm import Completion
from enhancement_pipeline.enhancement.prompts import PROMPT_VERSION, build_messages
from enhancement_pipeline.enhancement.render import (
    cap_words,
    deterministic_note,
    footer,
    markdown_to_safe_html,
    word_count,
)
from enhancement_pipeline.models import InventoryContext, KnowledgeContext, Note, SimilarTicketsContext, Ticket

log = logging.getLogger(__name__)


def synthesize(ticket: Ticket, similar: SimilarTicketsContext, knowledge: KnowledgeContext,
               inventory: InventoryContext, complete: Callable[[list[dict[str, str]]], Completion] | None,
               ) -> Note:
    """The note for ``ticket``.

    ``complete`` is the LLM call (None when no key is configured). Any exception from it, or an empty
    answer, falls back to the deterministic note, with the reason recorded in ``Note.fallback_reason``.
    """
    reason: str | None = "no LLM key configured" if complete is None else None
    completion: Completion | None = None
    if complete is not None:
        try:
            completion = complete(build_messages(ticket, similar, knowledge, inventory))
            if not completion.text.strip():
                reason, completion = "the model returned an empty answer", None
        except Exception as exc:  # any failure of the model must cost the note its prose, not the note
            log.warning("LLM call failed, composing deterministically: %s", exc)
            reason = f"LLM call failed: {type(exc).__name__}"
    if completion is not None:
        body = cap_words(completion.text)
        markdown = body + footer("llm", PROMPT_VERSION, completion.model)
        mode, model = "llm", completion.model
    else:
        body = deterministic_note(ticket, similar, knowledge, inventory, reason or "no model")
        markdown = body + footer("deterministic", PROMPT_VERSION, None)
        mode, model = "deterministic", None
    return Note(
        tenant_id=ticket.tenant_id, ticket_id=ticket.ticket_id, markdown=markdown,
        html=markdown_to_safe_html(markdown), mode=mode, model=model, prompt_version=PROMPT_VERSION,
        fallback_reason=reason if mode == "deterministic" else None,
        prompt_tokens=completion.prompt_tokens if completion else 0,
        completion_tokens=completion.completion_tokens if completion else 0,
        word_count=word_count(body),
    )
