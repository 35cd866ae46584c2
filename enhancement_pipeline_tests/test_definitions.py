"""Every definition loads, per tenant from the tenants file, with the wiring the UI and the daemon rely on."""

from __future__ import annotations

import dagster as dg
import pytest

from enhancement_pipeline.settings import Settings
from enhancement_pipeline.tenants import TenantsFileError, load_tenants_file

TENANTS_YAML = """
tenants:
  - tenant_id: contoso
    name: Contoso Ltd
    history_start_date: 2023-07-01
    inventory_dir: {inventory}
    sdp: {{base_url: "https://sdp.contoso.example:8080", api_key_env: CONTOSO_SDP_KEY, request_budget_per_s: 4}}
    kb: {{base_url: "https://kb.contoso.example", cache_ttl_s: 600}}
    notes: {{shadow_mode: true, daily_token_budget: 50000, keep_ip_addresses: false, phone_region: GB}}
  - tenant_id: fabrikam
    sdp: {{base_url: "https://sdpondemand.manageengine.com/app/fabrikam", auth_scheme: zoho-oauthtoken}}
    kb: {{base_url: "https://kb.fabrikam.example"}}
"""


def test_definitions_load():
    from enhancement_pipeline.definitions import defs

    repo = defs.get_repository_def()
    repo.load_all_definitions()
    job = defs.resolve_job_def("enhance_ticket")
    assert set(job.graph.node_names()) == {"load_ticket", "gather_context", "suggest_triage", "apply_triage",
                                           "synthesize_note", "post_note", "ask_requester"}
    assert [o.name for o in job.graph.node_named("gather_context").definition.output_defs] == [
        "similar_tickets", "knowledge_articles", "inventory_lookup"]
    assert job.executor_def.name == "in_process"
    assert set(defs.resources) == {"sdp", "postgres", "kb", "llm", "notes"}


def test_each_tenant_of_the_file_gets_its_assets_checks_and_sensors(tmp_path):
    from enhancement_pipeline.definitions import build_definitions

    path = tmp_path / "tenants.yaml"
    path.write_text(TENANTS_YAML.format(inventory=tmp_path))
    defs = build_definitions(Settings(tenants_file=path, resolved_ticket_sensor_interval_s=45))
    defs.get_repository_def().load_all_definitions()
    graph = defs.resolve_asset_graph()
    assert graph.get_all_asset_keys() == {dg.AssetKey([t, a]) for t in ("contoso", "fabrikam")
                                          for a in ("ticket_history", "system_inventory", "sdp_taxonomy",
                                                    "triage_calibration", "pipeline_metrics")}
    history = defs.resolve_assets_def(dg.AssetKey(["contoso", "ticket_history"]))
    assert isinstance(history.partitions_def, dg.MonthlyPartitionsDefinition)
    assert history.partitions_def.get_first_partition_key() == "2023-07-01"
    assert history.backfill_policy == dg.BackfillPolicy.single_run()
    assert {(k.asset_key.path[0], k.name) for k in graph.asset_check_keys} == {
        (t, c) for t in ("contoso", "fabrikam")
        for c in ("one_row_per_ticket", "resolution_present", "count_matches_sdp")} | {
        (t, "no_rejected_rows") for t in ("contoso", "fabrikam")} | {
        (t, "history_labels_known") for t in ("contoso", "fabrikam")}
    sensors = {s.name: s for s in defs.sensors}
    # Three SDP sensors per tenant; an inventory sensor where the tenant has an inventory folder.
    assert set(sensors) == {"contoso__new_ticket_sensor", "contoso__resolved_ticket_sensor",
                            "contoso__delivery_sweep", "contoso__inventory_file_sensor",
                            "fabrikam__new_ticket_sensor", "fabrikam__resolved_ticket_sensor",
                            "fabrikam__delivery_sweep"}
    assert sensors["contoso__new_ticket_sensor"].job_name == "enhance_ticket"
    assert sensors["contoso__delivery_sweep"].job_name == "enhance_ticket"
    assert sensors["fabrikam__resolved_ticket_sensor"].job_name == "sync_resolved_tickets"
    assert sensors["fabrikam__resolved_ticket_sensor"].minimum_interval_seconds == 45  # the settings given
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    # The taxonomy and the triage calibration are refreshed daily, the operating metrics hourly, per tenant, from
    # the start.
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {f"{t}__{s}_schedule" for t in ("contoso", "fabrikam")
                              for s in ("taxonomy", "triage_calibration", "pipeline_metrics")}
    assert schedules["fabrikam__pipeline_metrics_schedule"].cron_schedule == "5 * * * *"
    assert defs.resolve_job_def(schedules["fabrikam__pipeline_metrics_schedule"].job_name
                                ).asset_layer.selected_asset_keys == {dg.AssetKey(["fabrikam", "pipeline_metrics"])}
    assert defs.resolve_job_def(schedules["contoso__triage_calibration_schedule"].job_name
                                ).asset_layer.selected_asset_keys == {dg.AssetKey(["contoso", "triage_calibration"])}
    assert schedules["contoso__taxonomy_schedule"].cron_schedule == "30 2 * * *"
    assert schedules["contoso__taxonomy_schedule"].default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_job_def(schedules["fabrikam__taxonomy_schedule"].job_name).asset_layer.selected_asset_keys == {
        dg.AssetKey(["fabrikam", "sdp_taxonomy"])}
    sdp = defs.resources["sdp"]
    assert sdp.endpoint("contoso").request_budget_per_s == 4
    assert sdp.endpoint("fabrikam").auth_scheme == "zoho-oauthtoken"
    assert defs.resources["kb"].endpoint("contoso").cache_ttl_s == 600
    notes = defs.resources["notes"]
    contoso, fabrikam = notes.policy("contoso"), notes.policy("fabrikam")
    assert (contoso.shadow_mode, contoso.daily_token_budget, contoso.keep_ip_addresses, contoso.phone_region) == (
        True, 50000, False, "GB")
    assert (fabrikam.shadow_mode, fabrikam.daily_token_budget, fabrikam.keep_ip_addresses) == (False, 2_000_000, True)


@pytest.mark.parametrize(("text", "message"), [
    ("tenants: []", "tenants: List should have at least 1 item"),
    ("tenants:\n  - {tenant_id: Bad-Name, sdp: {base_url: x}, kb: {base_url: y}}", "tenants.0.tenant_id"),
    ("tenants:\n  - {tenant_id: a, sdp: {base_url: x, api_key: leaked}, kb: {base_url: y}}", "sdp.api_key"),
    ("tenants:\n  - {tenant_id: a, sdp: {base_url: x}, kb: {base_url: y}, history_start_date: 2024-01-15}",
     "first day of a month"),
    ("tenants:\n  - {tenant_id: a, sdp: {base_url: x}, kb: {base_url: y}}\n"
     "  - {tenant_id: a, sdp: {base_url: x}, kb: {base_url: y}}", "declared more than once: a"),
    ("tenants: [unclosed", "cannot read tenants file"),
    ("tenants:\n  - {tenant_id: a, sdp: {base_url: x}, kb: {base_url: y}, notes: {daily_token_budget: -1}}",
     "notes.daily_token_budget"),
    ("tenants:\n  - {tenant_id: a, sdp: {base_url: x}, kb: {base_url: y}, notes: {phone_region: england}}",
     "notes.phone_region"),
])
def test_a_bad_tenants_file_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "tenants.yaml"
    path.write_text(text)
    with pytest.raises(TenantsFileError, match=str(path)) as caught:
        load_tenants_file(path)
    assert message in str(caught.value)


def test_no_secret_in_resource_config(monkeypatch):
    # Imported before the variables are set: its module-level Definitions is what other tests' code locations
    # load (push.launch), and must not be bound to variables this test removes again.
    from enhancement_pipeline import definitions

    monkeypatch.setenv("SDP_API_KEY", "super-secret-sdp")
    monkeypatch.setenv("LLM_API_KEY", "super-secret-llm")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:super-secret-pw@db/x")
    monkeypatch.setenv("REDIS_URL", "redis://:super-secret-redis@cache:6379/0")

    resources = definitions.build_resources(definitions.get_settings())
    dumped = repr({k: v.model_dump() for k, v in resources.items()})
    assert "super-secret" not in dumped
    # The whole Definitions too (not the module's own, which other tests' code locations load).
    built = definitions.build_definitions(definitions.get_settings())
    assert "super-secret" not in repr({k: v.model_dump() for k, v in built.resources.items()})
