"""The figures in Prometheus's text exposition format (``prometheus-client``), for MSPs that already scrape a
Prometheus: written as ``<dir>/enhancement_pipeline_<tenant>.prom`` for node_exporter's textfile collector
(``--collector.textfile.directory``), replaced atomically at every materialization.

Every metric is a gauge labelled ``tenant``: the figures are computed over a window (``window_hours``) from the
ledger, not counted by the process that serves them, so counters would reset with every run worker. Names:

- ``enhancement_pipeline_notes_posted{tenant, window}``: ``window`` "1h" or the window (e.g. "24h");
- ``enhancement_pipeline_notes_deterministic{tenant, reason}``;
- ``enhancement_pipeline_seconds_to_note{tenant, quantile}``: 0.5 and 0.95 (absent without notes);
- ``enhancement_pipeline_llm_tokens{tenant, kind}``: prompt / completion; ``enhancement_pipeline_llm_cost_usd``;
- ``enhancement_pipeline_runs{tenant, status}``, ``enhancement_pipeline_runs_retried``,
  ``enhancement_pipeline_runs_failed_for_good``, ``enhancement_pipeline_tickets_waiting``;
- ``enhancement_pipeline_window_hours`` and ``enhancement_pipeline_measured_timestamp_seconds``.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

from enhancement_pipeline.metrics.figures import OperatingFigures

PREFIX = "enhancement_pipeline"


def registry_for(figures: OperatingFigures) -> CollectorRegistry:
    """A registry holding ``figures`` as gauges (see the module docstring)."""
    registry = CollectorRegistry()
    t = figures.tenant_id

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, ("tenant", *labels), registry=registry)

    posted = gauge("notes_posted", "Notes posted in the window.", ("window",))
    posted.labels(t, "1h").set(figures.notes_posted_last_hour)
    posted.labels(t, f"{figures.window_h}h").set(figures.notes_posted)
    deterministic = gauge("notes_deterministic", "Notes written without the model in the window, by reason.",
                          ("reason",))
    for reason, n in figures.deterministic_reasons.items():
        deterministic.labels(t, reason).set(n)
    wait = gauge("seconds_to_note", "Seconds from the ticket's creation in SDP to its note, by quantile.",
                 ("quantile",))
    for q, value in (("0.5", figures.seconds_to_note_p50), ("0.95", figures.seconds_to_note_p95)):
        if value is not None:
            wait.labels(t, q).set(value)
    tokens = gauge("llm_tokens", "LLM tokens of the window's notes.", ("kind",))
    tokens.labels(t, "prompt").set(figures.llm_prompt_tokens)
    tokens.labels(t, "completion").set(figures.llm_completion_tokens)
    gauge("llm_cost_usd", "Estimated LLM cost of the window's notes, US dollars.").labels(t).set(figures.llm_cost_usd)
    runs = gauge("runs", "enhance_ticket runs created in the window, by status.", ("status",))
    for status, n in figures.runs_by_status.items():
        runs.labels(t, status).set(n)
    gauge("runs_retried", "Runs launched by run retries in the window.").labels(t).set(figures.runs_retried)
    gauge("runs_failed_for_good", "Runs failed with a reason no retry fixes.").labels(t).set(
        figures.runs_failed_for_good)
    gauge("tickets_waiting", "Tickets claimed in the window still owed a note.").labels(t).set(figures.tickets_waiting)
    gauge("window_hours", "Hours the figures cover.").labels(t).set(figures.window_h)
    gauge("measured_timestamp_seconds", "When the figures were computed (Unix time).").labels(t).set(
        figures.measured_at.timestamp())
    return registry


def exposition(figures: OperatingFigures) -> str:
    """``figures`` in the text exposition format."""
    return generate_latest(registry_for(figures)).decode()


def write_textfile(directory: Path, figures: OperatingFigures) -> Path:
    """Write ``figures`` to ``directory/enhancement_pipeline_<tenant>.prom`` (atomically: a temporary file renamed
    over it, as node_exporter's textfile collector wants); returns the path. Raises ``OSError``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PREFIX}_{figures.tenant_id}.prom"
    write_to_textfile(str(path), registry_for(figures))
    return path
