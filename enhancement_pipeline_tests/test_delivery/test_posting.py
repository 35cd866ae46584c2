"""At most one note per ticket when SDP is slow, half-broken or old: real Postgres ledger, the SDP simulator over
HTTP through the real client."""

from __future__ import annotations

import time

import pytest

from enhancement_pipeline.delivery.posting import NoteOutcomeUnknown, find_marked_note, post_note_once
from enhancement_pipeline.enhancement.render import NOTE_MARKER
from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.models import Note
from enhancement_pipeline.servicedesk.client import SdpRateLimited, ServiceDeskClient
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline_tests.conftest import SDP_KEY, TENANT

NOTES = r"POST /api/v3/requests/\d+/notes$"


@pytest.fixture
def ticket(db, sdp_state) -> str:
    return sdp_state.add_request(subject="VPN drops every 10 minutes", description="since Monday")["id"]


@pytest.fixture
def connect(database_url):
    return PostgresResource(database_url=database_url).connection


def client(sdp_server, timeout_s: float = 15.0) -> ServiceDeskClient:
    return ServiceDeskClient(sdp_server.url, SDP_KEY, timeout_s=timeout_s, backoff_base_s=0.01)


def note_for(ticket_id: str) -> Note:
    return Note(tenant_id=TENANT, ticket_id=ticket_id, markdown="x", html=f"<p>Try the fix.</p><p>{NOTE_MARKER}</p>",
                redacted_markdown="x", mode="deterministic", prompt_version="test")


def ledger(db, ticket_id: str):
    return db.execute("SELECT state, note_id FROM posted_notes WHERE ticket_id = %s", (ticket_id,)).fetchone()


def test_a_post_stored_but_answered_after_the_timeout_is_found_not_sent_again(ticket, connect, sdp_server,
                                                                             sdp_state, db):
    # SDP stores the note 1.5 s after the POST arrives and answers at 3 s; the client gives up at 1 s. The
    # first look at the ticket (right after the timeout) finds nothing yet: the attempt must keep looking.
    sdp_state.faults.append(Fault(match=NOTES, status=200, takes_effect_after_s=1.5, delay_s=3.0))
    with client(sdp_server, timeout_s=1.0) as c:
        result = post_note_once(connect, c, note_for(ticket), "run-1", confirm_deadline_s=10, confirm_poll_s=0.5)
    assert result.status == "found_on_ticket"
    time.sleep(2.0)  # past the simulator's late answer
    assert len(sdp_state.notes[ticket]) == 1
    assert ledger(db, ticket) == ("posted", sdp_state.notes[ticket][0]["id"])


def test_an_unknown_outcome_blocks_a_second_post_until_the_grace_period_ends(ticket, connect, sdp_server,
                                                                           sdp_state, db):
    # A 503 from SDP: the note was not stored, but nothing on our side can know that.
    sdp_state.faults.append(Fault(match=NOTES, status=503, sdp_code=4004, times=1))
    with client(sdp_server) as c:
        with pytest.raises(NoteOutcomeUnknown, match="no note on the ticket"):
            post_note_once(connect, c, note_for(ticket), "run-1", confirm_deadline_s=0.3, confirm_poll_s=0.1)
        assert ledger(db, ticket) == ("unknown", None)
        with pytest.raises(NoteOutcomeUnknown, match="not posting again"):
            post_note_once(connect, c, note_for(ticket), "run-2", unknown_grace_s=60)
        assert not sdp_state.notes[ticket]
        result = post_note_once(connect, c, note_for(ticket), "run-3", unknown_grace_s=0.0)
    assert result.status == "posted" and len(sdp_state.notes[ticket]) == 1
    assert ledger(db, ticket) == ("posted", result.note_id)


def test_a_worker_killed_after_sdp_stored_the_note_leaves_a_row_that_finds_it(ticket, connect, sdp_server,
                                                                            sdp_state, db):
    # What a SIGKILL between SDP's answer and the ledger write leaves: the 'unknown' row and the note in SDP.
    with client(sdp_server) as c:
        post_note_once(connect, c, note_for(ticket), "run-1")
        db.execute("UPDATE posted_notes SET state = 'unknown', note_id = NULL, attempted_at = now()")
        result = post_note_once(connect, c, note_for(ticket), "run-2")
    assert result.status == "found_on_ticket" and len(sdp_state.notes[ticket]) == 1


def test_a_refused_post_is_not_left_unknown(ticket, connect, sdp_server, sdp_state, db):
    sdp_state.faults.append(Fault(match=NOTES, status=429, sdp_code=4015, times=10))
    with client(sdp_server) as c, pytest.raises(SdpRateLimited):
        post_note_once(connect, c, note_for(ticket), "run-1")
    assert ledger(db, ticket) is None  # SDP said no: the next attempt posts without waiting


def test_notes_listed_without_description_are_still_recognised(ticket, connect, sdp_server, sdp_state, db):
    sdp_state.add_note(ticket, {"description": "<p>Called the user, waiting for a screenshot.</p>"})
    with client(sdp_server) as c:
        posted = post_note_once(connect, c, note_for(ticket), "run-1")
        sdp_state.notes_listed_without_description = True
        listed = c.list_notes(ticket)
        assert listed and all("description" not in n and n.get("content_url") for n in listed)
        assert find_marked_note(c, ticket) == posted.note_id
        db.execute("DELETE FROM posted_notes")  # the ledger lost: the marker must still be found
        again = post_note_once(connect, c, note_for(ticket), "run-2")
    assert again.status == "found_on_ticket" and len(sdp_state.notes[ticket]) == 2


def test_an_old_build_that_wants_request_note_gets_one_note(ticket, connect, sdp_server, sdp_state):
    sdp_state.note_wrapper = "request_note"
    with client(sdp_server) as c:
        result = post_note_once(connect, c, note_for(ticket), "run-1")
        assert result.status == "posted" and result.note_id == sdp_state.notes[ticket][0]["id"]
        assert post_note_once(connect, c, note_for(ticket), "run-2").status == "already_posted"
    assert len(sdp_state.notes[ticket]) == 1
    assert sdp_state.calls["POST /requests/{id}/notes"] == 2  # `note` refused, then `request_note`
