"""ticket_history: monthly partitions imported from SDP, re-runs that merge, checks, and the search on it."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from enhancement_pipeline.history.search import find_similar
from enhancement_pipeline.local.datasets import demo_split
from enhancement_pipeline.local.sdp_simulator import Fault, seed_resolved_tickets
from enhancement_pipeline.servicedesk.payloads import datetime_to_millis, html_to_text
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import history_defs, materialize_range

NOW = datetime(2026, 11, 1, tzinfo=UTC)
FIRST, LAST = "2024-11-01", "2026-10-01"
ALL_COLUMNS = ("SELECT ticket_id, subject, description, resolution, resolved_at, source, ingested_at "
               "FROM ticket_history ORDER BY ticket_id")


def metadata(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(f"{TENANT}__ticket_history")[0]
            .metadata.items()}


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def run_checks(tenant, resources, month: str):
    """Only the checks of one month, as "Execute checks" in the UI runs them."""
    asset, *check_defs = history_defs(tenant)
    job = dg.define_asset_job("history_checks", selection=dg.AssetSelection.checks_for_assets(asset),
                              partitions_def=asset.partitions_def)
    defs = dg.Definitions(assets=[asset], asset_checks=check_defs, jobs=[job], resources=resources)
    # Tagged rather than partition_key=: execute_in_process looks for the partitions among the selected
    # *assets*, and a checks-only selection has none.
    return defs.resolve_job_def("history_checks").execute_in_process(tags={"dagster/partition": month},
                                                                      raise_on_error=False)


def test_one_partition_imports_only_its_month_and_passes_its_checks(db, sdp_state, resources, tenant):
    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:400])
    sdp_state.add_request(subject="still open", created_millis=int(NOW.timestamp() * 1000) - 86_400_000 * 40)
    month = "2026-05-01"
    expected = {t.subject for t in history[:400] if t.resolved_at.strftime("%Y-%m-01") == month}
    result = dg.materialize(history_defs(tenant), resources=resources, partition_key=month)
    assert result.success
    rows = db.execute("SELECT subject, resolved_at FROM ticket_history WHERE tenant_id = %s", (TENANT,)).fetchall()
    assert {r[0] for r in rows} == expected and expected
    assert all(r[1].strftime("%Y-%m-01") == month for r in rows)
    assert {name: e.passed for name, e in checks(result).items()} == {
        "one_row_per_ticket": True, "resolution_present": True, "count_matches_sdp": True}


def test_range_backfill_is_one_run_and_rerunning_leaves_the_table_identical(db, sdp_state, resources, tenant):
    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:300])
    instance = dg.DagsterInstance.ephemeral()
    first = materialize_range(history_defs(tenant), resources, FIRST, LAST, instance)
    snapshot = db.execute(ALL_COLUMNS).fetchall()
    second = materialize_range(history_defs(tenant), resources, FIRST, LAST, instance)
    assert first.success and second.success
    assert len(instance.get_runs()) == 2
    assert len(snapshot) == 300
    # Identical to the last column: provenance and ingestion time too.
    assert db.execute(ALL_COLUMNS).fetchall() == snapshot
    assert (metadata(second)["inserted"], metadata(second)["updated"], metadata(second)["unchanged"],
            metadata(second)["deleted"]) == (0, 0, 300, 0)
    # Progress while it ran: one observation per month, each with its counts.
    observed = [e for e in first.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert len(observed) == 24
    assert sum(e.event_specific_data.asset_observation.metadata["imported"].value for e in observed) == 300


def test_rerun_makes_the_window_equal_to_what_sdp_lists_now(db, sdp_state, resources, tenant):
    history, _ = demo_split(now=NOW)
    ids = seed_resolved_tickets(sdp_state, history[:200])
    materialize_range(history_defs(tenant), resources, FIRST, LAST)
    reopened, edited = ids[history[0].article_id], ids[history[1].article_id]
    sdp_state.update_request(reopened, {"status": {"name": "Open"}})
    sdp_state.set_resolution(edited, "<p>Restart the <b>Transport</b> service.</p>")
    added = seed_resolved_tickets(sdp_state, [history[200]])[history[200].article_id]

    result = materialize_range(history_defs(tenant), resources, FIRST, LAST)
    meta = metadata(result)
    assert (meta["inserted"], meta["updated"], meta["deleted"]) == (1, 1, 1)
    rows = dict(db.execute("SELECT ticket_id, resolution FROM ticket_history").fetchall())
    assert reopened not in rows and added in rows
    assert rows[edited] == "Restart the Transport service."  # HTML to clean text
    assert len(rows) == 200


def test_a_failing_ticket_does_not_stop_the_backfill_nor_lose_its_row(db, sdp_state, resources, tenant):
    history, _ = demo_split(now=NOW)
    ids = seed_resolved_tickets(sdp_state, history[:50])
    materialize_range(history_defs(tenant), resources, FIRST, LAST)
    broken = ids[history[0].article_id]
    sdp_state.faults.append(Fault(match=f"GET /api/v3/requests/{broken}$", status=500, sdp_code=4004, times=100))
    result = materialize_range(history_defs(tenant), resources, FIRST, LAST)
    meta = metadata(result)
    assert result.success and meta["failed"] == 1 and meta["imported"] == 49 and meta["deleted"] == 0
    assert broken in meta["failures"]
    assert db.execute("SELECT count(*) FROM ticket_history WHERE ticket_id = %s", (broken,)).fetchone()[0] == 1


def test_a_systemic_failure_fails_the_run_loudly(db, sdp_state, resources, tenant):
    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:40])
    sdp_state.faults.append(Fault(match=r"GET /api/v3/requests/\d+/resolutions$", status=403, sdp_code=4002,
                                  times=1000))
    result = materialize_range(history_defs(tenant), resources, FIRST, LAST, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "40 of 40 tickets could not be imported" in failure.event_specific_data.error.message


def test_rate_limits_and_server_errors_are_retried(db, sdp_state, resources, tenant):
    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:60])
    sdp_state.faults += [Fault(match=r"GET /api/v3/requests$", status=429, sdp_code=4015, retry_after=0.2, times=2),
                         # Fewer than the client's four attempts: with eight fetch threads taking faults in
                         # arrival order, five could all land on one ticket and exhaust its retries.
                         Fault(match=r"GET /api/v3/requests/\d+$", status=503, sdp_code=4004, times=3),
                         Fault(match=r"GET /api/v3/requests/\d+/resolutions$", status=200, sdp_code=4015, times=3)]
    result = materialize_range(history_defs(tenant), resources, FIRST, LAST)
    assert result.success and metadata(result)["imported"] == 60 and metadata(result)["failed"] == 0
    assert all(f.times == 0 for f in sdp_state.faults)  # every fault was met, and retried through


def test_count_check_flags_a_month_that_sdp_and_history_disagree_on(db, sdp_state, resources, tenant):
    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:100])
    month = history[0].resolved_at.strftime("%Y-%m-01")
    materialize_range(history_defs(tenant), resources, FIRST, LAST)
    # Resolved in SDP after the import, in an already imported month, and without a resolution.
    late = sdp_state.add_request(subject="late", status="Resolved", created_millis=datetime_to_millis(
        history[0].resolved_at) - 1000, resolved_millis=datetime_to_millis(history[0].resolved_at) + 1)
    result = run_checks(tenant, resources, month)
    evaluations = checks(result)
    assert not evaluations["count_matches_sdp"].passed
    assert evaluations["count_matches_sdp"].metadata["months_mismatched"].value == month[:7]
    assert evaluations["resolution_present"].passed  # the late ticket is not in history yet
    # Importing the month again repairs it; the late ticket has no resolution, which is only a warning.
    result = dg.materialize(history_defs(tenant), resources=resources, partition_key=month)
    evaluations = checks(result)
    assert evaluations["count_matches_sdp"].passed
    assert not evaluations["resolution_present"].passed
    assert evaluations["resolution_present"].severity == dg.AssetCheckSeverity.WARN
    assert late["id"] in evaluations["resolution_present"].metadata["sample"].value


def test_uniqueness_check_catches_a_table_without_its_key(db, sdp_state, resources, tenant):
    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:10])
    month = history[0].resolved_at.strftime("%Y-%m-01")
    dg.materialize(history_defs(tenant), resources=resources, partition_key=month)
    # A table re-created by hand without its primary key lets a second copy in.
    # (ticket_embeddings' foreign key needs the key: it goes first, and comes back after.)
    db.execute("ALTER TABLE ticket_history DROP CONSTRAINT ticket_history_pkey CASCADE")
    try:
        db.execute("INSERT INTO ticket_history (tenant_id, ticket_id, subject, source) "
                   "SELECT tenant_id, ticket_id, subject, source FROM ticket_history LIMIT 1")
        result = run_checks(tenant, resources, month)
        assert not checks(result)["one_row_per_ticket"].passed
    finally:
        db.execute("TRUNCATE ticket_history, ticket_embeddings")
        db.execute("ALTER TABLE ticket_history ADD PRIMARY KEY (tenant_id, ticket_id)")
        db.execute("ALTER TABLE ticket_embeddings ADD CONSTRAINT ticket_embeddings_tenant_id_ticket_id_fkey"
                   " FOREIGN KEY (tenant_id, ticket_id) REFERENCES ticket_history ON DELETE CASCADE")


def test_merge_refuses_another_tenants_ticket(db):
    from enhancement_pipeline.history.store import merge_tickets
    from enhancement_pipeline.models import Ticket

    with pytest.raises(ValueError, match="belongs to tenant"):
        merge_tickets(db, TENANT, [Ticket(tenant_id="someone_else", ticket_id="1", subject="x")], "bulk_import")


def test_similar_search_finds_the_ticket_with_the_same_problem(db, sdp_state, resources, tenant):
    # A real pair: the held-out "405 Method Not Allowed in a hybrid deployment" ticket and the history ticket
    # "Exception has been thrown by the target" quote the same MRS proxy failure in their IIS logs.
    history, new = demo_split(now=NOW)
    twin = next(t for t in history if t.article_id.endswith("move-mailboxes/hybrid-deployment-errors"))
    seed_resolved_tickets(sdp_state, [*history[:300], twin])
    materialize_range(history_defs(tenant), resources, FIRST, LAST)
    ticket = next(t for t in new if t.article_id.endswith("endpoint-connection-405-error"))
    found = find_similar(db, TENANT, f"{ticket.subject}\n{html_to_text(ticket.description_html)}")
    assert twin.subject in [t.subject for t in found]
    assert all(0 < t.score <= 1 for t in found)
    assert [t.score for t in found] == sorted((t.score for t in found), reverse=True)
    assert find_similar(db, TENANT, "   ") == []
    assert find_similar(db, "someone_else", ticket.subject) == []


def test_a_range_backfill_from_the_dagster_cli(db, sdp_state, settings, postgres, tmp_path, monkeypatch):
    """`dagster asset materialize --partition-range`, as the README says: its own process, this repository's
    dagster.yaml, Dagster's storage in Postgres. The run is recorded there, with its range."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from enhancement_pipeline.settings import PROJECT_ROOT

    postgres.create_database("dagster_cli")
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")

    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:120])
    env = {**os.environ, "TENANT_ID": TENANT, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "SDP_BASE_URL": settings.sdp_base_url, "KB_BASE_URL": settings.kb_base_url,
           "HISTORY_START_DATE": "2024-01-01", "SDP_REQUEST_BUDGET_PER_S": "10000", "DAGSTER_HOME": str(tmp_path),
           "DAGSTER_POSTGRES_URL": postgres.url("dagster_cli", driver="postgresql+psycopg2")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "enhancement_pipeline.definitions",
         "--select", f"{TENANT}/ticket_history", "--partition-range", f"{FIRST}...{LAST}"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert db.execute("SELECT count(*) FROM ticket_history WHERE tenant_id = %s", (TENANT,)).fetchone()[0] == 120
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", env["DAGSTER_POSTGRES_URL"])
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].tags["dagster/asset_partition_range_start"] == FIRST


def test_a_backfill_neither_deletes_nor_overwrites_what_the_sensor_wrote_after_it_listed(db):
    """The month in progress: the backfill lists at T0; the ticket is resolved (or re-resolved) and the sensor
    writes it; the backfill merges its older view at T1. The sensor's row stands."""
    from datetime import timedelta

    from enhancement_pipeline.history.store import merge_tickets
    from enhancement_pipeline.models import Ticket

    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    resolved = start + timedelta(days=3)
    merge_tickets(db, TENANT, [Ticket(tenant_id=TENANT, ticket_id="old", subject="s", resolution="first fix",
                                      resolved_at=resolved)], "bulk_import")
    listed_at = db.execute("SELECT now() - interval '1 second'").fetchone()[0]
    merge_tickets(db, TENANT, [Ticket(tenant_id=TENANT, ticket_id="new", subject="s", resolution="fix",
                                      resolved_at=resolved),
                               Ticket(tenant_id=TENANT, ticket_id="old", subject="s", resolution="second fix",
                                      resolved_at=resolved)], "sensor_resolved")
    # The backfill saw "old" with its first resolution and did not see "new" at all.
    load = merge_tickets(db, TENANT, [Ticket(tenant_id=TENANT, ticket_id="old", subject="s", resolution="first fix",
                                             resolved_at=resolved)], "bulk_import", window=(start, end),
                         listed_ids=["old"], fresh_since=listed_at)
    assert load.deleted == 0 and load.updated == 0
    assert dict(db.execute("SELECT ticket_id, resolution FROM ticket_history").fetchall()) == {
        "old": "second fix", "new": "fix"}
    # Without the guard (a backfill that listed after the sensor wrote), the window is made equal to SDP's list.
    load = merge_tickets(db, TENANT, [], "bulk_import", window=(start, end), listed_ids=["old"])
    assert load.deleted == 1


def test_the_history_carries_the_labels_and_a_reimport_fills_them(db, sdp_state, resources, tenant):
    month = "2026-05-01"
    resolved = datetime_to_millis(datetime(2026, 5, 12, 10, tzinfo=UTC))
    labelled = sdp_state.add_request(
        subject="Outlook keeps asking for the password", description="<p>since this morning</p>",
        requester="Dana Scully", technician="Fox Mulder", status="Resolved", created_millis=resolved - 3_600_000,
        resolved_millis=resolved, resolution_html="<p>Cleared the cached credentials.</p>", category="Email",
        subcategory="Outlook", item="Password prompt", priority="High", group="Messaging", site="Leeds")
    assert dg.materialize(history_defs(tenant), resources=resources, partition_key=month).success
    row = db.execute("SELECT category, subcategory, item, priority, support_group, technician, site, requester_id "
                     "FROM ticket_history WHERE tenant_id = %s AND ticket_id = %s",
                     (TENANT, labelled["id"])).fetchone()
    assert row == ("Email", "Outlook", "Password prompt", "High", "Messaging", "Fox Mulder", "Leeds",
                   labelled["requester"]["id"])
    # A row imported before the labels were kept (here: its labels wiped) gets them from the next import.
    db.execute("UPDATE ticket_history SET category = NULL, support_group = NULL WHERE ticket_id = %s",
               (labelled["id"],))
    result = dg.materialize(history_defs(tenant), resources=resources, partition_key=month)
    assert result.success and metadata(result)["updated"] == 1
    assert db.execute("SELECT category, support_group FROM ticket_history WHERE ticket_id = %s",
                      (labelled["id"],)).fetchone() == ("Email", "Messaging")
