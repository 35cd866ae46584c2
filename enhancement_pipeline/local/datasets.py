"""The shipped real data (``local/data/``) shaped for the simulators and the demo.

- ``demo_split()``: Microsoft support articles as resolved SDP tickets (symptoms -> description, resolution ->
  resolution) and, held out of that history, new tickets phrased from other articles' symptoms. The split is
  fixed: every article whose symptoms print an inventory IP is held out, plus a stable hash-ordered sample.
- ``kb_documents()``: every shipped article (Microsoft, GNOME, tldr) as a knowledge-base document.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from markdown_it import MarkdownIt

from enhancement_pipeline.settings import PACKAGED_DATA_DIR

# Articles whose symptoms contain the real IPs that anchor the generated inventory (see build_data.py).
IP_TICKET_ARTICLES = (
    "ms-officedocs/Exchange/ExchangeHybrid/administration/endpoint-connection-405-error",
    "ms-officedocs/Exchange/ExchangeServer/administration/403-forbidden-view-free-busy-information",
    "ms-officedocs/Exchange/ExchangeServer/mailflow/event-7009-send-receive-emails",
    "ms-officedocs/Microsoft365/compliance/audit-logs/useragent-property",
    "ms-officedocs/SkypeforBusiness/SkypeServer/server-phone-system/call-to-subscriber-access-auto-attendan-fail",
    "ms-officedocs/Teams/teams-rooms-and-devices/teams-rooms-resource-account-sign-in-issues",
)

_REQUESTERS = ("Aisha Khan", "Ben Carter", "Chloe Martin", "Dmitri Volkov", "Elena Rossi", "Farid Haddad",
               "Grace Liu", "Hugo Meyer", "Ines Duarte", "Jonas Berg")
_TECHNICIANS = ("Priya Nair", "Tom Walsh", "Sofia Alvarez", "Kwame Mensah")

_md = MarkdownIt("commonmark")


@dataclass(frozen=True)
class ArticleTicket:
    """A ticket made from a real article; ``description_html`` is what SDP would store (HTML)."""

    article_id: str
    subject: str
    description_html: str
    resolution_html: str | None
    requester: str
    technician: str
    category: str | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class KbDocument:
    """A knowledge-base article: ``body`` is plain text searched by the KB simulator."""

    article_id: str
    title: str
    url: str | None
    summary: str
    body: str
    source: str


def _read_jsonl(name: str, data_dir: Path = PACKAGED_DATA_DIR) -> Iterator[dict]:
    with gzip.open(data_dir / name, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@lru_cache(maxsize=1)
def ms_articles() -> tuple[dict, ...]:
    """The 2,202 shipped Microsoft support articles (CC BY 4.0), as dicts (see local/data/ATTRIBUTION.md)."""
    return tuple(_read_jsonl("ms_support_articles.jsonl.gz"))


def markdown_to_html(text: str) -> str:
    """Article Markdown as the HTML an SDP description would hold."""
    return _md.render(text).strip()


def demo_split(n_new: int = 24, months: int = 24, now: datetime | None = None
               ) -> tuple[list[ArticleTicket], list[ArticleTicket]]:
    """(resolved history, new tickets). History resolution times spread over the ``months`` before ``now``.

    Only articles with both symptoms and a resolution are used (1,717 of 2,202). New tickets: the
    ``IP_TICKET_ARTICLES`` plus the first articles in a stable hash order, ``n_new`` in all, and never in
    the history. Raises ``ValueError`` if ``n_new`` is smaller than the IP tickets.
    """
    if n_new < len(IP_TICKET_ARTICLES):
        raise ValueError(f"n_new must be at least {len(IP_TICKET_ARTICLES)} (the IP tickets)")
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    usable = [a for a in ms_articles() if a.get("symptoms") and a.get("resolution")]
    by_id = {a["id"]: a for a in usable}
    held = [by_id[i] for i in IP_TICKET_ARTICLES]
    for article in sorted(usable, key=lambda a: _stable_hash(a["id"])):
        if len(held) >= n_new:
            break
        # Short symptoms read like a ticket; long ones are reference pages.
        if article["id"] not in IP_TICKET_ARTICLES and 150 <= len(article["symptoms"]) <= 1500:
            held.append(article)
    held_ids = {a["id"] for a in held}

    history = []
    span_s = months * 30 * 86400
    for article in usable:
        if article["id"] in held_ids:
            continue
        h = _stable_hash(article["id"])
        resolved = now - timedelta(seconds=3600 + h % span_s)
        created = resolved - timedelta(seconds=1800 + (h >> 20) % (5 * 86400))
        history.append(_ticket(article, created, resolved, h, subject=article["title"], resolved_ticket=True))
    new = [_ticket(a, now, None, _stable_hash(a["id"]), subject=a["h1"] or a["title"], resolved_ticket=False)
           for a in held]
    return history, new


def _ticket(article: dict, created: datetime, resolved: datetime | None, h: int, *, subject: str,
            resolved_ticket: bool) -> ArticleTicket:
    category = (article.get("sap_category") or [None])[0]
    return ArticleTicket(
        article_id=article["id"], subject=subject.strip(),
        description_html=markdown_to_html(article["symptoms"]),
        resolution_html=markdown_to_html(article["resolution"]) if resolved_ticket else None,
        requester=_REQUESTERS[h % len(_REQUESTERS)], technician=_TECHNICIANS[h % len(_TECHNICIANS)],
        category=category.split("\\")[0] if category else None, created_at=created, resolved_at=resolved,
    )


def history_months(history: list[ArticleTicket]) -> tuple[str, str]:
    """First and last monthly partition keys (``YYYY-MM-01``) covering the tickets' resolution times."""
    return (min(t.resolved_at for t in history).strftime("%Y-%m-01"),
            max(t.resolved_at for t in history).strftime("%Y-%m-01"))


@lru_cache(maxsize=1)
def kb_documents() -> tuple[KbDocument, ...]:
    """Every shipped article as a KB document: Microsoft (2,202), GNOME (316), tldr (2,332)."""
    docs: list[KbDocument] = []
    for a in ms_articles():
        body = "\n".join(filter(None, (a.get("symptoms"), a.get("cause"), a.get("resolution"))))
        docs.append(KbDocument(a["id"], a["title"], a.get("url_guess"), a.get("summary") or "", body, "microsoft"))
    for g in _read_jsonl("gnome_help_kb.jsonl.gz"):
        docs.append(KbDocument(g["id"], g["title"], g.get("url"), g.get("summary") or "", g.get("text") or "", "gnome"))
    for t in _read_jsonl("tldr_kb.jsonl.gz"):
        docs.append(KbDocument(t["id"], f"{t['title']} command ({t['platform']})", t.get("page_url"),
                               t.get("summary") or "", t.get("text") or "", "tldr"))
    return tuple(docs)
