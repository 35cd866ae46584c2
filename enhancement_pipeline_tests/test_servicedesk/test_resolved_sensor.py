"""resolved_ticket_sensor and the keyset polling under it, against the SDP simulator over HTTP."""

from __future__ import annotations

import time

import dagster as dg
import httpx
import pytest

from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.servicedesk.client import ServiceDeskClient
from enhancement_pipeline.servicedesk.payloads import RESOLVED_STATUSES
from enhancement_pipeline.servicedesk.polling import StreamCursor, iter_since
from enhancement_pipeline.servicedesk.sensors import build_resolved_ticket_sensor
from enhancement_pipeline_tests.conftest import SDP_KEY, TENANT

NOW_MS = int(time.time() * 1000)


@pytest.fixture(autouse=True)
def _now_ms():
    """``NOW_MS`` is each test's own start: the sensor's lookback counts from the tick's clock, and the whole
    suite runs longer than a value read at import allows for."""
    global NOW_MS
    NOW_MS = int(time.time() * 1000)
HOUR = 3600_000


@pytest.fixture
def tick(resources, tenant):
    sensor = build_resolved_ticket_sensor(tenant)

    def evaluate(cursor: str | None = None) -> dg.SensorResult:
        context = dg.build_sensor_context(cursor=cursor, resources={"sdp": resources["sdp"],
                                                                    "postgres": resources["postgres"]})
        return sensor(context)

    return evaluate


def resolved(state, subject: str, resolved_ms: int, resolution: str | None = "<p>Fixed it.</p>") -> str:
    return state.add_request(subject=subject, status="Resolved", created_millis=resolved_ms - HOUR,
                             resolved_millis=resolved_ms, resolution_html=resolution)["id"]


def history(db) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in db.execute("SELECT ticket_id, resolution, source FROM ticket_history "
                                            "WHERE tenant_id = %s", (TENANT,))}


def test_first_tick_upserts_recently_resolved_tickets_only(db, sdp_state, tick):
    recent = resolved(sdp_state, "recent", NOW_MS - 2 * HOUR)
    closed = sdp_state.add_request(subject="closed", status="Closed", created_millis=NOW_MS - HOUR,
                                   resolved_millis=NOW_MS - 1000)["id"]
    resolved(sdp_state, "last month", NOW_MS - 40 * 24 * HOUR)  # the backfill's job
    sdp_state.add_request(subject="open", created_millis=NOW_MS - HOUR)
    result = tick()
    assert history(db) == {recent: ("Fixed it.", "sensor_resolved"), closed: (None, "sensor_resolved")}
    observed = result.asset_events
    assert observed and all(e.asset_key == dg.AssetKey([TENANT, "ticket_history"]) for e in observed)
    assert sum(e.metadata["tickets"].value for e in observed) == 2
    again = tick(result.cursor)
    assert again.skip_reason is not None and not again.asset_events
    assert history(db).keys() == {recent, closed}


def test_a_re_resolved_ticket_gets_its_new_resolution(db, sdp_state, tick):
    rid = resolved(sdp_state, "printer", NOW_MS - HOUR)
    first = tick()
    sdp_state.update_request(rid, {"status": {"name": "Open"}})  # reopened: history keeps the old fix for now
    second = tick(first.cursor)
    time.sleep(0.002)  # a later millisecond than the reopening
    sdp_state.set_resolution(rid, "<p>Replaced the <i>fuser</i>.</p>")
    sdp_state.update_request(rid, {"status": {"name": "Resolved"}})
    tick(second.cursor)
    assert history(db)[rid] == ("Replaced the fuser.", "sensor_resolved")


def test_an_sdp_failure_stops_the_cursor_before_the_ticket_and_loses_nothing(db, sdp_state, tick):
    ids = [resolved(sdp_state, f"t{i}", NOW_MS - HOUR + i) for i in range(5)]
    sdp_state.faults.append(Fault(match=f"GET /api/v3/requests/{ids[2]}$", status=503, sdp_code=4004, times=100))
    first = tick()
    assert set(history(db)) == set(ids[:2])
    assert StreamCursor.model_validate_json(first.cursor).ids_at_ms == [ids[1]]
    sdp_state.faults.clear()
    tick(first.cursor)
    assert set(history(db)) == set(ids)


def test_a_ticket_sdp_always_fails_on_is_passed_after_three_ticks(db, sdp_state, tick):
    from enhancement_pipeline.servicedesk.sensors import RESOLVED_MAX_FAILED_TICKS

    ids = [resolved(sdp_state, f"t{i}", NOW_MS - HOUR + i) for i in range(3)]
    sdp_state.faults.append(Fault(match=f"GET /api/v3/requests/{ids[1]}$", status=500, sdp_code=4004, times=10_000))
    cursor = None
    for _ in range(RESOLVED_MAX_FAILED_TICKS - 1):
        cursor = tick(cursor).cursor
        assert set(history(db)) == {ids[0]}  # held: SDP may recover
    tick(cursor)
    assert set(history(db)) == {ids[0], ids[2]}  # passed, so the stream goes on


def test_a_deleted_or_reopened_ticket_is_passed_not_retried_forever(db, sdp_state, tick):
    gone, reopened, kept = (resolved(sdp_state, f"t{i}", NOW_MS - HOUR + i) for i in range(3))
    sdp_state.faults.append(Fault(match=f"GET /api/v3/requests/{gone}$", status=404, sdp_code=4007, times=100))
    result = tick()
    assert set(history(db)) == {reopened, kept}
    sdp_state.update_request(reopened, {"status": {"name": "Open"}})
    cursor = StreamCursor.model_validate_json(result.cursor)
    assert cursor.ids_at_ms == [kept]  # moved past the ticket SDP says does not exist


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


def test_a_tick_spends_at_most_its_share_of_the_budget(db, sdp_state, resources, tenant, monkeypatch):
    from enhancement_pipeline.servicedesk import sensors
    from enhancement_pipeline_tests.conftest import replace_resource

    monkeypatch.setattr(sensors, "RESOLVED_TICK_BUDGET_S", 2)  # the real 20 s would make this test wait 20 s
    ids = [resolved(sdp_state, f"t{i}", NOW_MS - HOUR + i) for i in range(5)]
    endpoint = resources["sdp"].endpoints[0].model_copy(update={"request_budget_per_s": 2})
    sdp = replace_resource(resources["sdp"], endpoints=[endpoint])
    sensor = build_resolved_ticket_sensor(tenant)
    first = sensor(dg.build_sensor_context(resources={"sdp": sdp, "postgres": resources["postgres"]}))
    # 2 requests/s for 2 s of a tick: 2 tickets (two calls each); the rest wait for the next tick.
    assert set(history(db)) == set(ids[:2])
    assert StreamCursor.model_validate_json(first.cursor).ids_at_ms == [ids[1]]


def test_a_ticket_the_sensor_writes_is_searchable_at_once(db, sdp_state, tick):
    from enhancement_pipeline.history.search import find_similar

    ticket_id = resolved(sdp_state, "Plotter in Building 7 smears magenta", NOW_MS - HOUR,
                         "<p>Replaced the magenta cartridge.</p>")
    tick()
    # Its words were counted (no import has refreshed the statistics), so it is found by them.
    assert db.execute("SELECT ndoc FROM ticket_lexeme_stats WHERE tenant_id = %s AND lexeme = 'magenta'",
                      (TENANT,)).fetchone() == (1,)
    assert [t.ticket_id for t in find_similar(db, TENANT, "plotter smears magenta")] == [ticket_id]
    # The same tick embedded it (the default install's encoder, pgvector in the suite's Postgres).
    embedded = db.execute("SELECT count(*) FROM ticket_embeddings WHERE ticket_id = %s", (ticket_id,)).fetchone()
    assert embedded == (1,)
