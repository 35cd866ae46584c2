"""The resolved-ticket sync: resolved_ticket_sensor lists, sync_resolved_tickets runs write; and the keyset
polling under the sensor. Against the SDP simulator over HTTP, the real Postgres, a real Dagster instance."""

from __future__ import annotations

import time

import dagster as dg
import httpx
import pytest

from enhancement_pipeline.history import sync
from enhancement_pipeline.history.sync import build_resolved_ticket_sensor, build_sync_job
from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.servicedesk.client import ServiceDeskClient
from enhancement_pipeline.servicedesk.payloads import RESOLVED_STATUSES
from enhancement_pipeline.servicedesk.polling import StreamCursor, iter_since
from enhancement_pipeline_tests.conftest import SDP_KEY, TENANT

NOW_MS = int(time.time() * 1000)
HOUR = 3600_000


@pytest.fixture(autouse=True)
def _now_ms():
    """``NOW_MS`` is each test's own start: the sensor's lookback counts from the tick's clock, and the whole
    suite runs longer than a value read at import allows for."""
    global NOW_MS
    NOW_MS = int(time.time() * 1000)


class Sync:
    """A tenant's resolved_ticket_sensor and the sync job it launches, run as the daemon would: tick, then each
    requested run in a real (temporary) Dagster instance."""

    def __init__(self, resources, tenant, instance):
        self.job = build_sync_job([tenant])
        self.sensor = build_resolved_ticket_sensor(tenant, self.job)
        self.resources = {"sdp": resources["sdp"], "postgres": resources["postgres"]}
        self.instance = instance

    def tick(self, cursor: str | None = None) -> dg.SensorResult:
        return self.sensor(dg.build_sensor_context(cursor=cursor, resources={"sdp": self.resources["sdp"]},
                                                   instance=self.instance))

    def run(self, request: dg.RunRequest):
        return self.job.execute_in_process(run_config=request.run_config, resources=self.resources,
                                           instance=self.instance, tags=request.tags, raise_on_error=False)

    def __call__(self, cursor: str | None = None):
        """One tick and its runs: (the tick's result, the runs' results)."""
        result = self.tick(cursor)
        return result, [self.run(r) for r in result.run_requests or []]


@pytest.fixture
def syncing(resources, tenant):
    with dg.instance_for_test() as instance:
        yield Sync(resources, tenant, instance)


def resolved(state, subject: str, resolved_ms: int, resolution: str | None = "<p>Fixed it.</p>") -> str:
    return state.add_request(subject=subject, status="Resolved", created_millis=resolved_ms - HOUR,
                             resolved_millis=resolved_ms, resolution_html=resolution)["id"]


def history(db) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in db.execute("SELECT ticket_id, resolution, source FROM ticket_history "
                                            "WHERE tenant_id = %s", (TENANT,))}


def test_a_tick_only_lists_and_a_run_writes_the_recently_resolved_tickets(db, sdp_state, syncing):
    recent = resolved(sdp_state, "recent", NOW_MS - 2 * HOUR)
    closed = sdp_state.add_request(subject="closed", status="Closed", created_millis=NOW_MS - HOUR,
                                   resolved_millis=NOW_MS - 1000)["id"]
    resolved(sdp_state, "last month", NOW_MS - 40 * 24 * HOUR)  # the backfill's job
    sdp_state.add_request(subject="open", created_millis=NOW_MS - HOUR)
    result = syncing.tick()
    assert not history(db)  # the tick wrote nothing itself
    [request] = result.run_requests
    assert request.run_key.startswith(f"{TENANT}:resolved:")
    assert request.tags["dagster/priority"] == "1"  # dequeued ahead of a burst of enhance_ticket runs
    assert sorted(request.run_config["ops"]["write_resolved_tickets"]["config"]["ticket_ids"]) == sorted(
        [recent, closed])
    run = syncing.run(request)
    assert run.success
    assert history(db) == {recent: ("Fixed it.", "sensor_resolved"), closed: (None, "sensor_resolved")}
    observed = run.asset_observations_for_node("write_resolved_tickets")
    assert observed and all(e.asset_key == dg.AssetKey([TENANT, "ticket_history"]) for e in observed)
    assert sum(e.metadata["tickets"].value for e in observed) == 2
    again = syncing.tick(result.cursor)
    assert again.skip_reason is not None and not again.run_requests


def test_a_re_resolved_ticket_gets_its_new_resolution(db, sdp_state, syncing):
    rid = resolved(sdp_state, "printer", NOW_MS - HOUR)
    first, _ = syncing()
    sdp_state.update_request(rid, {"status": {"name": "Open"}})  # reopened: history keeps the old fix for now
    second, _ = syncing(first.cursor)
    time.sleep(0.002)  # a later millisecond than the reopening
    sdp_state.set_resolution(rid, "<p>Replaced the <i>fuser</i>.</p>")
    sdp_state.update_request(rid, {"status": {"name": "Resolved"}})
    _, runs = syncing(second.cursor)
    assert runs and all(r.success for r in runs)
    assert history(db)[rid] == ("Replaced the fuser.", "sensor_resolved")


def test_a_transient_sdp_failure_writes_the_others_and_the_step_retry_writes_the_rest(db, sdp_state, syncing):
    ids = [resolved(sdp_state, f"t{i}", NOW_MS - HOUR + i) for i in range(5)]
    # As many failures as the client has attempts: the op's first attempt fails on it, its retry does not.
    sdp_state.faults.append(Fault(match=f"GET /api/v3/requests/{ids[2]}$", status=503, sdp_code=4004, times=4))
    _, [run] = syncing()
    assert run.success and set(history(db)) == set(ids)
    assert [e.step_key for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == [
        "write_resolved_tickets"]


def test_a_ticket_sdp_always_fails_on_fails_the_run_with_the_reason_and_loses_the_others_nothing(
        db, sdp_state, syncing):
    ids = [resolved(sdp_state, f"t{i}", NOW_MS - HOUR + i) for i in range(3)]
    sdp_state.faults.append(Fault(match=f"GET /api/v3/requests/{ids[1]}$", status=500, sdp_code=4004, times=10_000))
    result, [run] = syncing()  # ~22 s: the step's retries back off as in production
    assert not run.success and set(history(db)) == {ids[0], ids[2]}
    errors = [e.user_message for e in syncing.instance.all_logs(run.run_id) if e.level >= 40]
    assert any(ids[1] in m and "next update or the month's backfill" in m for m in errors), errors
    run_record = syncing.instance.get_run_by_id(run.run_id)
    assert run_record.tags["dagster/max_retries"] == "2"  # and run retries try it again
    assert StreamCursor.model_validate_json(result.cursor).ids_at_ms == [ids[2]]  # the stream goes on


def test_a_deleted_or_reopened_ticket_is_passed_not_retried(db, sdp_state, syncing):
    gone, reopened, kept = (resolved(sdp_state, f"t{i}", NOW_MS - HOUR + i) for i in range(3))
    sdp_state.faults.append(Fault(match=f"GET /api/v3/requests/{gone}$", status=404, sdp_code=4007, times=100))
    sdp_state.update_request(reopened, {"status": {"name": "Open"}})
    result = syncing.tick()
    time.sleep(0.002)
    sdp_state.update_request(reopened, {"status": {"name": "Resolved"}})
    sdp_state.update_request(reopened, {"status": {"name": "Open"}})  # listed resolved, reopened before the run
    run = syncing.run(result.run_requests[0])
    assert run.success and set(history(db)) == {kept}
    assert not [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_polling_loses_no_ticket_that_changes_while_it_pages(db, sdp_state, sdp_server):
    """The classic offset-paging loss: a row on page 1 is updated after page 1 was read, every row moves up one
    place, and the first row of page 2 slides onto page 1. Keyset paging reads it anyway."""
    ids = [resolved(sdp_state, f"t{i}", NOW_MS - 2 * HOUR + i * 10) for i in range(250)]
    pages = {"n": 0, "edit": ids[10]}

    class ChangeAfterFirstPage(httpx.HTTPTransport):
        def handle_request(self, request):
            response = super().handle_request(request)
            if request.url.path.endswith("/requests"):
                pages["n"] += 1
                if pages["n"] == 1:
                    sdp_state.update_request(pages["edit"], {"subject": "edited while the sensor was paging"})
            return response

    criteria = [{"field": "status.name", "condition": "is", "values": sorted(RESOLVED_STATUSES)}]
    with ServiceDeskClient(sdp_server.url, SDP_KEY, transport=ChangeAfterFirstPage()) as client:
        seen = [r.id for r, _ in iter_since(client, "last_updated_time", StreamCursor(ms=0), criteria=criteria,
                                                      fields_required=["last_updated_time"])]
    assert set(seen) == set(ids)
    assert seen.count(ids[10]) == 2 and seen[-1] == ids[10]  # read again with its new timestamp, last

    # The same change against plain offset paging loses a ticket: why the sensors do not page that way.
    pages.update(n=0, edit=ids[20])  # ids[10] moved to the end already
    with ServiceDeskClient(sdp_server.url, SDP_KEY, transport=ChangeAfterFirstPage()) as client:
        offset_paged = [r["id"] for r in client.iter_requests(search_criteria=criteria, sort_field="last_updated_time",
                                                              fields_required=["last_updated_time"])]
    assert set(ids) - set(offset_paged)


def test_a_bulk_update_larger_than_a_page_is_read_whole(db, sdp_state, sdp_server):
    same_ms = NOW_MS - HOUR
    ids = [resolved(sdp_state, f"bulk {i}", same_ms) for i in range(230)]
    with ServiceDeskClient(sdp_server.url, SDP_KEY) as client:
        calls_before = sdp_state.calls["GET /requests"]
        first = list(iter_since(client, "last_updated_time", StreamCursor(ms=0), fields_required=["last_updated_time"]))
        # The group is walked once with overlapping pages, not restarted per page: 230 rows, 100 a page.
        assert sdp_state.calls["GET /requests"] - calls_before <= 4
        cursor = StreamCursor(ms=0)
        for request, ms in first[:150]:  # a tick that stopped part-way through the group
            cursor = cursor.advance(ms, request.id)
        rest = [r.id for r, _ in iter_since(client, "last_updated_time", cursor, fields_required=["last_updated_time"])]
    assert sorted(r.id for r, _ in first) == sorted(ids)
    assert sorted(rest) == sorted(set(ids) - {r.id for r, _ in first[:150]})


def test_a_large_change_is_split_into_runs_of_at_most_max_tickets(db, sdp_state, syncing, monkeypatch):
    monkeypatch.setattr(sync, "MAX_TICKETS_PER_RUN", 2)
    ids = [resolved(sdp_state, f"t{i}", NOW_MS - HOUR + i) for i in range(5)]
    cursor, batches = None, []
    for _ in range(4):
        result = syncing.tick(cursor)
        cursor = result.cursor
        batches += [r.run_config["ops"]["write_resolved_tickets"]["config"]["ticket_ids"]
                    for r in result.run_requests or []]
    assert batches == [ids[0:2], ids[2:4], ids[4:5]]


def test_a_ticket_the_sync_writes_is_searchable_at_once(db, sdp_state, syncing):
    from enhancement_pipeline.history.search import find_similar

    ticket_id = resolved(sdp_state, "Plotter in Building 7 smears magenta", NOW_MS - HOUR,
                         "<p>Replaced the magenta cartridge.</p>")
    syncing()
    # Its words were counted (no import has refreshed the statistics), so it is found by them.
    assert db.execute("SELECT ndoc FROM ticket_lexeme_stats WHERE tenant_id = %s AND lexeme = 'magenta'",
                      (TENANT,)).fetchone() == (1,)
    assert [t.ticket_id for t in find_similar(db, TENANT, "plotter smears magenta")] == [ticket_id]
    # The same run embedded it (the default install's encoder, pgvector in the suite's Postgres).
    embedded = db.execute("SELECT count(*) FROM ticket_embeddings WHERE ticket_id = %s", (ticket_id,)).fetchone()
    assert embedded == (1,)
