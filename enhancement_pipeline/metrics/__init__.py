"""Operating metrics (issue 15, item 5): ``<tenant>/pipeline_metrics``, hourly, from the note ledger and
Dagster's run history, plotted in the Dagster UI and written in Prometheus's text format."""
