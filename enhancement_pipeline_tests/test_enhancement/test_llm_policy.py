"""Resilient and affordable: retries and their schedule, the deterministic note after them, token use and
cost, the daily token budget, shadow mode and the prompt version on every run. The openai SDK talks to the
LLM simulator over HTTP; faults are the simulator's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from enhancement_pipeline.enhancement.job import PROMPT_VERSION_TAG
from enhancement_pipeline.enhancement.policy import TenantNotePolicy
from enhancement_pipeline.enhancement.prompts import PROMPT_VERSION
from enhancement_pipeline.local.datasets import demo_split
from enhancement_pipeline_tests.conftest import TENANT, replace_resource
from enhancement_pipeline_tests.helpers import import_history, open_ticket, run_enhance, step_metadata

MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": '<ticket>\n{}\n</ticket>\n<context>\n{"similar_tickets": []}\n</context>'}]


@pytest.fixture
def world(db, sdp_state, resources, tenant):
    history, new = demo_split()
    import_history(sdp_state, resources, tenant, history[:80])
    return new


def test_the_retry_schedule_is_2_then_4_seconds(db, llm_state, resources):
    llm = replace_resource(resources["llm"], retry_waits_s=[2.0, 4.0])
    assert llm.timeout_s == 30.0
    llm_state.faults += [{"status": 503}, {"status": 429}]
    completion = llm.complete(MESSAGES)
    assert completion.attempts == 3 and completion.text
    first, second, third = llm_state.received_at
    assert 2.0 <= second - first < 3.0 and 4.0 <= third - second < 5.0


def test_timeouts_are_retried_and_client_errors_are_not(db, llm_state, resources):
    llm = replace_resource(resources["llm"], timeout_s=0.5)
    llm_state.faults.append({"delay_s": 2})
    assert llm.complete(MESSAGES).attempts == 2

    import openai

    llm_state.faults.append({"status": 400})
    with pytest.raises(openai.BadRequestError):
        llm.complete(MESSAGES)
    assert len(llm_state.requests) == 3  # the 400 was asked once


def test_after_the_retries_the_note_is_deterministic(world, sdp_state, llm_state, resources):
    llm_state.faults += [{"status": 500}, {"status": 502}, {"status": 503}]
    ticket_id = open_ticket(sdp_state, world[3])
    result = run_enhance(resources, TENANT, ticket_id)
    assert result.success and len(llm_state.requests) == 3
    note = result.output_for_node("synthesize_note")
    assert note.mode == "deterministic" and note.fallback_reason == "LLM call failed: InternalServerError"
    assert len(sdp_state.notes[ticket_id]) == 1


def test_token_use_and_cost_are_recorded_and_the_daily_budget_holds(world, sdp_state, llm_state, resources):
    notes = replace_resource(resources["notes"], policies=[TenantNotePolicy(tenant_id=TENANT, daily_token_budget=500)])
    resources = {**resources, "notes": notes}
    first = run_enhance(resources, TENANT, open_ticket(sdp_state, world[4]))
    meta = step_metadata(first, "synthesize_note")
    tokens = meta["prompt_tokens"] + meta["completion_tokens"]
    assert meta["mode"] == "llm" and tokens > 500 and meta["tokens_used_today"] == tokens
    llm = resources["llm"]
    expected = meta["prompt_tokens"] * llm.prompt_usd_per_mtok + meta["completion_tokens"] * llm.completion_usd_per_mtok
    assert meta["estimated_cost_usd"] == pytest.approx(expected / 1e6, abs=1e-6)

    second = run_enhance(resources, TENANT, open_ticket(sdp_state, world[5]))
    meta = step_metadata(second, "synthesize_note")
    assert meta["mode"] == "deterministic" and meta["fallback_reason"].startswith("daily token budget spent")
    assert len(llm_state.requests) == 1
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert not notes.budget_state(TENANT, now=tomorrow).spent  # a new day, a new budget


def test_shadow_mode_runs_everything_and_posts_nothing(world, sdp_state, llm_state, resources, db):
    notes = replace_resource(resources["notes"], policies=[TenantNotePolicy(tenant_id=TENANT, shadow_mode=True)])
    ticket_id = open_ticket(sdp_state, world[6])
    result = run_enhance({**resources, "notes": notes}, TENANT, ticket_id)
    assert result.success and llm_state.requests
    assert sdp_state.notes[ticket_id] == []
    assert db.execute("SELECT count(*) FROM posted_notes").fetchone() == (0,)
    assert step_metadata(result, "post_note")["status"] == "shadow"
    kept = step_metadata(result, "synthesize_note")
    assert kept["shadow"] is True and "### Similar resolved tickets" in kept["note"]


def test_every_run_carries_the_prompt_version(world, sdp_state, resources):
    instance = dg.DagsterInstance.ephemeral()
    result = run_enhance(resources, TENANT, open_ticket(sdp_state, world[7]), instance)
    assert instance.get_run_by_id(result.run_id).tags[PROMPT_VERSION_TAG] == PROMPT_VERSION
