"""ticket_history's listing as SDP really allows it: keyset on created_time with resolved_time in the month, every
row checked on our side, and no row deleted on a listing that cannot be shown complete. Against the SDP simulator
over HTTP, including an SDP that does not sort, search or add columns as asked (``SdpState.list_quirks``)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import dagster as dg
import httpx
import pytest

from enhancement_pipeline.history.importer import MonthImport, import_months
from enhancement_pipeline.history.store import HistoryLoad, merge_tickets
from enhancement_pipeline.servicedesk.client import ServiceDeskClient
from enhancement_pipeline.servicedesk.payloads import datetime_to_millis
from enhancement_pipeline_tests.conftest import SDP_KEY, TENANT
from enhancement_pipeline_tests.helpers import history_defs

MONTH = "2026-05-01"
START, END = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
DAY = 86_400_000


@pytest.fixture(autouse=True)
def _documented_sdp(sdp_state):
    """Every test starts and ends with an SDP that lists as documented."""
    sdp_state.list_quirks.clear()
    yield
    sdp_state.list_quirks.clear()


def resolved_in_month(state, n: int, seed: int = 3) -> list[str]:
    """``n`` Resolved requests resolved in MONTH, created up to a year before, in an order unrelated to their
    ids (as real tickets are: the one created first is not the one resolved first)."""
    draw = random.Random(seed)
    start, end = datetime_to_millis(START), datetime_to_millis(END)
    ids = []
    for i in range(n):
        resolved = draw.randrange(start, end)
        ids.append(state.add_request(subject=f"ticket {i}", status="Resolved", resolution_html=f"<p>fix {i}</p>",
                                     created_millis=resolved - draw.randrange(1, 365) * DAY,
                                     resolved_millis=resolved)["id"])
    return ids


def materialize_month(resources, tenant):
    return dg.materialize(history_defs(tenant), resources=resources, partition_key=MONTH)


def metadata(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(f"{TENANT}__ticket_history")[0]
            .metadata.items()}


def month_observation(result) -> dict:
    event, = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    return {k: v.value for k, v in event.event_specific_data.asset_observation.metadata.items()}


def history_ids(db) -> set[str]:
    return {r[0] for r in db.execute("SELECT ticket_id FROM ticket_history WHERE tenant_id = %s", (TENANT,))}


def test_a_ticket_created_long_before_it_was_resolved_is_in_its_resolution_month(db, sdp_state, resources, tenant):
    ids = resolved_in_month(sdp_state, 30)
    slow = sdp_state.add_request(subject="created in 2024, resolved in May 2026", status="Resolved",
                                 created_millis=datetime_to_millis(datetime(2024, 12, 3, tzinfo=UTC)),
                                 resolved_millis=datetime_to_millis(datetime(2026, 5, 20, tzinfo=UTC)),
                                 resolution_html="<p>finally</p>")["id"]
    # Stored already resolved and never touched since (an import into SDP): no last_updated_time at all.
    migrated = sdp_state.add_request(subject="migrated", status="Closed", created_millis=datetime_to_millis(START),
                                     resolved_millis=datetime_to_millis(START) + 1, resolution_html="<p>x</p>")
    with sdp_state.lock:
        migrated["last_updated_time"] = None
    sdp_state.add_request(subject="resolved in June", status="Resolved", created_millis=datetime_to_millis(START),
                          resolved_millis=datetime_to_millis(END))
    result = materialize_month(resources, tenant)
    assert result.success
    assert history_ids(db) == {*ids, slow, migrated["id"]}
    meta, month = metadata(result), month_observation(result)
    assert meta["months_unproven"] == "none" and meta["untrusted_rows"] == 0
    assert month["listing_complete"] is True and month["sdp_total"] == month["listed"] == 32
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}["count_matches_sdp"]


def test_a_listing_sdp_did_not_sort_imports_what_it_listed_and_deletes_nothing(db, sdp_state, resources, tenant):
    """Keyset paging trusts the order: an SDP that lists newest id first, whatever sort_field says, makes it skip
    rows (page 2 asks for created_time after the newest one read). Without the guard the merge would delete
    every row it skipped."""
    ids = resolved_in_month(sdp_state, 230)
    assert materialize_month(resources, tenant).success and history_ids(db) == set(ids)

    sdp_state.list_quirks.add("unsorted")
    result = materialize_month(resources, tenant)
    assert result.success
    meta, month = metadata(result), month_observation(result)
    assert month["listed"] < 230 and month["sdp_total"] == 230  # the listing really did lose rows
    assert meta["deleted"] == 0 and history_ids(db) == set(ids)
    assert meta["months_unproven"] == MONTH[:7] and month["listing_complete"] is False
    assert "did not sort the page as asked" in meta["listing_problems"]
    assert "unproven: nothing deleted" in meta["by_month"]

    # The same SDP sorting as asked again: the listing is complete, and a row SDP no longer lists goes.
    sdp_state.list_quirks.clear()
    sdp_state.update_request(ids[0], {"status": {"name": "Open"}})
    result = materialize_month(resources, tenant)
    assert metadata(result)["deleted"] == 1 and history_ids(db) == set(ids[1:])


def test_rows_outside_the_month_or_without_the_fields_are_not_trusted(db, sdp_state, resources, tenant):
    ids = resolved_in_month(sdp_state, 12)
    materialize_month(resources, tenant)
    gone = ids[0]
    with sdp_state.lock:  # deleted in SDP since the last import: a complete listing would delete its row
        del sdp_state.requests[gone]
    other_month = sdp_state.add_request(subject="April", status="Resolved", resolution_html="<p>y</p>",
                                        created_millis=datetime_to_millis(START) - 9 * DAY,
                                        resolved_millis=datetime_to_millis(START) - 1)["id"]
    still_open = sdp_state.add_request(subject="open", created_millis=datetime_to_millis(START) + DAY)["id"]

    # An SDP that ignores the criterion on resolved_time lists every Resolved/Closed request.
    sdp_state.list_quirks.add("no_search:resolved_time")
    result = materialize_month(resources, tenant)
    meta = metadata(result)
    assert history_ids(db) == set(ids)  # April's ticket left out, the deleted one's row kept
    assert other_month not in history_ids(db) and still_open not in history_ids(db)
    assert meta["untrusted_rows"] == 1 and meta["deleted"] == 0 and meta["months_unproven"] == MONTH[:7]
    assert "outside" in meta["listing_problems"]

    # An SDP that ignores fields_required: no row says when it was resolved, so none is trusted.
    sdp_state.list_quirks.clear()
    sdp_state.list_quirks.add("no_fields_required")
    result = materialize_month(resources, tenant)
    meta = metadata(result)
    assert (meta["listed"], meta["untrusted_rows"], meta["deleted"]) == (0, 11, 0)
    assert history_ids(db) == set(ids) and "no resolved_time" in meta["listing_problems"]


def test_a_month_that_changed_while_it_was_listed_deletes_nothing(db, sdp_state, sdp_server):
    """A ticket reopened right after the listing read it: SDP's count after the listing is one less than what
    was listed, so the listing cannot be shown complete. The reopened ticket's full record is no longer resolved,
    so it is not written (a row without resolved_time would sit outside every month); its existing row stays."""
    ids = resolved_in_month(sdp_state, 40)
    reopen = {"id": ids[5], "done": False}

    class ReopenAfterTheFirstPage(httpx.HTTPTransport):
        def handle_request(self, request):
            response = super().handle_request(request)
            query = request.url.params.get("input_data")
            listing = request.url.path.endswith("/requests") and query and \
                not json.loads(query)["list_info"].get("get_total_count")
            if listing and not reopen["done"]:
                reopen["done"] = True
                sdp_state.update_request(reopen["id"], {"status": {"name": "Open"}})
            return response

    def write(month: MonthImport, tickets, listed_ids) -> HistoryLoad:
        return merge_tickets(db, TENANT, tickets, "bulk_import", window=(month.start, month.end),
                             listed_ids=listed_ids, delete_unlisted=month.complete)

    def run(transport=None) -> MonthImport:
        month, = import_months(lambda: ServiceDeskClient(sdp_server.url, SDP_KEY, transport=transport),
                               TENANT, [(START, END)], write, concurrency=2)
        return month

    first = run()
    assert (first.listed, first.sdp_total, first.complete, first.load.inserted) == (40, 40, True, 40)
    month = run(ReopenAfterTheFirstPage())
    assert reopen["done"]
    assert (month.listed, month.sdp_total, month.complete) == (40, 39, False)
    assert "listed 40 request(s), SDP counts 39" in month.problems
    assert month.moved == 1 and month.load.written == 39 and month.load.deleted == 0
    assert history_ids(db) == set(ids)
