"""Possible duplicates and incident storms among a tenant's open tickets (issue 14, item 5). Pure.

The new ticket is compared with the tenant's tickets opened in the last ``window`` (72 h by default) that are
not resolved yet (``triage.recent_store`` reads them, with the cosine of their sentence embeddings to the new
ticket's):

- **possible duplicate**: the same requester, or the same site, and a cosine of at least ``RELATED_FLOOR``;
  or any requester and a cosine of at least ``DUPLICATE_FLOOR``. Closest first, at most ``MAX_SHOWN``.
- **possible major incident**: at least ``storm_min_tickets`` tickets (this one included) opened within
  ``storm_window`` of each other before this one, each at a cosine of at least ``STORM_FLOOR`` to it.

The floors were calibrated by ``benchmarks/duplicate_quality.py`` on 1,801 pairs built from the shipped
Microsoft support articles (an article's headline against its title and symptoms: two phrasings of one
problem), each against its hardest near miss (the closest other article of the same product area):
``DUPLICATE_FLOOR`` is the lowest cosine at which at least 90 % of the pairs flagged are true pairs
(precision 0.906, recall 0.782); ``RELATED_FLOOR`` the lowest at 75 % (0.75 / 0.958), as a shared requester
or site is evidence of its own; ``STORM_FLOOR`` lies between (0.851 / 0.890): a storm needs several tickets
to agree with the new one, so one near miss does not make it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DUPLICATE_FLOOR = 0.75
RELATED_FLOOR = 0.64
STORM_FLOOR = 0.7
MAX_SHOWN = 3
WINDOW = timedelta(hours=72)
STORM_WINDOW = timedelta(minutes=30)
STORM_MIN_TICKETS = 5


@dataclass(frozen=True)
class RecentTicket:
    """An open ticket of the tenant from ``recent_tickets``: ``cosine`` to the new ticket in -1..1 (None when
    either has no embedding), ``created_at`` SDP's creation time (aware)."""

    ticket_id: str
    created_at: datetime
    cosine: float | None
    requester_id: str | None = None
    requester: str | None = None
    site: str | None = None
    display_id: str | None = None


@dataclass(frozen=True)
class Duplicate:
    """A possible duplicate: the other ticket, how long before the new one it was opened (seconds; negative
    when after), what they share ("same requester", "same site") and the cosine."""

    ticket_id: str
    display_id: str | None
    opened_before_s: float
    shared: tuple[str, ...]
    cosine: float | None


@dataclass(frozen=True)
class Findings:
    """What the comparison found: ``duplicates`` closest first (at most ``MAX_SHOWN``), ``storm`` the ids of
    the open tickets that look like this one within the storm window (empty: no storm), ``compared`` how many
    open tickets were looked at."""

    duplicates: tuple[Duplicate, ...] = ()
    storm: tuple[str, ...] = ()
    compared: int = 0
    storm_window_s: float = STORM_WINDOW.total_seconds()


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.strip().casefold() == b.strip().casefold()


def compare(*, created_at: datetime, requester_id: str | None, requester: str | None, site: str | None,
            recent: list[RecentTicket], storm_min_tickets: int = STORM_MIN_TICKETS,
            storm_window: timedelta = STORM_WINDOW) -> Findings:
    """Possible duplicates and a possible storm for a ticket opened at ``created_at`` by ``requester_id``
    (or, without an id, the requester's name) at ``site``, among ``recent`` (the tenant's open tickets of the
    window, the new ticket itself left out)."""
    duplicates = []
    storm = []
    for other in recent:
        shared = tuple(name for name, same in (
            ("same requester", _same(requester_id, other.requester_id) if requester_id and other.requester_id
             else _same(requester, other.requester)),
            ("same site", _same(site, other.site))) if same)
        cosine = other.cosine
        if cosine is not None and (cosine >= DUPLICATE_FLOOR or (shared and cosine >= RELATED_FLOOR)):
            duplicates.append(Duplicate(other.ticket_id, other.display_id,
                                        (created_at - other.created_at).total_seconds(), shared, round(cosine, 3)))
        if (cosine is not None and cosine >= STORM_FLOOR
                and timedelta(0) <= created_at - other.created_at <= storm_window):
            storm.append((other.created_at, other.ticket_id))
    duplicates.sort(key=lambda d: (-(d.cosine or 0.0), -len(d.shared), d.ticket_id))
    in_storm = tuple(t for _, t in sorted(storm)) if len(storm) + 1 >= storm_min_tickets else ()
    return Findings(tuple(duplicates[:MAX_SHOWN]), in_storm, len(recent), storm_window.total_seconds())


def ago(seconds: float) -> str:
    """"10 min ago", "3 h ago", "2 days ago"; "at the same time" under a minute; "later" when negative."""
    if seconds < 0:
        return "later"
    if seconds < 60:
        return "at the same time"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86_400 * 2:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86_400)} days ago"


def duplicate_lines(findings: Findings) -> list[str]:
    """The note's lines: "**Possible duplicate** of [#123], opened 10 min ago by the same requester." (ids as
    citations, ``enhancement.render.link_citations`` links them) and "**Possible major incident:** 7 open
    tickets in the last 30 min look like this one: [#1], [#2], ..."."""
    lines = []
    if findings.duplicates:
        parts = []
        for d in findings.duplicates:
            by = f" ({', '.join(d.shared)})" if d.shared else ""
            parts.append(f"[#{d.ticket_id}] opened {ago(d.opened_before_s)}{by}")
        lines.append("**Possible duplicate** of " + "; ".join(parts) + ".")
    if findings.storm:
        shown = ", ".join(f"[#{t}]" for t in findings.storm[-10:])
        more = f" and {len(findings.storm) - 10} more" if len(findings.storm) > 10 else ""
        lines.append(f"**Possible major incident:** {len(findings.storm) + 1} open tickets in "
                     f"{int(findings.storm_window_s // 60)} min look like this one: {shown}{more}.")
    return lines
