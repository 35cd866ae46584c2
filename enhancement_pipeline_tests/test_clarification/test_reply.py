"""The note's "Suggested reply to the requester" (issue 15, item 2): the model drafts it in the tenant's tone; any
sentence with something internal, a template gap or a promise is taken out before the technician sees it."""

from __future__ import annotations

import json

import pytest

from enhancement_pipeline.clarification.reply import REPLY_TITLE, clean_reply
from enhancement_pipeline.enhancement.policy import TenantNotePolicy
from enhancement_pipeline.local.datasets import demo_split
from enhancement_pipeline_tests.conftest import TENANT, replace_resource
from enhancement_pipeline_tests.helpers import open_ticket, output_of, run_enhance, step_metadata


@pytest.mark.parametrize("sentence, reason", [
    ("We restarted EXCH01 for you.", "reply_internal"),
    ("The server at 10.20.30.40 was rebooted.", "reply_internal"),
    ("This looks like ticket #6101 from last week.", "reply_internal"),
    ("See https://intranet.contoso.example/kb/42 for details.", "reply_internal"),
    ("Please write to helpdesk@contoso.example.", "reply_internal"),
    ("Your laptop [HOST_1] needs an update.", "reply_internal"),
    ("Best regards, [Your Name]", "reply_placeholder"),
    ("We will call you on {date}.", "reply_placeholder"),
    ("It will be fixed within 2 hours.", "reply_promise"),
    ("We guarantee it works by tomorrow.", "reply_promise"),
])
def test_a_sentence_the_requester_must_not_get_goes(sentence, reason):
    text, removed = clean_reply(f"Hi Sam, thanks for reporting this problem with Outlook. {sentence}")
    assert removed == {reason: 1}
    assert text == "Hi Sam, thanks for reporting this problem with Outlook."


def test_the_requesters_own_name_stays_and_a_bare_greeting_is_no_reply():
    text, removed = clean_reply("Dear [PERSON_1], thank you for your message about the printer. We are checking "
                                "the print queue now.")
    assert "[PERSON_1]" in text and not removed
    assert clean_reply("Hello! Kind regards.")[0] is None
    assert clean_reply("Hi Sam, we restarted SRV-FS01.", hostnames=["SRV-FS01"])[0] is None


def _drafting(resources, tone: str):
    notes = replace_resource(resources["notes"], policies=[TenantNotePolicy(tenant_id=TENANT, reply_draft=tone)])
    return {**resources, "notes": notes}


def test_the_model_drafts_a_reply_in_the_tenants_tone(db, sdp_state, llm_state, resources):
    ticket = open_ticket(sdp_state, demo_split()[1][5])
    result = run_enhance(_drafting(resources, "formal"), TENANT, ticket)
    assert result.success
    note = output_of(result, "synthesize_note")
    assert note.mode == "llm" and note.reply_draft and note.reply_draft.startswith("Hello, thank you")
    assert f"### {REPLY_TITLE}" in note.markdown and step_metadata(result, "synthesize_note")["reply_draft"] == "yes"
    request = llm_state.requests[-1]
    assert "reply_to_requester" in request["response_format"]["json_schema"]["schema"]["properties"]
    system = request["messages"][0]["content"]
    assert "reply_to_requester" in system and "formal and courteous" in system

    plain = output_of(run_enhance(resources, TENANT, open_ticket(sdp_state, demo_split()[1][5])), "synthesize_note")
    assert plain.reply_draft is None and REPLY_TITLE not in plain.markdown
    assert "reply_to_requester" not in llm_state.requests[-1]["response_format"]["json_schema"]["schema"]["properties"]


def test_a_careless_draft_loses_what_it_must_not_say(db, sdp_state, llm_state, resources):
    answer = {"next_steps": [{"step": "Check the mailbox's permissions.", "relies_on": []}],
              "reply_to_requester": "Hi, thanks for telling us that Outlook keeps asking for your password. "
                                    "We restarted EXCH01 at 10.10.10.1 for you. It will be fixed within 2 hours. "
                                    "If it happens again, please reply with the exact message. Regards, [Your Name]"}
    llm_state.faults.append({"content": json.dumps(answer)})
    ticket = open_ticket(sdp_state, demo_split()[1][5])
    note = output_of(run_enhance(_drafting(resources, "friendly"), TENANT, ticket), "synthesize_note")
    assert note.reply_draft == ("Hi, thanks for telling us that Outlook keeps asking for your password. If it "
                                "happens again, please reply with the exact message.")
    assert note.removed["reply_internal"] == 1 and note.removed["reply_promise"] == 1
    assert note.removed["reply_placeholder"] == 1
    assert "EXCH01" not in note.markdown.split(REPLY_TITLE)[1]


def test_an_unquoted_off_in_the_tenants_file_means_off(tmp_path):
    from enhancement_pipeline.tenants import load_tenants_file

    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - tenant_id: acme\n    sdp: {base_url: 'https://sdp.example'}\n"
                    "    kb: {base_url: 'https://kb.example'}\n    notes: {reply_draft: off}\n")
    tenant, = load_tenants_file(path)  # YAML reads the bare word as false
    assert tenant.notes.reply_draft == "off"
    assert TenantNotePolicy.for_tenant(tenant).reply_draft == "off"
