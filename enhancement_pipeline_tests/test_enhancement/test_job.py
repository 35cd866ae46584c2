"""enhance_ticket end to end: real Postgres and Redis, SDP, KB and LLM simulators over HTTP."""

from __future__ import annotations

import html
import json

import dagster as dg
import pytest

from enhancement_pipeline.enhancement.render import NOTE_MARKER
from enhancement_pipeline.knowledge.client import KbEndpoint
from enhancement_pipeline.local.datasets import IP_TICKET_ARTICLES, demo_split
from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.servicedesk.payloads import html_to_text
from enhancement_pipeline_tests.conftest import TENANT, replace_resource
from enhancement_pipeline_tests.helpers import (
    LOOKUPS,
    import_history,
    open_ticket,
    output_of,
    run_enhance,
    step_metadata,
)


@pytest.fixture
def world(db, sdp_state, resources, tenant):
    """300 resolved real tickets imported through the ticket_history asset, the inventory loaded, and the
    held-out tickets ready to open."""
    history, new = demo_split()
    history = history[:300]
    ids = import_history(sdp_state, resources, tenant, history)
    return {"history": history, "history_ids": ids, "new": new}


def run_job(resources, ticket_id, instance=None):
    return run_enhance(resources, TENANT, ticket_id, instance)


def _output(result, op):
    return output_of(result, op)


def test_history_import_lands_every_resolved_ticket(world, db):
    count, with_resolution = db.execute(
        "SELECT count(*), count(resolution) FROM ticket_history WHERE tenant_id = %s", (TENANT,)).fetchone()
    assert count == len(world["history"]) == with_resolution
    source, = db.execute("SELECT DISTINCT source FROM ticket_history").fetchone()
    assert source == "bulk_import"


def test_ip_ticket_gets_one_cited_llm_note(world, sdp_state, llm_state, resources, db):
    article = next(t for t in world["new"] if t.article_id == IP_TICKET_ARTICLES[2])  # event 7009, 192.168.0.12
    ticket_id = open_ticket(sdp_state, article)
    result = run_job(resources, ticket_id)
    assert result.success

    inventory = _output(result, "inventory_lookup")
    assert "192.168.0.12" in inventory.ips_found
    assert {s.hostname for s in inventory.items} >= {"CD-EXCH01"}
    similar = _output(result, "similar_tickets")
    assert similar.items and similar.error is None
    kb = _output(result, "knowledge_articles")
    assert kb.items[0].article_id == article.article_id  # the KB holds the article the ticket came from

    note = _output(result, "synthesize_note")
    assert note.mode == "llm" and note.model == "sim/model"
    assert note.removed == {} and note.word_count <= 500  # an obedient model's note is grounded as written
    notes = sdp_state.notes[ticket_id]
    assert len(notes) == 1
    posted = notes[0]
    assert posted["show_to_requester"] is False
    text = html_to_text(posted["description"])
    assert NOTE_MARKER in text
    assert f"#{similar.items[0].ticket_id}" in text and f"KB:{kb.items[0].article_id}" in text
    assert "CD-EXCH01" in text
    # Citations link to the similar ticket's SDP page and to the article.
    request_url = resources["sdp"].request_url(TENANT, similar.items[0].ticket_id)
    assert f'<a href="{html.escape(request_url)}" rel="noopener noreferrer">#{similar.items[0].ticket_id}</a>' \
        in posted["description"]
    assert f'href="{kb.items[0].url}"' in posted["description"]
    # The model saw the ticket and the context, delimited as data.
    sent = llm_state.requests[-1]["messages"][1]["content"]
    assert "<ticket>" in sent and "<context>" in sent and "192.168.0.12" in sent
    ledger = db.execute("SELECT note_id, mode FROM posted_notes WHERE ticket_id = %s", (ticket_id,)).fetchone()
    assert ledger == (posted["id"], "llm")


def test_without_llm_key_the_note_is_deterministic_and_says_so(world, sdp_state, llm_state, resources):
    resources = {**resources, "llm": replace_resource(resources["llm"], api_key_env="NO_SUCH_KEY_VAR")}
    ticket_id = open_ticket(sdp_state, world["new"][10])
    result = run_job(resources, ticket_id)
    assert result.success
    note = _output(result, "synthesize_note")
    assert note.mode == "deterministic" and note.fallback_reason == "no LLM key configured"
    assert not llm_state.requests
    text = html_to_text(sdp_state.notes[ticket_id][0]["description"])
    assert "Composed without a language model" in text
    for title in ("Similar resolved tickets", "Knowledge base articles", "Systems involved", "Recommended next steps"):
        assert title in text


def test_llm_failure_falls_back_to_deterministic_note(world, sdp_state, llm_state, resources):
    resources = {**resources, "llm": replace_resource(resources["llm"], retry_waits_s=[])}
    llm_state.faults.append({"status": 500})
    ticket_id = open_ticket(sdp_state, world["new"][11])
    result = run_job(resources, ticket_id)
    assert result.success
    note = _output(result, "synthesize_note")
    assert note.mode == "deterministic" and "InternalServerError" in note.fallback_reason
    assert len(sdp_state.notes[ticket_id]) == 1


def test_context_ops_degrade_instead_of_failing_the_run(world, sdp_state, llm_state, resources):
    broken = {**resources,
              "kb": replace_resource(resources["kb"], endpoints=[KbEndpoint(tenant_id=TENANT,
                                                                            base_url="http://127.0.0.1:9")]),
              "postgres": replace_resource(resources["postgres"], connect_timeout_s=1.0,
                                           database_url=resources["postgres"].database_url + "_missing")}
    ticket_id = open_ticket(sdp_state, world["new"][0])
    result = run_job(broken, ticket_id)
    # Postgres is down for the lookups *and* the ledger: the context ops degrade, posting fails loudly.
    for op in ("similar_tickets", "knowledge_articles", "inventory_lookup"):
        section = _output(result, op)
        assert section.items == [] and section.error
    # Nothing to say: one line naming what failed, and no model call to pad it out.
    note = _output(result, "synthesize_note")
    assert not llm_state.requests and note.mode == "deterministic"
    body = note.markdown.split("\n\n---")[0]
    assert "\n" not in body and "Failed: similar-ticket search" in body and "inventory lookup" in body
    assert not result.success and not sdp_state.notes[ticket_id]

    only_kb_down = {**resources, "kb": broken["kb"]}
    result = run_job(only_kb_down, ticket_id)
    assert result.success
    assert _output(result, "knowledge_articles").error
    # The model is told which lookup was unavailable rather than shown a silently empty section.
    sent = llm_state.requests[-1]["messages"][1]["content"]
    context = json.loads(sent.split("<context>", 1)[1].split("</context>", 1)[0])
    assert set(context["unavailable"]) == {"knowledge_articles"}
    assert len(sdp_state.notes[ticket_id]) == 1


def test_a_ticket_gets_at_most_one_note(world, sdp_state, resources, db):
    ticket_id = open_ticket(sdp_state, world["new"][12])
    instance = dg.DagsterInstance.ephemeral()
    first = run_job(resources, ticket_id, instance)
    second = run_job(resources, ticket_id, instance)  # a re-execution, or a duplicate launch
    assert first.success and second.success
    assert len(sdp_state.notes[ticket_id]) == 1
    assert second.output_for_node("post_note") is None
    assert step_metadata(second, "post_note")["status"] == "already_posted"

    # The ledger lost (say, restored from an old backup): the note on the ticket is found, not posted again.
    db.execute("DELETE FROM posted_notes WHERE ticket_id = %s", (ticket_id,))
    third = run_job(resources, ticket_id, instance)
    assert third.success and len(sdp_state.notes[ticket_id]) == 1
    assert step_metadata(third, "post_note")["status"] == "found_on_ticket"


def test_posting_retries_a_rate_limited_post(world, sdp_state, resources):
    ticket_id = open_ticket(sdp_state, world["new"][13])
    sdp_state.faults.append(Fault(match=r"POST /api/v3/requests/\d+/notes", status=429, sdp_code=4015, times=2))
    result = run_job(resources, ticket_id)
    assert result.success
    assert len(sdp_state.notes[ticket_id]) == 1


def test_the_three_lookups_run_at_once(world, sdp_state, kb_index, resources):
    """With a slow KB, the similar-ticket search and the inventory lookup run while it waits: each lookup's time
    window (``started_after_ms`` .. + ``ms``, from its output's metadata) overlaps the others'."""
    article = next(t for t in world["new"] if t.article_id == IP_TICKET_ARTICLES[2])  # names an inventory IP
    ticket_id = open_ticket(sdp_state, article)
    kb_index.latency_s = 1.0
    try:
        result = run_job(resources, ticket_id)
    finally:
        kb_index.latency_s = 0.0
    assert result.success
    windows = {}
    for name in LOOKUPS:
        meta = step_metadata(result, name)
        assert meta["error"] == "" and meta["count"] > 0, (name, meta)
        windows[name] = (meta["started_after_ms"], meta["started_after_ms"] + meta["ms"])
    kb_start, kb_end = windows["knowledge_articles"]
    assert kb_end - kb_start >= 1000
    for name in ("similar_tickets", "inventory_lookup"):
        start, end = windows[name]
        assert start < kb_end and kb_start < end, (name, windows)  # overlapping, not one after the other


def test_the_note_opens_with_triage_from_labels_the_taxonomy_knows(world, sdp_state, resources, db):
    from datetime import UTC, datetime

    from enhancement_pipeline.triage.classify import LABEL_FIELDS
    from enhancement_pipeline.triage.taxonomy import Category, Taxonomy
    from enhancement_pipeline.triage.taxonomy_store import save_taxonomy

    # A ticket like the history's: its neighbours carry the history's categories (the articles' product areas).
    ticket = world["history"][0]
    ticket_id = open_ticket(sdp_state, ticket)
    result = run_job(resources, ticket_id)
    triage = _output(result, "suggest_triage")
    assert [f.field for f in triage.fields] == list(LABEL_FIELDS)
    assert triage.taxonomy.startswith("none")  # never materialized: the history's labels are allowed
    category = triage.get("category")
    history_categories = {t.category for t in world["history"]}
    assert category.label in history_categories, category
    note = _output(result, "synthesize_note")
    assert note.markdown.startswith(f"**Suggested triage:** Category {category.label} (")
    assert step_metadata(result, "suggest_triage")["category"].startswith(category.label)

    # The tenant's SDP no longer has that category: it is never suggested, whatever the history says.
    others = sorted(c for c in history_categories - {category.label} if c)
    save_taxonomy(db, TENANT, Taxonomy(fetched_at=datetime.now(UTC),
                                       categories=[Category(id=str(i), name=n) for i, n in enumerate(others)]))
    second = open_ticket(sdp_state, ticket)
    triage = _output(run_job(resources, second), "suggest_triage")
    assert triage.taxonomy.startswith("sdp_taxonomy of ")
    assert triage.get("category").label != category.label
    assert triage.get("category").label in (None, *others)


def test_a_ticket_like_an_open_one_is_a_possible_duplicate_and_three_make_a_storm(world, sdp_state, resources, db):
    from enhancement_pipeline.enhancement.policy import TenantNotePolicy

    notes = replace_resource(resources["notes"], policies=[TenantNotePolicy(tenant_id=TENANT,
                                                                            triage_storm_min_tickets=3)])
    alike = {**resources, "notes": notes}
    outage = world["new"][2]
    first = open_ticket(sdp_state, outage)
    triage = _output(run_job(alike, first), "suggest_triage")
    assert triage.related_error is None and triage.related.duplicates == () and triage.related.storm == ()

    second = open_ticket(sdp_state, outage)  # the same requester writes again
    result = run_job(alike, second)
    triage = _output(result, "suggest_triage")
    assert [d.ticket_id for d in triage.related.duplicates] == [first]
    assert triage.related.duplicates[0].shared == ("same requester",)
    note = _output(result, "synthesize_note")
    assert f"**Possible duplicate** of [#{first}](" in note.markdown
    assert f"woID={first}" in note.html  # linked to the request's page in SDP
    assert "Possible major incident" not in note.markdown

    third = open_ticket(sdp_state, outage)
    result = run_job(alike, third)
    triage = _output(result, "suggest_triage")
    assert triage.related.storm == (first, second)
    assert "**Possible major incident:** 3 open tickets in 30 min look like this one" in \
        _output(result, "synthesize_note").markdown
    assert step_metadata(result, "suggest_triage")["possible_major_incident"].startswith("3 tickets")

    # A resolved ticket is no longer open: once the first is in ticket_history, it is not offered.
    db.execute("INSERT INTO ticket_history (tenant_id, ticket_id, subject, description, resolution, resolved_at, "
               "source) VALUES (%s, %s, 's', 'd', 'fixed', now(), 'sensor_resolved')", (TENANT, first))
    triage = _output(run_job(alike, third), "suggest_triage")
    assert first not in [d.ticket_id for d in triage.related.duplicates] and first not in triage.related.storm


def test_the_calibration_asset_fits_the_tenants_curve_and_runs_use_it(world, sdp_state, resources, tenant, db):
    from enhancement_pipeline.triage.assets import build_triage_calibration
    from enhancement_pipeline.triage.calibration_store import load_calibration

    result = dg.materialize([build_triage_calibration(tenant)], resources=resources)
    meta = result.asset_materializations_for_node(f"{TENANT}__triage_calibration")[0].metadata
    # The world's history carries categories only (the articles' product areas): one curve, for category.
    assert meta["tickets"].value == 300 and meta["fields_fitted"].value == "category"
    assert meta["category_samples"].value > 200
    assert 0 <= meta["category_heldout_ece"].value < 0.2
    curves = load_calibration(db, TENANT)
    assert set(curves) == {"category"}
    curve, samples = curves["category"]
    assert samples == meta["category_samples"].value
    assert [curve(s / 20) for s in range(21)] == sorted(curve(s / 20) for s in range(21))

    run = run_job(resources, open_ticket(sdp_state, world["new"][3]))
    assert step_metadata(run, "suggest_triage")["calibration"].startswith(f"category (tenant's, {samples} tickets)")
    from enhancement_pipeline.triage.classify import vote

    category = _output(run, "suggest_triage").get("category")
    counted = vote(run.output_for_node("gather_context", "similar_tickets").neighbours, "category")
    assert counted.label is not None  # the run's neighbours voted; the tenant's curve made it a confidence
    assert category.confidence == round(curve(counted.share), 3)


def test_apply_mode_writes_the_suggested_category_into_sdp_and_the_note_says_so(world, sdp_state, resources, tenant):
    from enhancement_pipeline.enhancement.policy import TenantNotePolicy
    from enhancement_pipeline.triage.assets import build_sdp_taxonomy

    assert dg.materialize([build_sdp_taxonomy(tenant)], resources=resources).success
    notes = replace_resource(resources["notes"], policies=[TenantNotePolicy(
        tenant_id=TENANT, triage_mode="apply", triage_apply_min_confidence=0.5)])
    ticket_id = open_ticket(sdp_state, world["history"][0])
    result = run_job({**resources, "notes": notes}, ticket_id)
    assert result.success
    triage = _output(result, "apply_triage")
    category = triage.get("category")
    assert category.label and category.applied, category
    assert sdp_state.requests[ticket_id]["category"]["name"] == category.label
    meta = step_metadata(result, "apply_triage")
    assert meta["mode"] == "apply" and meta["writes"].startswith(f"category {category.label} (id ")
    note = _output(result, "synthesize_note")
    assert note.markdown.startswith(f"**Suggested triage:** Category {category.label} (")
    assert "; set in SDP)" in note.markdown.splitlines()[0]
    assert len(sdp_state.notes[ticket_id]) == 1
