"""The note's shape: four sections in the spec's order, one line where the context is thin, at most 500
words. Pure functions over Markdown.

``deterministic_sections`` writes each section from the context alone; it is the whole note when there is
no model, and it fills any section the model left out, emptied, or padded where the context had nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from enhancement_pipeline.enhancement.answer_checks import is_pleasantry
from enhancement_pipeline.enhancement.excerpts import resolution_excerpt
from enhancement_pipeline.enhancement.grounding import (
    ARTICLE_CITATION,
    HEADING,
    LIST_ITEM,
    SENTENCE_END,
    TICKET_CITATION,
)
from enhancement_pipeline.enhancement.injection import addresses_a_model
from enhancement_pipeline.enhancement.prompts import MAX_NOTE_WORDS, SECTION_TITLES
from enhancement_pipeline.enhancement.render import escape_markdown
from enhancement_pipeline.models import InventoryContext, KnowledgeContext, SimilarTicketsContext, SystemInfo, Ticket

SIMILAR, ARTICLES, SYSTEMS, STEPS = SECTION_TITLES
SHORTENED = "*(shortened to stay within the note length limit)*"
# A line that may open a section: a level 1-3 heading, a bold line (``**Similar Tickets:**``), or a short
# plain or numbered line of heading words only (``1. Similar Resolved Tickets:``, ``Next Steps``); a numbered
# line only with its colon ("1. Related tickets" may be a step).
_SECTION_LINE = re.compile(r"^\s{0,3}(?:#{1,3}\s+(.+?)\s*#*\s*|(?:\d{1,2}[.)]\s+)?\*\*([^*]+?):?\*\*:?"
                           r"|\d{1,2}[.)]\s+([A-Za-z][A-Za-z /&-]{2,48}?):|([A-Za-z][A-Za-z /&-]{2,48}?):?)\s*$")
_HEADING_WORDS = frozenset("""similar resolved tickets ticket related past previous knowledge base kb articles article
    documentation docs systems system involved info information inventory affected ip addresses address hosts
    recommended next steps step actions action recommendations suggested and of""".split())
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
# How a heading the model wrote is matched to a spec section: by whole words, so "Similar tickets" or
# "KB articles" count; checked in this order. A bold line must be the title itself.
_SECTION_WORDS = ((STEPS, ("next steps", "recommended", "recommendations", "actions", "steps")),
                  (SIMILAR, ("similar", "resolved tickets", "related tickets", "past tickets", "previous tickets")),
                  (ARTICLES, ("knowledge", "articles", "kb", "documentation")),
                  (SYSTEMS, ("systems", "system", "inventory", "ip addresses", "affected hosts")))
# Sections whose every line must cite a context item; the rest may reason in prose.
_CITATION_REQUIRED = {SIMILAR: TICKET_CITATION, ARTICLES: ARTICLE_CITATION}


def word_count(text: str) -> int:
    """Words a reader sees in ``text`` (Markdown): link targets and tokens without a letter or digit (list
    markers, "·", "---") do not count."""
    visible = re.sub(r"\]\([^)\s]*\)", "]", text)
    return sum(1 for token in visible.split() if any(c.isalnum() for c in token))


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
        line += f" Failed: {escape_markdown('; '.join(failed))}."
    return line


def deterministic_sections(ticket: Ticket, similar: SimilarTicketsContext, knowledge: KnowledgeContext,
                           inventory: InventoryContext) -> dict[str, list[str]]:
    """Each section's Markdown lines, from the context alone. Citations are ``[#id]``/``[KB:id]``; links are
    added later (``render.link_citations``)."""
    out: dict[str, list[str]] = {}
    if similar.items:
        out[SIMILAR] = [f"- [#{t.ticket_id}] **{quoted(t.subject, 'subject')}** (match {t.score:.2f}): "
                        f"{quoted(t.resolution, 'resolution', excerpt=resolution_excerpt)}" for t in similar.items]
    elif similar.error:
        out[SIMILAR] = [_failed(similar.error)]
    else:
        out[SIMILAR] = ["No resolved ticket in the history is similar enough to this one: none shares enough of its "
                        "wording or meaning to be worth reading."]
    if knowledge.items:
        out[ARTICLES] = [f"- [KB:{a.article_id}]{': ' + quoted(a.summary, 'summary') if a.summary else ''}"
                         for a in knowledge.items]
    else:
        out[ARTICLES] = [_failed(knowledge.error) if knowledge.error else "No relevant knowledge-base article found."]
    systems = [system_line(s) for s in inventory.items]
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
        hosts = escape_markdown(", ".join(s.hostname or s.ip_address for s in inventory.items[:3]))
        steps.append(f"Confirm the state of {hosts} before changing anything.")
    if inventory.unknown_ips:
        steps.append("Ask the requester what the unknown IP addresses belong to and update the inventory.")
    if not steps:
        steps.append("No prior fix or article applies: gather error messages, scope and recent changes first.")
    out[STEPS] = [f"{i}. {step}" for i, step in enumerate(steps, start=1)]
    return out


def system_line(system: SystemInfo) -> str:
    """One system's list item: its address and what the inventory says about it."""
    facts = escape_markdown(", ".join(x for x in (system.hostname, system.role, system.client, system.location) if x))
    via = "" if system.matched == system.ip_address else f" (via network {system.matched})"
    return f"- `{system.ip_address}`{via}: {facts}"


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


def normalise_headings(markdown: str) -> str:
    """``markdown`` with every line that opens a spec section written as its level-3 heading
    (``1. Similar resolved tickets:`` → ``### Similar resolved tickets``), fences left alone, so that the
    output checks read the heading as a heading and not as a list item owning the section."""
    out, in_fence = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _SECTION_LINE.match(line)
        title = _heading_title(heading)
        out.append(f"### {title}" if title else line)
    return "\n".join(out)


def arrange_sections(markdown: str, fallback: dict[str, list[str]], thin: set[str]) -> Arranged:
    """``markdown`` as the four spec sections in order. A thin section gets ``fallback``'s one line whatever
    the model wrote; a section that is missing or ends up empty gets ``fallback``'s lines."""
    changes: Counter = Counter()
    found: dict[str, list[str]] = {}
    current: str | None = None
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _SECTION_LINE.match(line)
        title = _heading_title(heading)
        if heading and (heading.group(3) or heading.group(4)) and title is None:
            heading = None  # a short plain line that names no section is content
        if heading and (title is not None or HEADING.match(line)):
            # A spec heading opens its section; another level 1-3 heading opens a section the spec does not
            # have (dropped). Bold lines naming no section, and level-4 headings, are content.
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
        if current == STEPS and not in_fence and is_pleasantry(LIST_ITEM.sub("", line)):
            changes["pleasantries"] += 1
            continue
        pattern = _CITATION_REQUIRED.get(current)
        if (pattern is not None and current not in thin and not in_fence and not _FENCE.match(line)
                and not pattern.search(line) and not line.startswith(" ")):
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


def cap_words(markdown: str, limit: int = MAX_NOTE_WORDS, count: Callable[[str], int] | None = None) -> str:
    """``markdown`` within ``limit`` words as ``count`` counts them (default ``word_count``), the shortening
    notice included.

    Whole list items, paragraphs or code blocks go first, from the end of the longest section, so every
    section keeps at least its first line and its heading; then trailing sentences of the longest remaining
    block. Only when every block is down to one sentence and the note is still too long is a sentence cut
    between words (with "…"): never inside a word.
    """
    count = count or word_count
    if count(markdown) <= limit:
        return markdown
    budget = limit - count(SHORTENED)
    blocks = _cap_blocks(markdown)

    def total() -> int:
        return count(_join_blocks(blocks))

    while total() > budget:
        if not _drop_block(blocks, count) and not _drop_sentence(blocks, count) \
                and not _cut_words(blocks, total() - budget, count):
            break
    return _join_blocks(blocks) + "\n\n" + SHORTENED


@dataclass
class _Block:
    section: int
    text: str
    heading: bool = False
    gap: bool = False  # a blank line stood before it


def _cap_blocks(markdown: str) -> list[_Block]:
    """Headings, list items with their continuation lines, paragraph lines and fenced code blocks."""
    blocks: list[_Block] = []
    section, gap, fence = 0, False, False
    for line in markdown.splitlines():
        if fence:
            blocks[-1].text += "\n" + line
            fence = not _FENCE.match(line)
        elif _FENCE.match(line):
            blocks.append(_Block(section, line, gap=gap))
            fence, gap = True, False
        elif HEADING.match(line):
            section += 1
            blocks.append(_Block(section, line, heading=True, gap=gap))
            gap = False
        elif blocks and line.startswith((" ", "\t")) and line.strip() and not blocks[-1].heading and not gap:
            blocks[-1].text += "\n" + line
        elif line.strip():
            blocks.append(_Block(section, line, gap=gap))
            gap = False
        else:
            gap = bool(blocks)
    return blocks


def _join_blocks(blocks: list[_Block]) -> str:
    return "\n".join(("\n" if b.gap else "") + b.text for b in blocks).strip()


def _drop_block(blocks: list[_Block], count: Callable[[str], int]) -> bool:
    per_section = Counter(b.section for b in blocks if not b.heading)
    words: Counter = Counter()
    for b in blocks:
        if not b.heading and per_section[b.section] > 1:
            words[b.section] += count(b.text)
    if not words:
        return False
    longest = words.most_common(1)[0][0]
    del blocks[max(i for i, b in enumerate(blocks) if b.section == longest and not b.heading)]
    return True


def _drop_sentence(blocks: list[_Block], count: Callable[[str], int]) -> bool:
    candidates = [(count(b.text), i) for i, b in enumerate(blocks)
                  if not b.heading and not _FENCE.match(b.text) and len(_sentences(b.text)) > 1]
    if not candidates:
        return False
    _, i = max(candidates)
    blocks[i].text = " ".join(_sentences(blocks[i].text)[:-1])
    return True


def _cut_words(blocks: list[_Block], over: int, count: Callable[[str], int]) -> bool:
    """Shorten the longest block by ``over`` words: prose between words (ending "…"), a code block by whole
    lines (its fences kept). False when nothing can be shortened."""
    def kept_words(b: _Block) -> list[str]:
        return [w for w in b.text.split() if w != "…"]

    def code_lines(b: _Block) -> list[str]:
        return [line for line in b.text.splitlines()[1:-1] if line.strip() != "…"]

    candidates = [(count(b.text), i) for i, b in enumerate(blocks) if not b.heading
                  and (len(code_lines(b)) > 1 if _FENCE.match(b.text) else len(kept_words(b)) > 1)]
    if not candidates:
        return False
    _, i = max(candidates)
    block = blocks[i]
    if _FENCE.match(block.text):
        lines = block.text.splitlines()
        inner = code_lines(block)
        while len(inner) > 1 and over > 0:
            over -= count(inner.pop())
        block.text = "\n".join([lines[0], *inner, "…", lines[-1]])
    else:
        words = kept_words(block)
        block.text = " ".join(words[: max(1, len(words) - over)]) + " …"
    return True


def _sentences(text: str) -> list[str]:
    return SENTENCE_END.split(text.strip())


def _heading_title(heading: re.Match | None) -> str | None:
    if heading is None:
        return None
    return _section_of(heading.group(1), heading.group(2), heading.group(3) or heading.group(4))


def _section_of(hash_heading: str | None, bold_line: str | None, plain_line: str | None = None) -> str | None:
    """The spec section a heading names, by its words. A bold or plain line counts only when it is short
    and made of heading words alone ("Similar Tickets", "System Info"), so "**Restart the systems**" or
    "1. Check the systems" stay content."""
    text = " ".join(re.sub(r"[^a-z ]+", " ", (hash_heading or bold_line or plain_line or "").lower()).split())
    if hash_heading is None:
        words = text.split()
        if not words or len(words) > 5 or not set(words) <= _HEADING_WORDS:
            return None
    padded = f" {text} "
    for title, keys in _SECTION_WORDS:
        if any(f" {k} " in padded for k in keys):
            return title
    return None


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def quoted(text: str, what: str, excerpt: Callable[[str], str] | None = None) -> str:
    """``text`` (or its ``excerpt``) as the note may quote it: as literal text (no Markdown of its own), and
    not at all when the whole text speaks to a model (the note would carry the order). The whole text is
    judged, not the excerpt: flattening lines can hide a cue that needs its line's end."""
    if addresses_a_model(text):
        return f"({what} not quoted: it contains text addressed to an AI model; read it on the ticket)"
    return escape_markdown(excerpt(text) if excerpt else text)


def _failed(error: str) -> str:
    return f"Not available: the lookup failed ({escape_markdown(error)})."
