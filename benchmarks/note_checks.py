"""What making a note trustworthy costs: redaction before the model, and the output checks after it.

What it measures: CPU milliseconds per note of ``enhancement.synthesis.synthesize`` (redact every text of the
ticket and its context, build the prompt, check the answer against the context, arrange the sections, cap
the words, link the citations, restore the placeholders, render and sanitize HTML), and of the redaction
of the same inputs on its own, for the share it takes. The model is the LLM simulator's ``compose_answer``
(its structured answer, called in-process, validated by the ticket's answer model as the real call's would
be): the LLM call itself is not measured, only our work around it.

On what: real tickets, the Microsoft support articles shipped in the package (``demo_split()`` history);
each note's ticket gets the 5 next tickets as its similar tickets (their real resolutions) and 3 articles.

How to run (a few seconds)::

    .venv/bin/python benchmarks/note_checks.py
    .venv/bin/python benchmarks/note_checks.py --notes 1000

The last line is ``note_checks_ms_p50=<n> note_checks_ms_p95=<n>`` (whole ``synthesize`` per note).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from enhancement_pipeline.enhancement.llm import Completion, NoteRequest
from enhancement_pipeline.enhancement.redaction import Redactor
from enhancement_pipeline.enhancement.synthesis import synthesize
from enhancement_pipeline.local.datasets import demo_split, kb_documents
from enhancement_pipeline.local.llm_simulator import compose_answer
from enhancement_pipeline.models import (
    InventoryContext,
    KbArticle,
    KnowledgeContext,
    SimilarTicket,
    SimilarTicketsContext,
    Ticket,
)
from enhancement_pipeline.servicedesk.payloads import html_to_text


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(pct / 100 * len(ordered))) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=300)
    args = parser.parse_args()

    history, _ = demo_split()
    docs = kb_documents()
    tickets = [Ticket(tenant_id="bench", ticket_id=str(1000 + i), subject=t.subject,
                      description=html_to_text(t.description_html), requester=t.requester, technician=t.technician,
                      resolution=html_to_text(t.resolution_html or ""))
               for i, t in enumerate(history)]

    def complete(request: NoteRequest) -> Completion:
        content = request.messages[-1]["content"]
        context = json.loads(content.split("<context>", 1)[1].split("</context>", 1)[0])
        text = json.dumps(compose_answer(context))
        return Completion(text=text, model="sim", prompt_tokens=0, completion_tokens=0,
                          answer=request.answer_type.model_validate_json(text), rung="json_schema")

    whole, redaction, words = [], [], []
    for i in range(args.notes):
        ticket = tickets[i % len(tickets)]
        neighbours = [tickets[(i + k) % len(tickets)] for k in range(1, 6)]
        similar = SimilarTicketsContext(items=[SimilarTicket(ticket_id=n.ticket_id, subject=n.subject,
                                                             resolution=n.resolution or "", score=0.6)
                                               for n in neighbours])
        knowledge = KnowledgeContext(items=[KbArticle(article_id=d.article_id, title=d.title, url=d.url,
                                                      summary=d.summary) for d in docs[i % 500: i % 500 + 3]])
        inventory = InventoryContext(ips_found=[])
        started = time.process_time()
        redactor = Redactor.for_ticket(ticket)
        for text in [ticket.subject, ticket.description, *(n.subject for n in neighbours),
                     *(n.resolution or "" for n in neighbours), *(a.title for a in knowledge.items),
                     *(a.summary for a in knowledge.items)]:
            redactor.redact(text)
        redaction.append((time.process_time() - started) * 1000)
        started = time.process_time()
        note = synthesize(ticket, similar, knowledge, inventory, complete=complete,
                          request_url=lambda rid: f"https://sdp.example/WorkOrder.do?woID={rid}")
        whole.append((time.process_time() - started) * 1000)
        words.append(note.word_count)

    print(f"{args.notes} notes, {statistics.mean(words):.0f} words on average")
    print(f"redaction of the inputs: p50 {statistics.median(redaction):.2f} ms, "
          f"p95 {_percentile(redaction, 95):.2f} ms")
    print(f"whole synthesize:        p50 {statistics.median(whole):.2f} ms, p95 {_percentile(whole, 95):.2f} ms")
    print(f"note_checks_ms_p50={statistics.median(whole):.2f} note_checks_ms_p95={_percentile(whole, 95):.2f}")


if __name__ == "__main__":
    main()
