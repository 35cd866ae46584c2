"""``<tenant>/pipeline_metrics`` (issue 15, item 5): figures from the note ledger and Dagster's run history, as
plotted metadata and in Prometheus's text format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from enhancement_pipeline.delivery.claims import claim
from enhancement_pipeline.delivery.failures import FAILURE_TAG
from enhancement_pipeline.enhancement.policy import TenantNotePolicy
from enhancement_pipeline.local.datasets import demo_split
from enhancement_pipeline.metrics.assets import build_pipeline_metrics
from enhancement_pipeline.metrics.figures import PostedNoteRow, RunRow, percentile, reason_kind, summarize
from enhancement_pipeline.metrics.prometheus import exposition
from enhancement_pipeline_tests.conftest import TENANT, replace_resource
from enhancement_pipeline_tests.helpers import open_ticket, run_enhance

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def note(ticket: str, waited_s: float | None, posted_min_ago: float = 30, mode: str = "llm",
         reason: str | None = None) -> PostedNoteRow:
    posted = NOW - timedelta(minutes=posted_min_ago)
    created = posted - timedelta(seconds=waited_s) if waited_s is not None else None
    return PostedNoteRow(ticket, posted, created, mode, reason, 1000, 200, 0.0004)


def test_the_figures_of_a_window():
    notes = [note("1", 2.0), note("2", 4.0, posted_min_ago=90), note("3", 30.0, mode="deterministic",
             reason="daily token budget spent (2,000,100 of 2,000,000 tokens)"),
             note("4", 3.0, mode="deterministic", reason="LLM failed: APITimeoutError: timed out"),
             note("5", None), note("6", -5.0)]  # creation time unknown; SDP's clock ahead of ours
    runs = [RunRow("1", "SUCCESS", {}), RunRow("7", "FAILURE", {FAILURE_TAG: "ticket_not_found"}),
            RunRow("8", "FAILURE", {}), RunRow("8", "STARTED", {"dagster/retry_number": "1"}),
            RunRow("9", "QUEUED", {}), RunRow("10", "SUCCESS", {})]  # 10: a shadow-mode run, no note posted
    figures = summarize(TENANT, NOW, 24, notes, runs, claimed=["1", "2", "7", "8", "9", "10"],
                        failure_tag=FAILURE_TAG)
    assert (figures.notes_posted, figures.notes_posted_last_hour, figures.notes_llm) == (6, 5, 4)
    assert figures.deterministic_reasons == {"daily token budget spent": 1, "LLM failed": 1}
    assert figures.deterministic_share == pytest.approx(2 / 6)
    # Waits of 2, 3, 4 and 30 s: the nearest-rank median is 3, the p95 the slowest.
    assert (figures.seconds_to_note_p50, figures.seconds_to_note_p95) == (3.0, 30.0)
    assert (figures.llm_prompt_tokens, figures.llm_completion_tokens) == (6000, 1200)
    assert figures.runs_by_status == {"FAILURE": 2, "QUEUED": 1, "STARTED": 1, "SUCCESS": 2}
    assert (figures.runs_failed, figures.runs_failed_for_good, figures.runs_retried) == (2, 1, 1)
    assert figures.tickets_waiting == 2  # 8 (being retried) and 9 (queued); 7 will never get one


def test_an_empty_window_has_no_percentiles_and_no_share():
    figures = summarize(TENANT, NOW, 24, [], [], [], FAILURE_TAG)
    assert figures.seconds_to_note_p50 is None and figures.deterministic_share is None
    assert "seconds_to_note" not in {f.name for f in text_string_to_metric_families(exposition(figures))
                                     if f.samples}


def test_percentile_and_reason_kind():
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0 and percentile([1.0], 95) == 1.0 and percentile([], 50) is None
    assert reason_kind("no LLM key configured") == "no LLM key configured"
    assert reason_kind(None) == "unknown"


def test_the_asset_reads_the_ledger_and_the_run_history(db, sdp_state, resources, tenant, instance, tmp_path):
    """Three real runs (an LLM note, a deterministic one, a ticket deleted before its run) and a claimed ticket
    whose run has not started: the asset's metadata and its Prometheus file say so."""
    _, new = demo_split()
    llm_ticket, budget_ticket, deleted, waiting = (open_ticket(sdp_state, t) for t in new[:4])
    with resources["postgres"].connection() as conn:
        claim(conn, TENANT, [llm_ticket, budget_ticket, deleted, waiting], "new_ticket_sensor")
    assert run_enhance(resources, TENANT, llm_ticket, instance).success
    spent = replace_resource(resources["notes"], policies=[TenantNotePolicy(tenant_id=TENANT, daily_token_budget=0)])
    assert run_enhance({**resources, "notes": spent}, TENANT, budget_ticket, instance).success
    sdp_state.delete_request(deleted)
    assert not run_enhance(resources, TENANT, deleted, instance).success

    result = dg.materialize([build_pipeline_metrics(tenant, tmp_path / "prom")], resources=resources,
                            instance=instance)
    meta = {k: v.value for k, v in result.asset_materializations_for_node(f"{TENANT}__pipeline_metrics")[0]
            .metadata.items()}
    assert (meta["notes_posted"], meta["notes_llm"], meta["notes_deterministic"]) == (2, 1, 1)
    assert meta["deterministic_reasons"] == "daily token budget spent: 1"
    assert 0 < meta["seconds_to_note_p50"] <= meta["seconds_to_note_p95"] < 600
    assert meta["llm_prompt_tokens"] > 0 and meta["llm_cost_usd"] > 0
    assert (meta["runs"], meta["runs_failed"], meta["runs_failed_for_good"]) == (3, 1, 1)
    assert meta["tickets_waiting"] == 1

    path = tmp_path / "prom" / f"enhancement_pipeline_{TENANT}.prom"
    assert meta["prometheus_textfile"] == str(path)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(path.read_text()) for s in family.samples}
    assert samples[("enhancement_pipeline_notes_posted", (("tenant", TENANT), ("window", "24h")))] == 2
    assert samples[("enhancement_pipeline_notes_deterministic",
                    (("reason", "daily token budget spent"), ("tenant", TENANT)))] == 1
    assert samples[("enhancement_pipeline_runs", (("status", "FAILURE"), ("tenant", TENANT)))] == 1
    assert samples[("enhancement_pipeline_tickets_waiting", (("tenant", TENANT),))] == 1
