"""The SDP client against the simulator over real HTTP: paging, criteria, errors, retries."""

from __future__ import annotations

import httpx
import pytest

from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.servicedesk.client import (
    SdpAuthError,
    SdpNotFound,
    SdpRateLimited,
    SdpServerError,
    ServiceDeskClient,
)
from enhancement_pipeline.servicedesk.payloads import parse_request, to_ticket
from enhancement_pipeline_tests.conftest import SDP_KEY


@pytest.fixture
def client(db, sdp_server):
    with ServiceDeskClient(sdp_server.url, SDP_KEY, backoff_base_s=0.01) as c:
        yield c


def test_pages_until_has_more_rows_is_false(client, sdp_state):
    for i in range(250):
        sdp_state.add_request(subject=f"t{i}", created_millis=1_000 + i)
    rows = list(client.iter_requests())
    assert [r["subject"] for r in rows] == [f"t{i}" for i in range(250)]
    assert sdp_state.calls["GET /requests"] == 3  # 100 + 100 + 50
    assert "description" not in rows[0]  # list rows are reduced


def test_search_criteria_and_logical_operators(client, sdp_state):
    for i in range(10):
        sdp_state.add_request(subject=f"t{i}", created_millis=1_000 + i, status="Resolved" if i % 2 else "Open")
    criteria = [{"field": "created_time", "condition": "between", "values": ["1002", "1007"]},
                {"field": "status.name", "condition": "is", "values": ["Resolved"], "logical_operator": "AND"}]
    assert [r["subject"] for r in client.iter_requests(search_criteria=criteria)] == ["t3", "t5", "t7"]
    desc = list(client.iter_requests(sort_order="desc", max_rows=2))
    assert [r["subject"] for r in desc] == ["t9", "t8"]


def test_full_record_parses_into_a_ticket(client, sdp_state):
    rid = sdp_state.add_request(subject=" Printer down ", description="<p>Floor 2 <b>HP</b> &amp; jams</p><br>again",
                                requester="Ada", created_millis=1_700_000_000_000)["id"]
    ticket = to_ticket("t1", parse_request(client.get_request(rid)))
    assert ticket.subject == "Printer down"
    assert ticket.description == "Floor 2 HP & jams\nagain"
    assert ticket.requester == "Ada" and ticket.created_at.year == 2023


def test_rate_limit_honours_retry_after_then_succeeds(client, sdp_state):
    sdp_state.add_request(subject="x")
    sdp_state.faults.append(Fault(match="GET /api/v3/requests", status=429, sdp_code=4015, times=2, retry_after=0))
    assert len(list(client.iter_requests())) == 1
    assert sdp_state.calls["GET /requests"] == 3


def test_rate_limit_gives_up_after_max_attempts(client, sdp_state):
    sdp_state.faults.append(Fault(match="GET", status=429, sdp_code=4015, times=10))
    with pytest.raises(SdpRateLimited) as err:
        list(client.iter_requests())
    assert err.value.sdp_code == 4015 and sdp_state.calls["GET /requests"] == client.max_attempts


def test_failure_envelope_on_http_200_is_an_error(client, sdp_state):
    rid = sdp_state.add_request(subject="x")["id"]
    sdp_state.faults.append(Fault(match="GET", status=200, sdp_code=4004, times=10))
    with pytest.raises(SdpServerError):
        client.get_request(rid)


def test_html_error_page_is_a_server_error(client, sdp_state):
    rid = sdp_state.add_request(subject="x")["id"]
    sdp_state.faults.append(Fault(match="GET", status=502, html=True, times=1))
    assert client.get_request(rid)["id"] == rid  # retried once, then fine


def test_unknown_request_and_bad_key(client, sdp_server):
    with pytest.raises(SdpNotFound):
        client.get_request("404404")
    with ServiceDeskClient(sdp_server.url, "wrong-key") as bad, pytest.raises(SdpAuthError) as err:
        bad.get_request("1")
    assert err.value.sdp_code == 4022


def test_a_failed_note_post_is_not_retried_blindly(client, sdp_state):
    rid = sdp_state.add_request(subject="x")["id"]
    sdp_state.faults.append(Fault(match="POST", status=500, sdp_code=4004, times=1))
    with pytest.raises(SdpServerError):
        client.add_note(rid, "<p>hi</p>")
    assert sdp_state.calls["POST /requests/{id}/notes"] == 1  # SDP may have stored it: the caller decides
    note = client.add_note(rid, "<p>hi</p>")
    assert client.list_notes(rid)[0]["id"] == note["id"] and note["show_to_requester"] is False


def test_cloud_url_and_oauth_header(sdp_server, db):
    with ServiceDeskClient(f"{sdp_server.url}/app/itdesk", SDP_KEY, auth_scheme="zoho-oauthtoken") as cloud:
        created = cloud.create_request({"subject": "from cloud", "requester": {"name": "Bo"}})
        assert cloud.get_request(created["id"])["subject"] == "from cloud"


def test_sends_input_data_as_the_api_expects(sdp_server, db):
    seen: list[httpx.Request] = []
    transport = httpx.HTTPTransport()

    class Recording(httpx.BaseTransport):
        def handle_request(self, request):
            seen.append(request)
            return transport.handle_request(request)

    with ServiceDeskClient(sdp_server.url, SDP_KEY, transport=Recording()) as c:
        created = c.create_request({"subject": "s"})
        c.get_request(created["id"])
    post, get = seen
    assert post.headers["authtoken"] == SDP_KEY
    assert post.headers["accept"] == "application/vnd.manageengine.sdp.v3+json"
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    assert post.content.startswith(b"input_data=")
    assert get.url.path.endswith(f"/api/v3/requests/{created['id']}")


def test_the_simulators_indexed_lists_answer_what_its_plain_lists_answer():
    """Benchmarks turn on ``cache_lists`` (keyset pages served from a sorted index); it must not change answers."""
    import random

    from enhancement_pipeline.local.sdp_simulator import SdpState

    indexed, plain = SdpState(api_key="k", cache_lists=True), SdpState(api_key="k")
    for state in (indexed, plain):
        draw = random.Random(7)
        for i in range(1500):
            ms = 1_700_000_000_000 + draw.randint(0, 300) * 1000
            state.add_request(subject=f"s{i}", status=draw.choice(["Resolved", "Closed", "Open"]),
                              created_millis=ms - 10, resolved_millis=ms)
    for anchor in (0, 1_700_000_100_000, 1_700_000_400_000):
        criteria = [{"field": "created_time", "condition": "greater or equal", "value": str(anchor)},
                    {"field": "created_time", "condition": "lesser than", "value": "1700000200000"},
                    {"field": "status.name", "condition": "is", "values": ["Closed", "Resolved"]}]
        for start in (1, 101, 901):
            list_info = {"row_count": 100, "start_index": start, "sort_field": "created_time",
                         "search_criteria": criteria, "get_total_count": True}
            rows_i, info_i = indexed.list_requests(dict(list_info))
            rows_p, info_p = plain.list_requests(dict(list_info))
            assert [r["id"] for r in rows_i] == [r["id"] for r in rows_p] and info_i == info_p
