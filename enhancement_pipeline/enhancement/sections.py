"""The note's shape: four sections in the spec's order, one line where the context is thin, at most 500
words. Pure functions over Markdown.

``deterministic_sections`` writes each section from the context alone; it is the whole note when there is
no model, and it fills any section the model left out, emptied, or padded where the context had nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from enhancement_pipeline.enhancement.grounding import ARTICLE_CITATION, TICKET_CITATION
from enhancement_pipeline.enhancement.injection import addresses_a_model
from enhancement_pipeline.enhancement.prompts import MAX_NOTE_WORDS, SECTION_TITLES
from enhancement_pipeline.models import InventoryContext, KnowledgeContext, SimilarTicketsContext, Ticket

SIMILAR, ARTICLES, SYSTEMS, STEPS = SECTION_TITLES
SHORTENED = "*(shortened to stay within the note length limit)*"
_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s{0,3}(?:#{1,6}\s+(.+?)\s*#*\s*|\*\*([^*]+?):?\*\*:?)\s*$")
_TOP_HEADING = re.compile(r"^\s{0,3}#{1,3}\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
# How a heading the model wrote is matched to a spec section: by its words, so "Similar tickets" or
# "KB articles" count; checked in this order.
_SECTION_WORDS = ((STEPS, ("next step", "recommend", "action")), (SIMILAR, ("similar", "resolved ticket")),
                  (ARTICLES, ("knowledge", "article", "kb")), (SYSTEMS, ("system", "inventory", "ip address")))
# Sections whose every line must cite a context item; the rest may reason in prose.
_CITATION_REQUIRED = {SIMILAR: TICKET_CITATION, ARTICLES: ARTICLE_CITATION}


def word_count(text: str) -> int:
    return len(text.split())


def thin_sections(similar: SimilarTicketsContext, knowledge: KnowledgeContext,
                  inventory: InventoryContext) -> set[str]:
    """The sections whose context has nothing to say (no item; for systems, no IP address at all)."""
    thin = set()
    if not similar.items:
        thin.add(SIMILAR)
    if not knowledge.items:
        thin.add(ARTICLES)
    if not inventory.items and not inventory.unknown_ips:
        thin.add(SYSTEMS)
    return thin


def thin_note(similar: SimilarTicketsContext, knowledge: KnowledgeContext, inventory: InventoryContext) -> str:
    """The one-line note for a ticket the context knows nothing about, naming any lookup that failed."""
    failed = [f"{what} ({ctx.error})" for what, ctx in (("similar-ticket search", similar),
                                                          ("knowledge-base search", knowledge),
                                                          ("inventory lookup", inventory)) if ctx.error]
    line = ("Nothing to add yet: no similar resolved ticket, no knowledge-base article and no IP address to look "
            "up in this ticket.")
    if failed:
        line += f" Failed: {'; '.join(failed)}."
    return line


def deterministic_sections(ticket: Ticket, similar: SimilarTicketsContext, knowledge: KnowledgeContext,
                           inventory: InventoryContext) -> dict[str, list[str]]:
    """Each section's Markdown lines, from the context alone. Citations are ``[#id]``/``[KB:id]``; links are
    added later (``render.link_citations``)."""
    out: dict[str, list[str]] = {}
    if similar.items:
        out[SIMILAR] = [f"- [#{t.ticket_id}] **{_quoted(t.subject, 'subject')}** (match {t.score:.2f}): "
                        f"{_quoted(first_sentences(t.resolution), 'resolution')}" for t in similar.items]
    elif similar.error:
        out[SIMILAR] = [_failed(similar.error)]
    else:
        out[SIMILAR] = ["No resolved ticket in the history is similar enough to this one: none shares enough of its "
                        "wording or meaning to be worth reading."]
    if knowledge.items:
        out[ARTICLES] = [f"- [KB:{a.article_id}]{': ' + _quoted(a.summary, 'summary') if a.summary else ''}"
                         for a in knowledge.items]
    else:
        out[ARTICLES] = [_failed(knowledge.error) if knowledge.error else "No relevant knowledge-base article found."]
    systems = []
    for s in inventory.items:
        facts = ", ".join(x for x in (s.hostname, s.role, s.client, s.location) if x)
        via = "" if s.matched == s.ip_address else f" (via network {s.matched})"
        systems.append(f"- `{s.ip_address}`{via}: {facts}")
    systems += [f"- `{ip}`: not in the inventory" for ip in inventory.unknown_ips]
    if not systems:
        systems = [_failed(inventory.error) if inventory.error else "The ticket names no IP address."]
    out[SYSTEMS] = systems
    steps = []
    if similar.items:
        steps.append(f"Compare the symptoms with [#{similar.items[0].ticket_id}] and try its fix first.")
    if knowledge.items:
        steps.append(f"Check [KB:{knowledge.items[0].article_id}] for the documented cause and resolution.")
    if inventory.items:
        hosts = ", ".join(s.hostname or s.ip_address for s in inventory.items[:3])
        steps.append(f"Confirm the state of {hosts} before changing anything.")
    if inventory.unknown_ips:
        steps.append("Ask the requester what the unknown IP addresses belong to and update the inventory.")
    if not steps:
        steps.append("No prior fix or article applies: gather error messages, scope and recent changes first.")
    out[STEPS] = [f"{i}. {step}" for i, step in enumerate(steps, start=1)]
    return out


def render_sections(sections: dict[str, list[str]], preamble: list[str] | None = None) -> str:
    """Markdown of the sections in spec order (level-3 headings), after an optional preamble."""
    lines = list(preamble or [])
    for title in SECTION_TITLES:
        if lines:
            lines.append("")
        lines += [f"### {title}", *sections.get(title, [])]
    return "\n".join(lines).strip()


@dataclass
class Arranged:
    """The note in spec shape, and what arranging changed (counts by kind: ``off_spec_lines`` dropped for
    standing outside any spec section, ``uncited_lines`` dropped from a section that must cite, ``padding``:
    lines beyond one where the context was thin, ``filled_sections`` taken from the deterministic note)."""

    markdown: str
    changes: Counter = field(default_factory=Counter)


def arrange_sections(markdown: str, fallback: dict[str, list[str]], thin: set[str]) -> Arranged:
    """``markdown`` as the four spec sections in order. A thin section gets ``fallback``'s one line whatever
    the model wrote; a section that is missing or ends up empty gets ``fallback``'s lines."""
    changes: Counter = Counter()
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        title = _section_of(heading.group(1) or heading.group(2)) if heading else None
        if heading and (title is not None or _TOP_HEADING.match(line)):
            # A heading of the spec opens its section; another top-level one opens a section the spec does
            # not have (dropped). A bold line or a level-4 heading that names no section is content.
            current = title
            if title is None:
                changes["off_spec_lines"] += 1
            continue
        if not line.strip():
            if current and found.get(current):
                found[current].append("")
            continue
        if current is None:
            changes["off_spec_lines"] += 1
            continue
        pattern = _CITATION_REQUIRED.get(current)
        if pattern is not None and current not in thin and not pattern.search(line) and not line.startswith(" "):
            changes["uncited_lines"] += 1
            continue
        found.setdefault(current, []).append(line)
    sections = {}
    for title in SECTION_TITLES:
        lines = _trim(found.get(title, []))
        if title in thin:
            # The model's one line is replaced too (the fixed wording cannot carry a claim); more is padding.
            changes["padding"] += max(0, len([x for x in lines if x.strip()]) - 1)
            sections[title] = fallback[title]
        elif lines:
            sections[title] = lines
        else:
            changes["filled_sections"] += 1
            sections[title] = fallback[title]
    return Arranged(render_sections(sections), changes)


def cap_words(markdown: str, limit: int = MAX_NOTE_WORDS) -> str:
    """``markdown`` within ``limit`` words (the shortening notice included), never cut inside a sentence.

    Whole list items or paragraphs go first, from the end of the longest section, so every section keeps
    at least its first line; then trailing sentences of the longest remaining line. Only a single sentence
    longer than the whole budget is cut between words (with "…").
    """
    if word_count(markdown) <= limit:
        return markdown
    budget = limit - word_count(SHORTENED)
    blocks = _cap_blocks(markdown)
    while sum(word_count(b) for _, b in blocks) > budget:
        if not _drop_block(blocks) and not _drop_sentence(blocks):
            _cut_words(blocks, budget)
            break
    return "\n".join(b for _, b in blocks).strip() + "\n\n" + SHORTENED


def _cap_blocks(markdown: str) -> list[tuple[int, str]]:
    """(section index, block) pairs: a heading, a list item with its continuation, a paragraph line."""
    blocks: list[tuple[int, str]] = []
    section = 0
    for line in markdown.splitlines():
        if _HEADING.match(line):
            section += 1
            blocks.append((-section, line))  # negative: a heading, never dropped
        elif blocks and line.startswith((" ", "\t")) and line.strip() and blocks[-1][0] >= 0:
            blocks[-1] = (blocks[-1][0], blocks[-1][1] + "\n" + line)
        elif line.strip():
            blocks.append((section, line))
    return blocks


def _drop_block(blocks: list[tuple[int, str]]) -> bool:
    per_section = Counter(s for s, _ in blocks if s >= 0)
    words = Counter()
    for s, b in blocks:
        if s >= 0 and per_section[s] > 1:
            words[s] += word_count(b)
    if not words:
        return False
    longest = words.most_common(1)[0][0]
    last = max(i for i, (s, _) in enumerate(blocks) if s == longest)
    del blocks[last]
    return True


def _drop_sentence(blocks: list[tuple[int, str]]) -> bool:
    candidates = [(word_count(b), i) for i, (s, b) in enumerate(blocks) if s >= 0 and len(_sentences(b)) > 1]
    if not candidates:
        return False
    _, i = max(candidates)
    section, block = blocks[i]
    blocks[i] = (section, " ".join(_sentences(block)[:-1]))
    return True


def _cut_words(blocks: list[tuple[int, str]], budget: int) -> None:
    over = sum(word_count(b) for _, b in blocks) - budget
    _, i = max((word_count(b), i) for i, (s, b) in enumerate(blocks) if s >= 0)
    words = blocks[i][1].split(" ")
    blocks[i] = (blocks[i][0], " ".join(words[: max(1, len(words) - over - 1)]) + " …")


def _sentences(text: str) -> list[str]:
    return _SENTENCE_END.split(text.strip())


def first_sentences(text: str, max_chars: int = 320) -> str:
    """The opening sentences of ``text`` that fit ``max_chars`` (whitespace flattened)."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) <= max_chars:
        return flat
    cut = flat[:max_chars]
    end = max(cut.rfind(". "), cut.rfind("; "))
    return (cut[: end + 1] if end > 80 else cut.rsplit(" ", 1)[0] + " …").strip()


def _section_of(heading: str) -> str | None:
    words = re.sub(r"[^a-z ]+", " ", heading.lower())
    for title, keys in _SECTION_WORDS:
        if any(k in words for k in keys):
            return title
    return None


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _quoted(text: str, what: str) -> str:
    """``text`` as the note may quote it: not when it speaks to a model (the note would carry the order)."""
    if addresses_a_model(text):
        return f"({what} not quoted: it contains text addressed to an AI model; read it on the ticket)"
    return text


def _failed(error: str) -> str:
    return f"Not available: the lookup failed ({error})."
