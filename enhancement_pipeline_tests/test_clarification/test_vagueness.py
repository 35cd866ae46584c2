"""A vague ticket gets questions for the requester at the top of its note (issue 15, item 1)."""

from __future__ import annotations

import pytest

from enhancement_pipeline.clarification.questions import MAX_QUESTIONS, MIN_QUESTIONS, QUESTIONS, questions_for
from enhancement_pipeline.clarification.vagueness import assess
from enhancement_pipeline.servicedesk.payloads import html_to_text
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import output_of, run_enhance, step_metadata


@pytest.mark.parametrize("subject, description", [
    ("Outlook broken", ""),
    ("help", "pls help asap!!!\n\nThanks,\nBob\nSent from my iPhone"),
    ("Printer", "It is not working. Please help asap. Thanks, Bob"),
    ("Issue", "Hi team, we have an issue again, please check urgently. Regards"),
    ("Error", "Getting an error, can you look at it? Thanks"),
    ("Problem with system", "The system has a problem again since today, please fix it."),
    ("Outlook", "It's broken and I'm annoyed. Help"),  # apostrophes are no quoted error message
    ("Laptop", "following up on my laptop issue"),  # "following" is no evidence
])
def test_tickets_nobody_could_start_on_are_vague(subject, description):
    verdict = assess(subject, description)
    assert verdict.vague, verdict


@pytest.mark.parametrize("subject, description", [
    ("Outlook keeps asking for my password", "Since this morning Outlook prompts for my password every few minutes."),
    ("My laptop won't turn on", ""),
    ("VPN", "VPN disconnects every 10 minutes since the update yesterday, error 809"),
    ("Shared mailbox", "Please add jane.doe@contoso.example to the Finance shared mailbox."),
    ("Cannot print", 'Printing to PRN-FL2-01 fails with "Error - printing" on all our PCs since Monday.'),
    ("Event 7009", "Exchange transport service times out at start (event ID 7009) on EXCH01, log attached."),
])
def test_tickets_a_technician_can_start_on_are_not(subject, description):
    verdict = assess(subject, description)
    assert not verdict.vague, verdict


def test_the_questions_follow_what_the_ticket_leaves_out():
    verdict = assess("Outlook broken", "")
    questions = questions_for(verdict)
    assert "system" in verdict.present and "symptom" in verdict.missing
    assert questions[0] == QUESTIONS["symptom"] and QUESTIONS["system"] not in questions
    assert MIN_QUESTIONS <= len(questions) <= MAX_QUESTIONS
    assert len(questions_for(assess("help", ""))) == MAX_QUESTIONS
    assert questions_for(assess("VPN", "VPN disconnects every 10 minutes since the update, error 809")) == []


def test_a_vague_ticket_gets_its_questions_at_the_top_of_the_note(db, sdp_state, resources):
    vague = sdp_state.add_request(subject="Outlook broken", description="<p>Please help!!</p><p>Thanks, Bob</p>",
                                  requester="Bob Ray")["id"]
    result = run_enhance(resources, TENANT, vague)
    assert result.success
    note = output_of(result, "synthesize_note")
    assert note.vague_reason and len(note.questions) >= MIN_QUESTIONS
    posted = html_to_text(sdp_state.notes[vague][0]["description"])
    assert "Too vague to act on yet" in posted and QUESTIONS["symptom"] in posted
    meta = step_metadata(result, "synthesize_note")
    assert meta["vague"] == note.vague_reason and meta["questions"] == len(note.questions)

    specific = sdp_state.add_request(subject="VPN drops every 10 minutes",
                                     description="<p>Since yesterday's update the VPN client disconnects with error "
                                                 "809 every 10 minutes.</p>")["id"]
    note = output_of(run_enhance(resources, TENANT, specific), "synthesize_note")
    assert note.vague_reason is None and note.questions == []
    assert "Too vague" not in html_to_text(sdp_state.notes[specific][0]["description"])
