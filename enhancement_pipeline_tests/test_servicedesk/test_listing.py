"""Listing requests as SDP really allows it, against the SDP simulator over HTTP: only the documented sortable
fields, and default rows as SDP sends them (``last_updated_time`` null on a request never updated)."""

from __future__ import annotations

import json

import httpx
import pytest

from enhancement_pipeline.local.sdp_simulator import SORTABLE_FIELDS
from enhancement_pipeline.servicedesk.client import SdpRequestError, ServiceDeskClient
from enhancement_pipeline.servicedesk.payloads import RESOLVED_STATUSES, parse_request
from enhancement_pipeline.servicedesk.polling import StreamCursor, iter_since
from enhancement_pipeline_tests.conftest import SDP_KEY


@pytest.fixture
def client(db, sdp_server):
    with ServiceDeskClient(sdp_server.url, SDP_KEY, backoff_base_s=0.01) as c:
        yield c


@pytest.mark.parametrize("field", ["resolved_time", "display_id", "completed_time", "requester.name", 7])
def test_a_field_sdp_cannot_sort_by_is_refused_with_an_error_envelope(client, sdp_server, field):
    client.create_request({"subject": "s"})
    list_info = {"row_count": 10, "start_index": 1, "sort_field": field, "sort_order": "asc"}
    with pytest.raises(SdpRequestError) as caught:
        client.list_requests_page(list_info)
    assert (caught.value.http_status, caught.value.sdp_code) == (400, 4001)
    assert caught.value.messages[0]["field"] == "sort_field"
    # On the wire: HTTP 400, outer code 4000, the detail in messages (reference section 6.2).
    raw = httpx.get(f"{sdp_server.url}/api/v3/requests", headers={"authtoken": SDP_KEY},
                    params={"input_data": json.dumps({"list_info": list_info})})
    body = raw.json()["response_status"]
    assert raw.status_code == 400 and body["status_code"] == 4000 and body["status"] == "failed"
    assert body["messages"][0]["status_code"] == 4001 and body["messages"][0]["type"] == "failed"


def test_every_documented_sortable_field_sorts(client, sdp_state):
    for i, (subject, priority) in enumerate([("b", "High"), ("a", "Low"), ("c", "Medium")]):
        sdp_state.add_request(subject=subject, priority=priority, created_millis=1_700_000_000_000 + i)
    for field in sorted(SORTABLE_FIELDS):
        rows, info = client.list_requests_page({"row_count": 10, "start_index": 1, "sort_field": field})
        assert len(rows) == 3 and info["sort_field"] == field
    rows, _ = client.list_requests_page({"row_count": 10, "start_index": 1, "sort_field": "subject",
                                         "sort_order": "desc"})
    assert [r["subject"] for r in rows] == ["c", "b", "a"]
    rows, _ = client.list_requests_page({"row_count": 10, "start_index": 1})  # default: created_time
    assert [r["subject"] for r in rows] == ["b", "a", "c"]


def test_a_request_never_updated_has_a_null_last_updated_time_that_parses(client, sdp_state):
    created = client.create_request({"subject": "fresh"})
    record = client.get_request(created["id"])
    assert record["last_updated_time"] is None and record["created_time"]["value"]
    assert parse_request(record).last_updated_millis is None
    row, = client.iter_requests(fields_required=["last_updated_time"])
    assert row["last_updated_time"] is None and parse_request(row).last_updated_millis is None
    # Stored already resolved (as history is seeded): it was updated when it was resolved.
    resolved = sdp_state.add_request(subject="old", status="Resolved", created_millis=1_700_000_000_000,
                                     resolved_millis=1_700_000_360_000)
    assert resolved["last_updated_time"]["value"] == "1700000360000"
    client.update_request(created["id"], {"subject": "fresh, edited"})
    assert client.get_request(created["id"])["last_updated_time"]["value"].isdigit()


def test_polling_last_updated_time_passes_over_never_updated_requests_without_error(client, sdp_state):
    """The resolved-ticket sensor's listing (``last_updated_time >= cursor``, sorted by it): a request with a
    null ``last_updated_time`` matches no ``>=`` and is not a malformed row; it is read once it is updated."""
    never = sdp_state.add_request(subject="resolved on creation", status="Resolved")  # no resolved time given
    sdp_state.add_request(subject="open, untouched")
    updated = sdp_state.add_request(subject="resolved later", status="Resolved", created_millis=1_700_000_000_000,
                                    resolved_millis=1_700_000_500_000)
    criteria = [{"field": "status.name", "condition": "is", "values": sorted(RESOLVED_STATUSES)}]
    malformed = []
    seen = [r.id for r, _ in iter_since(client, "last_updated_time", StreamCursor(ms=0), criteria=criteria,
                                        fields_required=["last_updated_time"],
                                        on_malformed=lambda row, exc: malformed.append(row))]
    assert seen == [updated["id"]] and malformed == []
    client.update_request(never["id"], {"subject": "resolved on creation, edited"})
    seen = [r.id for r, _ in iter_since(client, "last_updated_time", StreamCursor(ms=0), criteria=criteria,
                                        fields_required=["last_updated_time"])]
    assert seen == [updated["id"], never["id"]]
