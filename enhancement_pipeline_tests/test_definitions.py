"""Every definition loads, with the wiring the UI and the daemon rely on."""

from __future__ import annotations

import dagster as dg


def test_definitions_load():
    from enhancement_pipeline.definitions import defs

    repo = defs.get_repository_def()
    repo.load_all_definitions()
    job = defs.resolve_job_def("enhance_ticket")
    assert set(job.graph.node_names()) == {"load_ticket", "similar_tickets", "knowledge_articles",
                                            "inventory_lookup", "synthesize_note", "post_note"}
    assert job.executor_def.name == "in_process"
    sensor = defs.resolve_sensor_def("new_ticket_sensor")
    assert sensor.job_name == "enhance_ticket"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    history = defs.resolve_assets_def("ticket_history")
    assert isinstance(history.partitions_def, dg.MonthlyPartitionsDefinition)
    assert history.backfill_policy == dg.BackfillPolicy.single_run()
    assert set(defs.resources) == {"sdp", "postgres", "kb", "llm"}


def test_no_secret_in_resource_config(monkeypatch):
    import importlib

    monkeypatch.setenv("SDP_API_KEY", "super-secret-sdp")
    monkeypatch.setenv("LLM_API_KEY", "super-secret-llm")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:super-secret-pw@db/x")
    from enhancement_pipeline import definitions

    resources = definitions.build_resources(definitions.get_settings())
    dumped = repr({k: v.model_dump() for k, v in resources.items()})
    assert "super-secret" not in dumped
    importlib.reload(definitions)
