"""Posting a vague ticket's questions to its requester (a tenant's ``notes.ask_requester``), at most once.

SDP's v3 API has no documented "reply to the requester" call; a note with ``show_to_requester: true``
(``POST /api/v3/requests/{id}/notes``, documented with that field) is what the requester sees in the self-service
portal and, where the service desk notifies requesters of such notes, by e-mail. The message is friendly,
names only what the requester wrote (the subject) and the questions, and carries ``QUESTIONS_MARKER`` so that a
person reading the ticket knows where it came from.

At most once per ticket, across retries and concurrent runs: ``ask_once`` claims the ticket in
``requester_questions`` (sql/0013) before the POST. A POST that SDP refused gives the claim back (a later run may
ask); one whose outcome is unknown (a timeout, a 5xx) keeps it as ``unknown`` and is never sent again: asking a
requester twice is worse than not asking.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

from enhancement_pipeline.servicedesk.client import SdpError, ServiceDeskClient, write_may_have_happened

QUESTIONS_MARKER = "Sent by the service desk's ticket assistant"


def requester_message(subject: str, questions: list[str]) -> str:
    """The HTML the requester sees: a greeting, the questions as a numbered list, how to answer, the marker."""
    items = "".join(f"<li>{html.escape(q)}</li>" for q in questions)
    return (f"<p>Hello,</p><p>Thank you for your request &ldquo;{html.escape(subject)}&rdquo;. So that we can help "
            f"you quickly, could you tell us:</p><ol>{items}</ol><p>You can simply reply to this message.</p>"
            f"<p><em>{QUESTIONS_MARKER}.</em></p>")


@dataclass(frozen=True)
class Asked:
    """The outcome: ``status`` "asked" (``note_id`` set), "already" (an earlier run asked, or may have),
    "refused" (SDP refused the POST; nothing stored, a later run may ask) or "unknown" (SDP may have stored it;
    never sent again); ``detail`` says more."""

    status: str
    note_id: str | None = None
    detail: str = ""


def ask_once(connect: Callable[[], AbstractContextManager[psycopg.Connection]], client: ServiceDeskClient,
             tenant_id: str, ticket_id: str, subject: str, questions: list[str], run_id: str | None) -> Asked:
    """Post the questions on the ticket for its requester unless the ticket was asked before. Never raises an
    ``SdpError``; raises ``psycopg.Error`` when the ledger cannot be read (nothing is posted then)."""
    ids = (tenant_id, ticket_id)
    with connect() as conn:
        claimed = conn.execute(
            "INSERT INTO requester_questions (tenant_id, ticket_id, state, run_id, questions) VALUES "
            "(%s, %s, 'sending', %s, %s) ON CONFLICT (tenant_id, ticket_id) DO NOTHING RETURNING ticket_id",
            (*ids, run_id, len(questions))).fetchone()
        if claimed is None:
            row = conn.execute("SELECT state, note_id FROM requester_questions WHERE tenant_id = %s AND "
                               "ticket_id = %s", ids).fetchone()
            if row is None:  # another run's refused POST gave the claim back just now: it may ask again later
                return Asked("already", None, "another run was asking at the same moment")
            return Asked("already", row[1], f"asked before ({row[0]})")
    try:
        created = client.add_note(ticket_id, requester_message(subject, questions), show_to_requester=True)
    except SdpError as exc:
        detail = f"{type(exc).__name__}: {exc}"[:300]
        with connect() as conn:
            if not write_may_have_happened(exc):
                conn.execute("DELETE FROM requester_questions WHERE tenant_id = %s AND ticket_id = %s AND state = "
                             "'sending'", ids)
                return Asked("refused", None, detail)
            conn.execute("UPDATE requester_questions SET state = 'unknown', detail = %s WHERE tenant_id = %s AND "
                         "ticket_id = %s", (detail, *ids))
        return Asked("unknown", None, detail)
    note_id = str(created.get("id") or "")
    with connect() as conn:
        conn.execute("UPDATE requester_questions SET state = 'sent', note_id = %s WHERE tenant_id = %s AND "
                     "ticket_id = %s", (note_id, *ids))
    return Asked("asked", note_id)
