"""The push receiver: SDP's webhook (fired by the SDP simulator over HTTP, as a Custom Trigger would) queues the
ticket's run on a real Dagster instance; the new-ticket sensor, polling the same SDP, launches nothing twice."""

from __future__ import annotations

import threading
import time

import dagster as dg
import httpx
import pytest

from enhancement_pipeline.delivery import claims
from enhancement_pipeline.enhancement.sensors import build_new_ticket_sensor
from enhancement_pipeline.local.http_server import serve_in_thread
from enhancement_pipeline.local.sdp_simulator import Webhook
from enhancement_pipeline.push.launch import RunSubmitter
from enhancement_pipeline.push.payload import TicketEvent
from enhancement_pipeline.push.receiver import SECRET_HEADER, Receiver, create_app
from enhancement_pipeline.servicedesk.polling import StreamCursor
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import sensor_context

SECRET = "s3cret-from-the-sdp-admin"


@pytest.mark.parametrize("body, expected", [
    ({"request": {"id": "123640000000000042", "display_id": "42"}, "event": "created"}, "123640000000000042"),
    ({"id": 123640000000000042}, "123640000000000042"),
    ({"request_id": " 77 "}, "77"),
])
def test_the_event_shapes_sdp_templates_send(body, expected):
    event = TicketEvent.model_validate(body)
    assert event.request_id == expected and event.is_creation


@pytest.mark.parametrize("body, words", [
    ({"request": {"id": "$id"}}, "unfilled template variable"),
    ({"id": "1; DROP TABLE"}, "digits"),
    ({"id": True}, "number or a string"),
    ({"subject": "no id"}, "no request id"),
    ([{"id": "1"}], "JSON object"),
])
def test_events_without_a_usable_id_are_refused(body, words):
    with pytest.raises(ValueError, match=words):
        TicketEvent.model_validate(body)


@pytest.fixture
def queued_instance():
    """A Dagster instance whose run coordinator queues runs, as dagster.yaml's does (nothing dequeues here)."""
    with dg.instance_for_test(overrides={"run_coordinator": {
            "module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}}) as instance:
        yield instance


@pytest.fixture
def receiver(db, resources, tenant, queued_instance, monkeypatch):
    """The receiver over HTTP, queueing real runs of enhance_ticket through ``RunSubmitter``."""
    monkeypatch.setenv("SDP_WEBHOOK_SECRET", SECRET)
    submitter = RunSubmitter(queued_instance)

    def submit(tenant_id: str, ticket_id: str, display_id: str | None) -> str:
        return submitter.submit(
            run_config={"ops": {"load_ticket": {"config": {"tenant_id": tenant_id, "ticket_id": ticket_id}}}},
            tags={"tenant": tenant_id, "ticket_id": ticket_id, claims.TRIGGER_TAG: claims.PUSH}).run_id

    app = create_app(Receiver(tenants=[tenant], sdp=resources["sdp"], postgres=resources["postgres"], submit=submit))
    server = serve_in_thread(app, name="push-receiver")
    yield server
    server.stop()
    submitter.close()


def runs_for(instance, ticket_id: str) -> list[dg.DagsterRun]:
    return instance.get_runs(dg.RunsFilter(job_name="enhance_ticket", tags={"ticket_id": ticket_id}))


def wait_for(predicate, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_sdp_webhook_queues_the_run_and_the_sensor_then_launches_nothing(receiver, sdp_state, resources, tenant,
                                                                          queued_instance):
    sdp_state.webhooks.append(Webhook(url=f"{receiver.url}/sdp/{TENANT}/requests", headers={SECRET_HEADER: SECRET}))
    with httpx.Client(base_url=resources["sdp"].endpoint(TENANT).base_url) as sdp:
        created = sdp.post("/api/v3/requests", headers={"authtoken": sdp_state.api_key},
                           data={"input_data": '{"request": {"subject": "Outlook keeps asking for the password", '
                                               '"description": "since this morning", "requester": {"name": "Ann"}}}'})
    ticket_id = created.json()["request"]["id"]
    assert wait_for(lambda: sdp_state.webhook_calls) == [(ticket_id, 202)]
    run, = runs_for(queued_instance, ticket_id)
    assert run.status == dg.DagsterRunStatus.QUEUED
    assert run.tags[claims.TRIGGER_TAG] == claims.PUSH and run.tags["tenant"] == TENANT
    assert run.run_config["ops"]["load_ticket"]["config"] == {"tenant_id": TENANT, "ticket_id": ticket_id}
    assert run.job_code_origin is not None and run.remote_job_origin.location_name == "enhancement_pipeline"

    # The sensor's next poll lists the ticket and requests nothing for it; its cursor passes it.
    cursor = StreamCursor(ms=int(time.time() * 1000) - 120_000).model_dump_json()
    result = build_new_ticket_sensor(tenant)(sensor_context(resources, queued_instance, cursor))
    assert not result.run_requests
    assert ticket_id in StreamCursor.model_validate_json(result.cursor).ids_at_ms


def test_a_ticket_the_sensor_launched_first_is_left_to_it(receiver, sdp_state, resources, tenant):
    ticket_id = sdp_state.add_request(subject="VPN drops every hour")["id"]
    cursor = StreamCursor(ms=int(time.time() * 1000) - 120_000).model_dump_json()
    with dg.instance_for_test() as instance:
        result = build_new_ticket_sensor(tenant)(sensor_context(resources, instance, cursor))
    assert [r.tags["ticket_id"] for r in result.run_requests] == [ticket_id]
    answer = httpx.post(f"{receiver.url}/sdp/{TENANT}/requests", json={"id": ticket_id},
                        headers={SECRET_HEADER: SECRET})
    assert answer.status_code == 200 and answer.json() == {"status": "already_launched",
                                                           "reason": "launched by the new_ticket_sensor"}


def test_announced_by_both_at_once_each_ticket_is_launched_once(receiver, sdp_state, resources, tenant,
                                                                queued_instance):
    """Push and poll race for 20 tickets: every ticket gets one run, from one of them."""
    ids = [sdp_state.add_request(subject=f"printer {i} offline")["id"] for i in range(20)]
    cursor = StreamCursor(ms=int(time.time() * 1000) - 120_000).model_dump_json()
    answers: dict[str, int] = {}

    def push_all() -> None:
        with httpx.Client(base_url=receiver.url, headers={SECRET_HEADER: SECRET}) as client:
            for ticket_id in ids:
                answers[ticket_id] = client.post(f"/sdp/{TENANT}/requests", json={"id": ticket_id}).status_code

    pusher = threading.Thread(target=push_all)
    pusher.start()
    sensor_requests = build_new_ticket_sensor(tenant)(sensor_context(resources, queued_instance, cursor)).run_requests
    pusher.join(60)
    by_sensor = {r.tags["ticket_id"] for r in sensor_requests or []}
    by_push = {t for t in ids if runs_for(queued_instance, t)}
    assert by_sensor | by_push == set(ids) and not by_sensor & by_push
    assert all(answers[t] == (202 if t in by_push else 200) for t in ids)


@pytest.mark.parametrize("path, headers, body, status, words", [
    (f"/sdp/{TENANT}/requests", {}, {"id": "1"}, 401, "X-Webhook-Secret"),
    (f"/sdp/{TENANT}/requests", {SECRET_HEADER: SECRET[:-1]}, {"id": "1"}, 401, "X-Webhook-Secret"),
    ("/sdp/nobody/requests", {SECRET_HEADER: SECRET}, {"id": "1"}, 404, "unknown tenant"),
    (f"/sdp/{TENANT}/requests", {SECRET_HEADER: SECRET}, {"request": {"id": "$id"}}, 422, "template variable"),
    (f"/sdp/{TENANT}/requests", {SECRET_HEADER: SECRET}, "not json", 422, "unreadable event"),
    (f"/sdp/{TENANT}/requests", {SECRET_HEADER: SECRET}, {"id": "99999"}, 404, "SDP has no request 99999"),
])
def test_what_the_receiver_refuses_and_why(receiver, path, headers, body, status, words):
    content = body.encode() if isinstance(body, str) else None
    answer = httpx.post(f"{receiver.url}{path}", headers=headers, json=None if content else body, content=content)
    assert answer.status_code == status and words in answer.json()["reason"]


def test_a_finished_or_other_event_launches_nothing(receiver, sdp_state, queued_instance):
    closed = sdp_state.add_request(subject="done already", status="Closed")["id"]
    answer = httpx.post(f"{receiver.url}/sdp/{TENANT}/requests", json={"id": closed}, headers={SECRET_HEADER: SECRET})
    assert answer.status_code == 200 and answer.json()["status"] == "skipped" and "Closed" in answer.json()["reason"]
    edited = sdp_state.add_request(subject="an edit")["id"]
    answer = httpx.post(f"{receiver.url}/sdp/{TENANT}/requests", json={"id": edited, "event": "edited"},
                        headers={SECRET_HEADER: SECRET})
    assert answer.json()["status"] == "ignored"
    assert not runs_for(queued_instance, closed) and not runs_for(queued_instance, edited)


def test_push_is_off_without_a_secret_and_sdp_down_defers_to_polling(receiver, sdp_state, monkeypatch):
    from enhancement_pipeline.local.sdp_simulator import Fault

    ticket_id = sdp_state.add_request(subject="monitor flickers")["id"]
    sdp_state.faults.append(Fault(match=r"GET /api/v3/requests/\d+$", status=503, sdp_code=None, times=20))
    answer = httpx.post(f"{receiver.url}/sdp/{TENANT}/requests", json={"id": ticket_id},
                        headers={SECRET_HEADER: SECRET})
    assert answer.status_code == 503 and "left to polling" in answer.json()["reason"]
    monkeypatch.setenv("SDP_WEBHOOK_SECRET", "")
    answer = httpx.post(f"{receiver.url}/sdp/{TENANT}/requests", json={"id": ticket_id},
                        headers={SECRET_HEADER: ""})
    assert answer.status_code == 403 and "not configured" in answer.json()["reason"]


def test_a_webhook_delivered_twice_starts_one_run(receiver, sdp_state, queued_instance):
    """SDP, or a proxy, retries a delivery it saw time out: the second is acknowledged, not launched again."""
    ticket_id = sdp_state.add_request(subject="Shared mailbox missing in Outlook")["id"]
    with httpx.Client(base_url=receiver.url, headers={SECRET_HEADER: SECRET}) as client:
        first = client.post(f"/sdp/{TENANT}/requests", json={"id": ticket_id})
        again = client.post(f"/sdp/{TENANT}/requests", json={"request": {"id": ticket_id}})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == {"status": "already_launched", "reason": "launched by the push"}
    assert len(runs_for(queued_instance, ticket_id)) == 1


def test_a_body_over_the_limit_is_refused_unread_even_without_a_length(receiver):
    def chunks():
        for _ in range(20):
            yield b"x" * 100_000  # 2 MB in chunks: no Content-Length to refuse it by

    answer = httpx.post(f"{receiver.url}/sdp/{TENANT}/requests", content=chunks(), headers={SECRET_HEADER: SECRET})
    assert answer.status_code == 413 and "bytes" in answer.json()["reason"]
    deep = "[" * 100_000 + "]" * 100_000  # under the limit, nested past Python's recursion limit
    answer = httpx.post(f"{receiver.url}/sdp/{TENANT}/requests", content=deep, headers={SECRET_HEADER: SECRET})
    assert answer.status_code == 422
