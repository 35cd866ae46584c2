"""new_ticket_sensor against the SDP simulator over HTTP, with build_sensor_context and cursors.

(resolved_ticket_sensor is in test_history/test_resolved_sync.py.)"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from enhancement_pipeline.enhancement import sensors
from enhancement_pipeline.enhancement.sensors import build_new_ticket_sensor
from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.servicedesk.polling import StreamCursor
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import sensor_context

NOW_MS = int(time.time() * 1000)


@pytest.fixture(autouse=True)
def _now_ms():
    """``NOW_MS`` is each test's own start: the sensor's 15-minute lookback counts from the tick's clock, and the
    whole suite runs longer than that (a value read at import made tests late in it fail)."""
    global NOW_MS
    NOW_MS = int(time.time() * 1000)


@pytest.fixture
def tick(resources, tenant, instance):
    sensor = build_new_ticket_sensor(tenant)

    def evaluate(cursor: str | None = None) -> dg.SensorResult:
        return sensor(sensor_context(resources, instance, cursor))

    return evaluate


def ticket_ids(result: dg.SensorResult) -> list[str]:
    return [r.tags["ticket_id"] for r in result.run_requests or []]


def test_first_tick_takes_recent_tickets_and_leaves_the_backlog(db, sdp_state, tick):
    now_ms = int(time.time() * 1000)  # not NOW_MS: the lookback is counted from the tick's own clock
    old = sdp_state.add_request(subject="old backlog", created_millis=now_ms - 3 * 3600_000)
    recent = sdp_state.add_request(subject="recent", created_millis=now_ms - 60_000)
    result = tick()
    assert ticket_ids(result) == [recent["id"]]
    assert old["id"] not in ticket_ids(result)
    request = result.run_requests[0]
    assert request.job_name in (None, "enhance_ticket")
    assert request.run_key == f"{TENANT}:{recent['id']}"
    assert request.tags["tenant"] == TENANT
    assert request.run_config["ops"]["load_ticket"]["config"] == {"tenant_id": TENANT, "ticket_id": recent["id"]}
    cursor = StreamCursor.model_validate_json(result.cursor)
    assert cursor.ms == now_ms - 60_000 and cursor.ids_at_ms == [recent["id"]]


def test_first_tick_with_nothing_new_stores_a_cursor(db, tick):
    now_ms = int(time.time() * 1000)  # not NOW_MS: the suite runs longer than the tolerance below
    result = tick()
    assert ticket_ids(result) == []
    cursor = StreamCursor.model_validate_json(result.cursor)
    assert abs(cursor.ms - (now_ms - 15 * 60_000)) < 120_000  # the default 15-minute lookback


def test_nothing_new_means_no_runs_and_a_steady_cursor(db, sdp_state, tick):
    t = sdp_state.add_request(subject="a", created_millis=NOW_MS)
    first = tick()
    second = tick(first.cursor)
    assert ticket_ids(first) == [t["id"]]
    assert ticket_ids(second) == []
    assert second.cursor == first.cursor


def test_new_tickets_since_the_cursor_each_get_one_run(db, sdp_state, tick):
    a = sdp_state.add_request(subject="a", created_millis=NOW_MS)
    first = tick()
    b = sdp_state.add_request(subject="b", created_millis=NOW_MS + 1000)
    c = sdp_state.add_request(subject="c", created_millis=NOW_MS + 2000)
    second = tick(first.cursor)
    assert ticket_ids(first) == [a["id"]]
    assert ticket_ids(second) == [b["id"], c["id"]]


def test_tickets_with_equal_timestamps_across_ticks_are_neither_lost_nor_repeated(db, sdp_state, tick):
    same = NOW_MS + 5000
    first_pair = [sdp_state.add_request(subject=f"t{i}", created_millis=same)["id"] for i in range(2)]
    first = tick()
    # More tickets land in the same millisecond after the tick read it.
    late = [sdp_state.add_request(subject=f"late{i}", created_millis=same)["id"] for i in range(2)]
    second = tick(first.cursor)
    assert sorted(ticket_ids(first)) == sorted(first_pair)
    assert sorted(ticket_ids(second)) == sorted(late)
    cursor = StreamCursor.model_validate_json(second.cursor)
    assert cursor.ms == same and sorted(cursor.ids_at_ms) == sorted(first_pair + late)


def test_paging_more_than_a_page_of_equal_timestamps(db, sdp_state, tick):
    ids = [sdp_state.add_request(subject=f"burst {i}", created_millis=NOW_MS)["id"] for i in range(230)]
    result = tick()
    assert sorted(ticket_ids(result)) == sorted(ids[:sensors.MAX_RUNS_PER_TICK])
    rest = tick(result.cursor)
    assert sorted(ticket_ids(result) + ticket_ids(rest)) == sorted(ids)  # the cap never skips a ticket


def test_finished_tickets_are_skipped_but_passed(db, sdp_state, tick):
    done = sdp_state.add_request(subject="closed at birth", status="Closed", created_millis=NOW_MS)
    open_ = sdp_state.add_request(subject="open", created_millis=NOW_MS + 1)
    result = tick()
    assert ticket_ids(result) == [open_["id"]]
    assert done["id"] not in ticket_ids(tick(result.cursor))


def test_sdp_outage_skips_the_tick_and_keeps_the_cursor(db, sdp_state, tick):
    sdp_state.add_request(subject="a", created_millis=NOW_MS)
    first = tick()
    new = sdp_state.add_request(subject="b", created_millis=NOW_MS + 10)
    sdp_state.faults.append(Fault(match="GET /api/v3/requests$", status=503, sdp_code=4004, times=10))
    down = tick(first.cursor)
    assert ticket_ids(down) == [] and down.skip_reason is not None
    assert down.cursor == first.cursor
    sdp_state.faults.clear()
    assert ticket_ids(tick(down.cursor)) == [new["id"]]


def test_a_malformed_row_does_not_stop_the_stream(db, sdp_state, tick):
    bad = sdp_state.add_request(subject="bad", created_millis=NOW_MS)
    good = sdp_state.add_request(subject="good", created_millis=NOW_MS + 1)
    with sdp_state.lock:
        sdp_state.requests[bad["id"]]["created_time"] = {"display_value": "x"}  # no "value"
    # The good one runs; the bad one is not dropped: its run reads the full record (and fails with the reason).
    result = tick()
    assert sorted(ticket_ids(result)) == sorted([good["id"], bad["id"]])
    assert StreamCursor.model_validate_json(result.cursor).ids_at_ms == [good["id"]]


def test_an_unreadable_cursor_is_a_clear_error(db, tick):
    with pytest.raises(Exception, match=f"unreadable {TENANT}__new_ticket_sensor cursor"):
        tick("not json")


def test_a_cursor_stored_before_the_rename_still_reads(db, sdp_state, tick):
    t = sdp_state.add_request(subject="after upgrade", created_millis=NOW_MS + 7)
    old = f'{{"created_ms": {NOW_MS}, "ids_at_ms": []}}'
    assert ticket_ids(tick(old)) == [t["id"]]
