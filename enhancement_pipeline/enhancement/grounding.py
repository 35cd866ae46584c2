"""Output checks: the note may cite only what the gathered context holds. Pure functions.

The model's Markdown is read in units: a list item (with its continuation lines) or one sentence of a
paragraph. A unit goes when it cites a ticket id, an article id, an IP address or a placeholder that the
context does not hold, when it repeats the system prompt, or when it repeats text that addressed a model
from inside the data (``injection.py``). A link or bare URL that is not a cited article's URL or a similar
ticket's request page loses its target (the link text stays); an image goes entirely (a model-written image
is how a note exfiltrates data, through the URL it loads). Every removal is counted by reason, for the run's
metadata.

Ticket ids are recognised as citations (``[#123]``) and as "ticket #12" or "ticket/request/incident 1234" (four
digits or more without the ``#``, so "request 500" stays); a bare ``#123`` is not checked, since error codes
and steps are written that way too.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from enhancement_pipeline.enhancement.injection import shingles, words
from enhancement_pipeline.enhancement.redaction import PLACEHOLDER
from enhancement_pipeline.inventory.ip_addresses import extract_ips, is_ip_address

TICKET_CITATION = re.compile(r"\[#\s*([A-Za-z0-9_-]+)\s*\]")
ARTICLE_CITATION = re.compile(r"\[KB:\s*([^\]\s]+)\s*\]")
# "ticket #123", "request no. 4711", "tickets 4242 and 5151", "incident 123640000000000017"; not "request 500"
# (a status code): without "#", four digits or more.
# Each optional separator brings its own whitespace: "\s*x?\s*:?\s*" chains backtrack polynomially on a long
# run of spaces after "ticket".
_TICKET_MENTION = re.compile(r"(?i)\b(?:tickets?|requests?|incidents?|cases?)(?:\s*(?:no\.?|number|ids?))?(?:\s*:)?"
                             r"\s*((?:#\s*\d+|\d{4,})(?:\s*(?:,|and|or|&)\s*(?:#\s*\d+|\d{4,}))*)\b")
_MENTIONED_ID = re.compile(r"#\s*(\d+)|(\d{4,})")
# A bare "#990001": five digits or more (steps, error numbers and list markers are shorter).
_BARE_ID = re.compile(r"(?<![\w&#/\[])#(\d{5,})\b")
_MATCH_SCORE = re.compile(r"\(match\s+([01](?:\.\d+)?)\)")
IP_LIKE = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
"""A dotted quad, whether or not it is a valid address."""
_TITLE_AFTER_CITATION = re.compile(r"\[KB:\s*([^\]\s]+)\s*\](?!\()\s*[:\-–—·]?\s*(\*\*|\*|\"|“)(.+?)(?:\*\*|\*|\"|”)")
_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?"
                   r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\s]*)>")
_BARE_URL = re.compile(r"(?i)\b(?:https?|ftp|file|javascript|data|vbscript|mailto):[^\s<>()\[\]]+")
LIST_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\[*_`\"'(A-Z0-9])")
"""Where one sentence ends and the next begins: after . ! ? and before what can start a sentence."""
ECHO_WORDS = 6
"""Consecutive words a unit may share with a forbidden text before it counts as repeating it (a forbidden
text shorter than that counts when repeated whole, down to ``MIN_ECHO_WORDS``)."""
MIN_ECHO_WORDS = 3


@dataclass(frozen=True)
class Grounds:
    """What a note may cite. ``forbidden``: texts it may not repeat (the system prompt, model-addressed
    spans of the data). URLs are compared without a trailing slash."""

    ticket_ids: frozenset[str]
    article_ids: frozenset[str]
    urls: frozenset[str]
    ips: frozenset[str]
    placeholders: frozenset[str]
    forbidden: tuple[str, ...] = ()
    article_titles: dict[str, str] = field(default_factory=dict)
    ticket_scores: dict[str, float] = field(default_factory=dict)
    article_urls: dict[str, str] = field(default_factory=dict)
    """An article's URL (no trailing slash) to its id: a link to it is a citation."""
    mentioned_urls: frozenset[str] = frozenset()
    """URLs that appear in the ticket or the context's texts: the note may repeat them as text, not link them
    (only ``urls`` are link targets)."""
    _forbidden_shingles: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_size: dict[int, set] = {}
        for text in self.forbidden:
            size = min(ECHO_WORDS, len(words(text)))
            if size >= MIN_ECHO_WORDS:
                by_size.setdefault(size, set()).update(shingles(text, size))
        object.__setattr__(self, "_forbidden_shingles", by_size)

    def known_url(self, url: str) -> bool:
        return url.rstrip("/") in self.urls

    def mentioned(self, url: str) -> bool:
        return self.known_url(url) or url.rstrip("/") in self.mentioned_urls

    def echoes_forbidden(self, text: str) -> bool:
        return any(not shingles(text, size).isdisjoint(found) for size, found in self._forbidden_shingles.items())


@dataclass
class Grounded:
    """The checked Markdown and what was removed or corrected, by reason (``ticket_ids``, ``article_ids``,
    ``article_titles``, ``ip_addresses``, ``placeholders``, ``urls``, ``images``, ``echoes``, ``scores``)."""

    markdown: str
    removed: Counter

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())


def mentioned_ticket_ids(text: str) -> set[str]:
    """The ticket ids ``text`` cites or mentions, as the checks recognise them."""
    found = set(TICKET_CITATION.findall(text)) | set(_BARE_ID.findall(text))
    return found | {a or b for mention in _TICKET_MENTION.findall(text) for a, b in _MENTIONED_ID.findall(mention)}


def mentioned_urls(text: str) -> set[str]:
    """The URLs written in ``text`` (bare, autolinked or as link targets)."""
    return ({m.group(0).rstrip(".,;:!?'\"") for m in _BARE_URL.finditer(text)}
            | {m.group(1) for m in _AUTOLINK.finditer(text)} | {m.group(3) for m in _LINK.finditer(text)})


def ground(markdown: str, grounds: Grounds,
           extra: Callable[[str], tuple[str, list[str]]] | None = None) -> Grounded:
    """``markdown`` without the units and link targets that ``grounds`` does not support. ``extra(unit)``
    adds checks: it returns the unit (possibly corrected) and its further problems."""
    removed: Counter = Counter()
    lines: list[str] = []
    for kind, units in _blocks(markdown):
        if kind == "pass":
            lines += units
            continue
        kept = []
        for unit in units:
            link_fixes: Counter = Counter()
            unit = _cite_articles(unit, grounds)
            fixed = _fix_titles(_fix_scores(_fix_links(unit, grounds, link_fixes), grounds, link_fixes), grounds,
                                link_fixes)
            reasons = unit_problems(fixed, grounds)
            if extra is not None and not reasons:
                fixed, reasons = extra(fixed)
            # A unit that goes is counted once, by why it went, not also by the links inside it.
            removed.update(reasons or link_fixes)
            if not reasons and fixed.strip():
                kept.append(fixed)
        if kept:
            lines.append(" ".join(kept) if kind == "paragraph" else kept[0])
    return Grounded(markdown=re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip(), removed=removed)


def unit_problems(unit: str, grounds: Grounds) -> list[str]:
    """Why ``unit`` (a list item or a sentence, links already checked) cannot stay: one reason per
    unknown reference; empty when it is grounded."""
    problems = ["ticket_ids" for t in mentioned_ticket_ids(unit) if t not in grounds.ticket_ids]
    problems += ["article_ids" for a in ARTICLE_CITATION.findall(unit) if a not in grounds.article_ids]
    problems += ["ip_addresses" for ip in extract_ips(unit) if ip not in grounds.ips]
    # A dotted quad that is no address ("10.0.0.06": ipaddress rejects leading zeros) still claims one.
    problems += ["ip_addresses" for token in IP_LIKE.findall(unit)
                 if not is_ip_address(token) and token not in grounds.ips]
    problems += ["placeholders" for p in PLACEHOLDER.finditer(unit) if p.group(0) not in grounds.placeholders]
    if not problems and grounds.echoes_forbidden(unit):
        problems.append("echoes")
    return problems


def _cite_articles(unit: str, grounds: Grounds) -> str:
    """An article a model named without its ``[KB:id]``, as a link to its URL or by its exact title (bold,
    quoted or bare), cited as the context's article: the citation gets the title and link back later
    (``render.link_citations``)."""
    def link(m: re.Match) -> str:
        article_id = grounds.article_urls.get(m.group(3).rstrip("/"))
        return f"[KB:{article_id}]" if article_id and not m.group(1) else m.group(0)

    unit = _LINK.sub(link, unit)
    # A unit that cites a ticket names its subject, which is often an article's title too.
    if ARTICLE_CITATION.search(unit) or TICKET_CITATION.search(unit):
        return unit
    for article_id, title in grounds.article_titles.items():
        if len(words(title)) < 3:
            continue  # a short title could be ordinary words of the prose
        pattern = re.compile(r"(\*\*|\*|\"|“)?(?<!\w)" + r"\W+".join(map(re.escape, title.split()))
                             + r"(?!\w)(\*\*|\*|\"|”)?", re.I)
        unit, n = pattern.subn(f"[KB:{article_id}]", unit, count=1)
        if n:
            break
    return unit


def _fix_titles(unit: str, grounds: Grounds, removed: Counter) -> str:
    """A title written after a valid ``[KB:id]`` that is not the article's own (a paraphrase, or a claim
    dressed as a title) is cut, and counted under ``article_titles``: the citation keeps the real one."""
    def fix(m: re.Match) -> str:
        article_id, title = m.group(1), m.group(3)
        real = grounds.article_titles.get(article_id)
        if real is None or _normal(title) == _normal(real):
            return m.group(0)
        removed["article_titles"] += 1
        return f"[KB:{article_id}]"

    return _TITLE_AFTER_CITATION.sub(fix, unit)


def _fix_scores(unit: str, grounds: Grounds, removed: Counter) -> str:
    """A unit that cites one similar ticket gives that ticket's score from the context: a different
    "(match 0.xx)" is corrected, and counted under ``scores``."""
    cited = set(TICKET_CITATION.findall(unit))
    if len(cited) != 1 or (score := grounds.ticket_scores.get(next(iter(cited)))) is None:
        return unit

    def fix(m: re.Match) -> str:
        if abs(float(m.group(1)) - score) < 0.006:
            return m.group(0)
        removed["scores"] += 1
        return f"(match {score:.2f})"

    return _MATCH_SCORE.sub(fix, unit)


def _fix_links(unit: str, grounds: Grounds, removed: Counter) -> str:
    def link(m: re.Match) -> str:
        image, text, url = m.group(1), m.group(2), m.group(3)
        if image:
            removed["images"] += 1
            return ""
        if grounds.known_url(url):
            return m.group(0)
        removed["urls"] += 1
        return text

    def bare(m: re.Match) -> str:
        url = m.group(0).rstrip(".,;:!?'\"")
        if grounds.mentioned(url):  # as text: only Markdown links make links, and those are checked above
            return m.group(0)
        removed["urls"] += 1
        return m.group(0)[len(url):]

    # Known links are set aside while bare URLs are checked, so a kept link's target is not checked twice.
    kept: list[str] = []

    def keep(m: re.Match) -> str:
        fixed = link(m)
        if fixed == m.group(0):
            kept.append(fixed)
            return f"\x00{len(kept) - 1}\x00"
        return fixed

    unit = _LINK.sub(keep, unit)
    unit = _AUTOLINK.sub(lambda m: m.group(0) if grounds.known_url(m.group(1))
                         else (m.group(1) if grounds.mentioned(m.group(1)) else bare(m)), unit)
    unit = _BARE_URL.sub(bare, unit)
    if sum(removed.values()):
        unit = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", unit)).rstrip()
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], unit)


def _normal(text: str) -> str:
    return " ".join(words(text))


def _blocks(markdown: str) -> list[tuple[str, list[str]]]:
    """``markdown`` as ("pass", [line]) for rules and blank lines, ("item", [text]) for a heading or a list item
    with its continuation lines, and ("paragraph", [sentence, ...]) for any other line.

    A list item's continuation is every following line indented deeper than the item's marker, nested list
    items included: a sub-bullet ("  - Resolution: ...") goes with its parent rather than staying behind as
    an orphan, while a sibling at the same indentation is an item of its own. A heading takes no
    continuation."""
    blocks: list[tuple[str, list[str]]] = []
    item_indent: int | None = None  # of the open list item; None after a heading, a paragraph or a gap
    for line in markdown.splitlines():
        indent = len(line) - len(line.lstrip(" \t"))
        if (item_indent is not None and line.strip() and indent > item_indent and not HEADING.match(line)):
            blocks[-1][1][0] += "\n" + line
        elif HEADING.match(line):
            blocks.append(("item", [line]))
            item_indent = None
        elif LIST_ITEM.match(line) or (line.startswith(("    ", "\t")) and LIST_ITEM.match(line.lstrip())):
            blocks.append(("item", [line]))
            item_indent = indent
        elif not line.strip() or line.strip() in ("---", "***"):
            blocks.append(("pass", [line]))
            item_indent = None
        else:
            blocks.append(("paragraph", SENTENCE_END.split(line.strip())))
            item_indent = None
    return blocks
