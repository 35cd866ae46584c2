"""Post a note at most once per ticket: across retries, re-executions, concurrent runs, killed run workers and
an SDP that stores a note but answers too late.

The ledger ``posted_notes`` has one row per ticket, in state ``posted`` (SDP's note id known) or ``unknown``
(a POST was sent and nobody knows whether SDP stored it: it timed out, SDP answered 5xx or a proxy's page, or
the worker died before recording the answer). Under a per-ticket Postgres advisory lock, an attempt:

1. stops at a ``posted`` row (``already_posted``);
2. looks for the pipeline's ``NOTE_MARKER`` among the ticket's notes, reading notes whose list row has no
   ``description`` one by one: an earlier attempt's note is taken as the note and the ledger repaired
   (``found_on_ticket``);
3. stops at an ``unknown`` row younger than ``UNKNOWN_GRACE_S``: SDP may still store that POST, so the attempt
   raises ``NoteOutcomeUnknown`` (retried later) instead of posting a second note;
4. otherwise writes the row as ``unknown`` (committed) *before* the POST, posts, and records ``posted``.

A POST that SDP cannot have acted on (429, a connection that never opened, a 4xxx validation answer) removes
the ``unknown`` row again and raises. One whose outcome is unknown is followed by looking for the marker every
``CONFIRM_POLL_S`` until ``CONFIRM_DEADLINE_S``: a late note is the note (``found_on_ticket``).

**When the answer stays unknown** the attempt raises ``NoteOutcomeUnknown``: the op's RetryPolicy, run retries
and the delivery sweep come back, and each repeats steps 1-3. Only when ``UNKNOWN_GRACE_S`` have passed since
the POST and the ticket still shows no marked note does an attempt post again: we then take it that SDP never
stored it, because the other choice is a ticket that never gets its note. A second note is possible only if
SDP stores a POST more than ``UNKNOWN_GRACE_S`` after it received it.

Why our own ledger and not a library: the guarantee spans two systems (SDP has no idempotency key on
``POST /notes``), so it needs exactly this check-then-act under a lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import psycopg

from enhancement_pipeline.enhancement.render import NOTE_MARKER
from enhancement_pipeline.models import Note
from enhancement_pipeline.servicedesk.client import SdpError, ServiceDeskClient, write_may_have_happened

log = logging.getLogger(__name__)

UNKNOWN_GRACE_S = 180.0
"""Seconds after a POST of unknown outcome during which nobody posts again (the note may still appear)."""
CONFIRM_DEADLINE_S = 45.0
"""Seconds an attempt whose POST outcome is unknown keeps looking for the note before it gives up."""
CONFIRM_POLL_S = 5.0


class NoteOutcomeUnknown(Exception):
    """A POST of this ticket's note may or may not have been stored by SDP, and the ticket does not show it
    yet. Transient: a later attempt finds the note, or posts once the grace period is over."""


@dataclass(frozen=True)
class PostResult:
    """``status``: posted now, already in the ledger, or found on the ticket (an earlier, unrecorded post)."""

    status: Literal["posted", "already_posted", "found_on_ticket"]
    note_id: str


def find_marked_note(client: ServiceDeskClient, ticket_id: str) -> str | None:
    """The id of the ticket's note that carries ``NOTE_MARKER`` (newest first), or None. Raises ``SdpError``."""
    for note in reversed(client.list_notes(ticket_id)):
        if NOTE_MARKER in client.note_description(ticket_id, note):
            return str(note.get("id"))
    return None


def post_note_once(connect: Callable[[], AbstractContextManager[psycopg.Connection]], client: ServiceDeskClient,
                   note: Note, run_id: str | None, *, confirm_deadline_s: float = CONFIRM_DEADLINE_S,
                   confirm_poll_s: float = CONFIRM_POLL_S, unknown_grace_s: float = UNKNOWN_GRACE_S) -> PostResult:
    """Post ``note`` on its ticket unless the ticket already has it (see the module docstring).

    Raises ``NoteOutcomeUnknown`` (retry later), or the ``SdpError`` of a POST that SDP did not act on.
    """
    key = f"note:{note.tenant_id}:{note.ticket_id}"
    with connect() as conn:
        conn.commit()
        conn.autocommit = True  # each ledger write below must be durable before the next SDP call
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        try:
            return _attempt(conn, client, note, run_id, confirm_deadline_s, confirm_poll_s, unknown_grace_s)
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
            finally:
                conn.autocommit = False  # the pool hands the connection on as it found it


def _attempt(conn: psycopg.Connection, client: ServiceDeskClient, note: Note, run_id: str | None,
             confirm_deadline_s: float, confirm_poll_s: float, unknown_grace_s: float) -> PostResult:
    ids = (note.tenant_id, note.ticket_id)
    row = conn.execute(
        "SELECT state, note_id, extract(epoch FROM now() - attempted_at), detail FROM posted_notes"
        " WHERE tenant_id = %s AND ticket_id = %s", ids).fetchone()
    if row and row[0] == "posted":
        return PostResult("already_posted", row[1])
    found = find_marked_note(client, note.ticket_id)
    if found is not None:
        _record_posted(conn, note, found, run_id)
        return PostResult("found_on_ticket", found)
    if row and row[2] is not None and row[2] < unknown_grace_s:
        raise NoteOutcomeUnknown(
            f"a POST {row[2]:.0f} s ago ({row[3] or 'outcome unknown'}) may still be stored by SDP, and the ticket "
            f"shows no note yet; not posting again until {unknown_grace_s:.0f} s have passed")

    conn.execute(
        "INSERT INTO posted_notes (tenant_id, ticket_id, note_id, run_id, mode, state, attempted_at, detail)"
        " VALUES (%s, %s, NULL, %s, %s, 'unknown', now(), 'POST sent, no answer recorded')"
        " ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET state = 'unknown', note_id = NULL, attempted_at = now(),"
        " run_id = excluded.run_id, mode = excluded.mode, detail = excluded.detail", (*ids, run_id, note.mode))
    try:
        created = client.add_note(note.ticket_id, note.html)
    except SdpError as exc:
        if not write_may_have_happened(exc):
            conn.execute("DELETE FROM posted_notes WHERE tenant_id = %s AND ticket_id = %s AND state = 'unknown'",
                         ids)
            raise
        detail = f"POST answered {type(exc).__name__}: {exc}"[:300]
        conn.execute("UPDATE posted_notes SET detail = %s WHERE tenant_id = %s AND ticket_id = %s",
                     (detail, *ids))
        log.warning("note POST on ticket %s: outcome unknown (%s); looking for it on the ticket", note.ticket_id, exc)
        found = _wait_for_marked_note(client, note.ticket_id, confirm_deadline_s, confirm_poll_s)
        if found is None:
            raise NoteOutcomeUnknown(f"{detail}; no note on the ticket after {confirm_deadline_s:.0f} s") from exc
        _record_posted(conn, note, found, run_id)
        return PostResult("found_on_ticket", found)
    note_id = str(created.get("id") or "")
    _record_posted(conn, note, note_id, run_id)
    return PostResult("posted", note_id)


def _wait_for_marked_note(client: ServiceDeskClient, ticket_id: str, deadline_s: float, poll_s: float) -> str | None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            found = find_marked_note(client, ticket_id)
        except SdpError as exc:  # SDP still struggling: keep looking until the deadline
            log.warning("looking for the note on ticket %s: %s", ticket_id, exc)
            found = None
        if found is not None or time.monotonic() + poll_s > deadline:
            return found
        time.sleep(poll_s)


def _record_posted(conn: psycopg.Connection, note: Note, note_id: str, run_id: str | None) -> None:
    conn.execute(
        "INSERT INTO posted_notes (tenant_id, ticket_id, note_id, run_id, mode, state, detail, ticket_created_at,"
        " model, fallback_reason, prompt_tokens, completion_tokens, cost_usd)"
        " VALUES (%s, %s, %s, %s, %s, 'posted', NULL, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET state = 'posted', note_id = excluded.note_id,"
        " run_id = excluded.run_id, mode = excluded.mode, detail = NULL, posted_at = now(),"
        " ticket_created_at = excluded.ticket_created_at, model = excluded.model,"
        " fallback_reason = excluded.fallback_reason, prompt_tokens = excluded.prompt_tokens,"
        " completion_tokens = excluded.completion_tokens, cost_usd = excluded.cost_usd",
        (note.tenant_id, note.ticket_id, note_id, run_id, note.mode, note.ticket_created_at, note.model,
         note.fallback_reason, note.prompt_tokens, note.completion_tokens, note.cost_usd))
