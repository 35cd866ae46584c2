"""Canaries: personal data and secrets planted in a ticket and in the history never reach the model provider,
Dagster's event log or any log; the posted note gets personal data back, never a secret."""

from __future__ import annotations

import dataclasses
import html
import json
import logging

import dagster as dg
import pytest

from enhancement_pipeline.enhancement.policy import TenantNotePolicy
from enhancement_pipeline.local.datasets import IP_TICKET_ARTICLES, demo_split
from enhancement_pipeline.servicedesk.payloads import html_to_text
from enhancement_pipeline_tests.conftest import TENANT, replace_resource
from enhancement_pipeline_tests.helpers import import_history, run_enhance

REQUESTER, TECHNICIAN = "Dana Scully", "Fox Mulder"
TICKET_CANARIES = {
    "requester": REQUESTER, "requester surname": "Scully", "technician": TECHNICIAN,
    "e-mail": "dana.scully@contoso.example", "phone": "+1 415 555 2671",
    "password": "Welcome2024!", "GitHub token": "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "connection-string password": "P@ssw0rd!42", "URL password": "Tr0ub4dor",
}
HISTORY_CANARIES = {"history e-mail": "mail-admin@contoso.example", "history password": "Autumn2026!x"}
SECRETS = ("Welcome2024!", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "P@ssw0rd!42", "Tr0ub4dor", "Autumn2026!x")
PLANTED_RESOLUTION = ("Reset the mailbox password to Autumn2026!x and asked mail-admin@contoso.example to confirm. ")
PLANTED_DESCRIPTION = f"""Hi Fox,
my Outlook stopped syncing this morning. The old password is Welcome2024! and our token is
ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789. The CRM uses Server=sql01;Database=crm;User Id=svc;Password=P@ssw0rd!42;
and the backup postgresql://backup:Tr0ub4dor@db.contoso.example/crm.
Call me on +1 415 555 2671 or write to dana.scully@contoso.example.
Regards,
{REQUESTER}
"""


def _everything_logged(instance: dg.DagsterInstance, run_id: str) -> str:
    """The run's event log and run record as stored."""
    run = instance.get_run_by_id(run_id)
    return "\n".join([dg.serialize_value(run), *(dg.serialize_value(e) for e in instance.all_logs(run_id))])


@pytest.fixture
def planted(db, sdp_state, resources, tenant):
    """History with one resolution carrying canaries; a new ticket on the same problem carrying more."""
    history, _ = demo_split()
    history = history[:80]
    base = history[0]
    history[0] = dataclasses.replace(
        base, resolution_html=f"<p>{html.escape(PLANTED_RESOLUTION)}</p>" + (base.resolution_html or ""))
    import_history(sdp_state, resources, tenant, history)
    description = "".join(f"<p>{html.escape(line)}</p>" for line in PLANTED_DESCRIPTION.splitlines())
    ticket_id = sdp_state.add_request(subject=f"{base.subject} - {REQUESTER}",
                                      description=description + base.description_html, requester=REQUESTER,
                                      requester_email=TICKET_CANARIES["e-mail"], technician=TECHNICIAN)["id"]
    return ticket_id


def test_canaries_reach_no_model_no_event_log_and_no_log(planted, sdp_state, llm_state, resources, caplog, capfd):
    caplog.set_level(logging.DEBUG)  # every logger, every level: openai's debug log prints request bodies
    instance = dg.DagsterInstance.ephemeral()
    result = run_enhance(resources, TENANT, planted, instance)
    assert result.success
    note = result.output_for_node("synthesize_note")
    assert note.mode == "llm" and note.redactions["SECRET"] >= 5 and note.removed_total == 0

    traffic = json.dumps(llm_state.requests, ensure_ascii=False)
    event_log = _everything_logged(instance, result.run_id)
    out, err = capfd.readouterr()
    places = {"model traffic": traffic, "event log": event_log, "python logs": caplog.text, "stdout/stderr": out + err}
    # The checks can see text: the model's traffic holds placeholders; the logs hold the KB search's URL with
    # the ticket's words in it (httpx logs every request line).
    assert "[PERSON_" in traffic and "[SECRET_" in traffic and "articles/search?query=" in caplog.text
    leaks = [f"{name} in {place}" for place, text in places.items()
             for name, value in {**TICKET_CANARIES, **HISTORY_CANARIES}.items() if value in text]
    assert not leaks, leaks

    # The posted note: the history's e-mail address back where the model quoted it, its password withheld.
    posted = html_to_text(sdp_state.notes[planted][0]["description"])
    assert "asked mail-admin@contoso.example to confirm" in posted
    assert "password to [secret withheld]" in posted
    assert not [s for s in SECRETS if s in posted]
    assert "[SECRET_" not in posted and "[EMAIL_" not in posted


def test_a_tenant_can_keep_ip_addresses_from_the_model(db, sdp_state, llm_state, resources, tenant):
    history, new = demo_split()
    import_history(sdp_state, resources, tenant, history[:80])
    article = next(t for t in new if t.article_id == IP_TICKET_ARTICLES[2])  # names 192.168.0.12 (CD-EXCH01)
    ticket_id = sdp_state.add_request(subject=article.subject, description=article.description_html)["id"]
    strict = replace_resource(resources["notes"], policies=[TenantNotePolicy(
        tenant_id=TENANT, keep_ip_addresses=False, keep_hostnames=False)])
    result = run_enhance({**resources, "notes": strict}, TENANT, ticket_id)
    assert result.success
    traffic = json.dumps(llm_state.requests)
    assert "192.168.0.12" not in traffic and "CD-EXCH01" not in traffic and "[IP_1]" in traffic
    posted = html_to_text(sdp_state.notes[ticket_id][0]["description"])
    assert "192.168.0.12" in posted and "CD-EXCH01" in posted  # the technician sees them
