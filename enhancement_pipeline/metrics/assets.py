"""``<tenant>/pipeline_metrics``: the tenant's operating figures, materialized hourly.

Each materialization summarizes the last ``WINDOW_H`` hours (``metrics.figures``): notes posted, how many were
deterministic and why, p50/p95 seconds from the ticket's creation to its note, LLM tokens and estimated cost,
runs by status, failed for good and retried, and tickets still owed a note. The numbers are the
materialization's metadata, so the asset's page in the Dagster UI plots each over time; with
``METRICS_TEXTFILE_DIR`` set they are also written in Prometheus's text format (``metrics.prometheus``) for
node_exporter's textfile collector. Reads only: the ledger in the app database and Dagster's run storage.
"""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from enhancement_pipeline.delivery.failures import FAILURE_TAG
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

WINDOW_H = 24
"""Hours each materialization looks back over (a day: enough notes for a p95 on a quiet tenant)."""
SCHEDULE_CRON = "5 * * * *"
JOB_NAME = "enhance_ticket"


def metrics_asset_key(tenant_id: str) -> dg.AssetKey:
    return dg.AssetKey([tenant_id, "pipeline_metrics"])


def build_pipeline_metrics(tenant: Tenant, textfile_dir: Path | None = None) -> dg.AssetsDefinition:
    """The tenant's ``<tenant>/pipeline_metrics`` asset; ``textfile_dir``: where to write its Prometheus file
    (None: not written)."""
    tenant_id = tenant.tenant_id

    @dg.asset(
        key=metrics_asset_key(tenant_id), group_name=tenant_id, kinds={"postgres"},
        description=f"Tenant {tenant_id}'s operating figures over the last {WINDOW_H} h, hourly: notes posted and "
                    "deterministic (why), p50/p95 seconds from creation to note, LLM tokens and cost, failed and "
                    "retried runs, tickets still owed a note. Plotted from the metadata; written for Prometheus "
                    "when METRICS_TEXTFILE_DIR is set.")
    def pipeline_metrics(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        from enhancement_pipeline.metrics.collect import claimed_since, posted_notes_since, runs_since
        from enhancement_pipeline.metrics.figures import summarize
        from enhancement_pipeline.metrics.prometheus import exposition, write_textfile

        started = time.perf_counter()
        now = datetime.now(UTC)
        since = now - timedelta(hours=WINDOW_H)
        with postgres.connection() as conn:
            notes = posted_notes_since(conn, tenant_id, since)
            claimed = claimed_since(conn, tenant_id, since)
        runs = runs_since(context.instance, JOB_NAME, tenant_id, since)
        figures = summarize(tenant_id, now, WINDOW_H, notes, runs, claimed, FAILURE_TAG)
        written = ""
        if textfile_dir is not None:
            try:
                written = str(write_textfile(textfile_dir, figures))
            except OSError as exc:  # the UI's figures are still worth recording
                context.log.warning(f"Prometheus textfile not written to {textfile_dir}: {exc}")
                written = f"not written: {exc}"
        return dg.MaterializeResult(metadata=figures_metadata(figures) | {
            "deterministic_reasons": ", ".join(f"{k}: {v}" for k, v in figures.deterministic_reasons.items())
                                     or "none",
            "runs_by_status": ", ".join(f"{k}: {v}" for k, v in figures.runs_by_status.items()) or "none",
            "prometheus_textfile": written or "not configured (METRICS_TEXTFILE_DIR)",
            "prometheus": dg.MetadataValue.md(f"```\n{exposition(figures)}```"),
            "seconds": round(time.perf_counter() - started, 2)})

    return pipeline_metrics


def figures_metadata(figures) -> dict:
    """The numbers the UI plots, as int/float metadata (a figure without a value, a p95 without notes, is left
    out rather than plotted as 0)."""
    numbers = {
        "notes_posted": figures.notes_posted, "notes_posted_last_hour": figures.notes_posted_last_hour,
        "notes_llm": figures.notes_llm, "notes_deterministic": figures.notes_deterministic,
        "deterministic_share": figures.deterministic_share,
        "seconds_to_note_p50": figures.seconds_to_note_p50, "seconds_to_note_p95": figures.seconds_to_note_p95,
        "llm_prompt_tokens": figures.llm_prompt_tokens, "llm_completion_tokens": figures.llm_completion_tokens,
        "llm_cost_usd": figures.llm_cost_usd, "runs": figures.runs, "runs_failed": figures.runs_failed,
        "runs_failed_for_good": figures.runs_failed_for_good, "runs_retried": figures.runs_retried,
        "tickets_waiting": figures.tickets_waiting, "window_hours": figures.window_h,
    }
    return {k: (dg.MetadataValue.int(v) if isinstance(v, int) else dg.MetadataValue.float(float(v)))
            for k, v in numbers.items() if v is not None}


def build_metrics_schedule(tenant: Tenant) -> dg.ScheduleDefinition:
    """``<tenant>__pipeline_metrics_schedule``: materializes ``<tenant>/pipeline_metrics`` at five past every
    hour (UTC); running from the start."""
    return dg.ScheduleDefinition(
        name=f"{tenant.tenant_id}__pipeline_metrics_schedule", cron_schedule=SCHEDULE_CRON, execution_timezone="UTC",
        target=dg.AssetSelection.assets(metrics_asset_key(tenant.tenant_id)),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Recomputes {tenant.tenant_id}/pipeline_metrics every hour.")
