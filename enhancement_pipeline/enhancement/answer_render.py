"""The note's sections from a structured answer (``answer.py``). Pure functions.

The project writes everything but the model's short free text: the headings and their order (the spec's),
each similar ticket's subject and match score and each article's title (from the context, through
``render.link_citations``), the inventory's facts about every IP address, the citations of each step, and
the one line of a section whose context is empty. Each free text is checked (``answer_checks.py``) and
only the text that fails goes:

- a similar ticket whose ``fix`` fails keeps its place, with the fix quoted from its resolution instead;
  one whose ``why_it_matches`` fails keeps its fix;
- an article or a system loses only its failing line of explanation;
- a step that fails, rests on an id the context does not hold, or is a closing pleasantry, goes.

A section the answer left empty although the context has items gets the deterministic lines
(``reshaped["filled_sections"]``): the items passed the relevance floors, so a technician should see them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel

from enhancement_pipeline.enhancement.answer import KB_PREFIX, MAX_ITEMS
from enhancement_pipeline.enhancement.answer_checks import Seen, is_pleasantry, strip_scores, text_problems
from enhancement_pipeline.enhancement.excerpts import resolution_excerpt
from enhancement_pipeline.enhancement.grounding import Grounds
from enhancement_pipeline.enhancement.render import escape_markdown
from enhancement_pipeline.enhancement.sections import ARTICLES, SIMILAR, STEPS, SYSTEMS, quoted, system_line
from enhancement_pipeline.models import InventoryContext, KnowledgeContext, SimilarTicketsContext

MAX_STEPS = 5
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")

REMOVAL_REASONS = {
    "ticket_ids": "it named a ticket that is not in the history",
    "article_ids": "it named an article the knowledge base did not return",
    "ip_addresses": "it named an IP address that is not in the ticket or the inventory",
    "placeholders": "it used a placeholder for a value it was never shown",
    "emails": "it wrote an e-mail address that is not in the ticket",
    "urls": "it wrote a link that is not in the context",
    "hostnames": "it named a host that is not in the ticket or the inventory",
    "echoes": "it repeated instructions found in the ticket's data",
    "images": "it embedded an image",
}


@dataclass
class Rendered:
    """The sections' Markdown lines (``sections.render_sections`` joins them), what the checks removed by
    reason, and what rendering changed (``filled_sections``, ``pleasantries``, ``repeated_items``,
    ``extra_items``)."""

    sections: dict[str, list[str]]
    removed: Counter = field(default_factory=Counter)
    reshaped: Counter = field(default_factory=Counter)


def prose(text: str) -> str:
    """A model's free text as literal Markdown: one line, every Markdown character escaped, except inside
    backtick code spans (a command stays copy-pasteable)."""
    flat = " ".join(text.split())
    out, last = [], 0
    for m in _CODE_SPAN.finditer(flat):
        out += [escape_markdown(flat[last:m.start()]), f"`{m.group(2).replace('`', '')}`"]
        last = m.end()
    out.append(escape_markdown(flat[last:]))
    return "".join(out).strip()


def render_answer(answer: BaseModel, similar: SimilarTicketsContext, knowledge: KnowledgeContext,
                  inventory: InventoryContext, fallback: dict[str, list[str]], thin: set[str], grounds: Grounds,
                  seen: Seen) -> Rendered:
    """The four sections for ``answer`` (validated against ``answer.answer_model`` of this context); the
    contexts are the redacted ones the model saw, ``fallback`` the deterministic sections."""
    out = Rendered(sections={})
    removed, reshaped = out.removed, out.reshaped

    def checked(text: str) -> str | None:
        text, scores = strip_scores(text.strip())
        if scores:
            removed["scores"] += scores
        if not text:
            return None
        problems = text_problems(text, grounds, seen)
        if problems:
            removed.update(problems[:1])  # one removal, counted by its first reason
            return None
        return prose(text)

    tickets = {t.ticket_id: t for t in similar.items}
    lines, used = [], set()
    for item in getattr(answer, "similar_tickets", []):
        tid = str(item.ticket_id)
        if tid not in tickets:  # only an endpoint that enforces no schema lets this through
            removed["ticket_ids"] += 1
            continue
        if tid in used:
            reshaped["repeated_items"] += 1
            continue
        if len(used) >= MAX_ITEMS:
            reshaped["extra_items"] += 1
            continue
        used.add(tid)
        t = tickets[tid]
        why = checked(item.why_it_matches)
        fix = checked(item.fix) if item.fix.strip() else None
        if fix is None:
            fix = quoted(t.resolution, "resolution", excerpt=resolution_excerpt)
        lines.append(f"- [#{tid}] **{quoted(t.subject, 'subject')}** (match {t.score:.2f})"
                     + (f": {why.rstrip('.')}." if why else ":") + f" Fix: {fix}")
    out.sections[SIMILAR] = lines

    articles = {a.article_id: a for a in knowledge.items}
    lines, used = [], set()
    for item in getattr(answer, "knowledge_articles", []):
        aid = str(item.article_id)
        if aid not in articles:
            removed["article_ids"] += 1
            continue
        if aid in used:
            reshaped["repeated_items"] += 1
            continue
        used.add(aid)
        why = checked(item.why_it_applies)
        lines.append(f"- [KB:{aid}]" + (f": {why}" if why else ""))
    out.sections[ARTICLES] = lines[:MAX_ITEMS]

    relevance = {}
    known_ips = {s.ip_address for s in inventory.items} | set(inventory.unknown_ips)
    for item in getattr(answer, "systems", []):
        if str(item.ip_address) not in known_ips:
            removed["ip_addresses"] += 1
            continue
        text = checked(item.relevance)
        if text:
            relevance.setdefault(str(item.ip_address), text)
    lines = [system_line(s) + (f" — {relevance[s.ip_address]}" if s.ip_address in relevance else "")
             for s in inventory.items]
    lines += [f"- `{ip}`: not in the inventory" + (f" — {relevance[ip]}" if ip in relevance else "")
              for ip in inventory.unknown_ips]
    out.sections[SYSTEMS] = lines

    steps = []
    for item in answer.next_steps:
        if is_pleasantry(item.step):
            reshaped["pleasantries"] += 1
            continue
        text = checked(item.step)
        if text and len(steps) >= MAX_STEPS:
            reshaped["extra_items"] += 1
        if not text or len(steps) >= MAX_STEPS:
            continue
        cites, invented = [], None
        for ref in dict.fromkeys(str(r) for r in item.relies_on):
            if ref.startswith(KB_PREFIX) and ref[len(KB_PREFIX):] in articles:
                cites.append(f"[KB:{ref[len(KB_PREFIX):]}]")
            elif ref in tickets:
                cites.append(f"[#{ref}]")
            else:
                invented = "article_ids" if ref.startswith(KB_PREFIX) else "ticket_ids"
        if invented:  # a step that rests on what the context does not hold goes, as a citing line would
            removed[invented] += 1
            continue
        steps.append(text + (f" ({', '.join(cites)})" if cites else ""))
    out.sections[STEPS] = [f"{i}. {s}" for i, s in enumerate(steps, start=1)]

    for title in (SIMILAR, ARTICLES, SYSTEMS, STEPS):
        if title in thin:
            out.sections[title] = fallback[title]
        elif not out.sections[title]:
            reshaped["filled_sections"] += 1
            out.sections[title] = fallback[title]
    return out


def removal_line(removed: Counter) -> str | None:
    """The note's one honest line about what the checks took out ("1 item removed: it named a ticket that
    is not in the history."); None when nothing was. Corrected scores are not removals."""
    counts = {k: v for k, v in removed.items() if v and k in REMOVAL_REASONS}
    total = sum(counts.values())
    if not total:
        return None
    reasons = [REMOVAL_REASONS[k] for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return (f"*{total} item{'s' if total > 1 else ''} of the model's answer removed: "
            f"{'; '.join(reasons[:3])}{'; …' if len(reasons) > 3 else ''}.*")
