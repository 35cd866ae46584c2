"""Post a note at most once per ticket, across retries, re-executions and concurrent runs.

Three guards, in order, all under a per-ticket Postgres advisory lock so two runs cannot interleave:
1. the ``posted_notes`` ledger: a row means the ticket has its note;
2. the ticket's notes in SDP: a note carrying ``NOTE_MARKER`` means an earlier attempt posted it but did
   not live to record it (the ledger is then repaired);
3. only then ``POST /notes``, and the ledger row in the same transaction.

A failed attempt (429, 5xx, timeout) is retried after 2, 4 and 8 seconds, and every retry starts again at
guard 1, so a POST that timed out after SDP stored it is found by guard 2 instead of being sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import psycopg
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from enhancement_pipeline.enhancement.render import NOTE_MARKER
from enhancement_pipeline.models import Note
from enhancement_pipeline.servicedesk.client import SdpRateLimited, SdpServerError, ServiceDeskClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostResult:
    """``status``: posted now, already in the ledger, or found on the ticket (an earlier unrecorded post)."""

    status: Literal["posted", "already_posted", "found_on_ticket"]
    note_id: str
    attempts: int


def post_note_once(connect: Callable[[], AbstractContextManager[psycopg.Connection]], client: ServiceDeskClient,
                   note: Note, run_id: str | None, *, retry_waits_s: tuple[float, ...] = (2, 4, 8)) -> PostResult:
    """Post ``note`` on its ticket unless the ticket already has it. Raises the last ``SdpError`` when every
    attempt failed (the note is then not posted and a later re-execution can try again)."""
    attempts = 0

    def attempt() -> PostResult:
        nonlocal attempts
        attempts += 1
        with connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                         (f"note:{note.tenant_id}:{note.ticket_id}",))
            row = conn.execute("SELECT note_id FROM posted_notes WHERE tenant_id = %s AND ticket_id = %s",
                               (note.tenant_id, note.ticket_id)).fetchone()
            if row:
                return PostResult("already_posted", row[0], attempts)
            existing = next((n for n in client.list_notes(note.ticket_id)
                             if NOTE_MARKER in (n.get("description") or "")), None)
            if existing is not None:
                status, note_id = "found_on_ticket", str(existing.get("id"))
            else:
                status, note_id = "posted", str(client.add_note(note.ticket_id, note.html).get("id"))
            conn.execute(
                "INSERT INTO posted_notes (tenant_id, ticket_id, note_id, run_id, mode) VALUES (%s, %s, %s, %s, %s)",
                (note.tenant_id, note.ticket_id, note_id, run_id, note.mode),
            )
            return PostResult(status, note_id, attempts)

    waits = list(retry_waits_s)
    retrying = Retrying(
        stop=stop_after_attempt(len(waits) + 1),
        wait=lambda state: waits[min(state.attempt_number, len(waits)) - 1],
        retry=retry_if_exception_type((SdpRateLimited, SdpServerError)),
        before_sleep=lambda state: log.warning("posting note failed (attempt %d), retrying: %s",
                                               state.attempt_number, state.outcome.exception()),
        reraise=True,
    )
    return retrying(attempt)
