"""The delivery sweep: which recent tickets get another run and why the others do not; ``judge`` on its own,
then the sensor against the SDP simulator over HTTP, the real ledger and a real Dagster instance."""

from __future__ import annotations

import time

import dagster as dg

from enhancement_pipeline.delivery.failures import FAILURE_TAG
from enhancement_pipeline.delivery.sensors import ATTEMPT_TAG, TRIGGER_TAG, build_delivery_sweep
from enhancement_pipeline.delivery.sweep import Attempts, NewTicketPath, SweepPolicy, TicketSeen, judge, path_alive
from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.enhancement.sensors import build_new_ticket_sensor, new_ticket_sensor_name
from enhancement_pipeline.servicedesk.payloads import FINISHED_STATUSES
from enhancement_pipeline.servicedesk.polling import StreamCursor
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import run_enhance, sensor_context

NOW = 1_800_000_000.0
POLICY = SweepPolicy(min_age_s=600, retry_wait_s=600, max_attempts=3)


def verdict(age_min: float = 30, status: str | None = "Open", posted: bool = False, path=None, **attempts):
    ticket = TicketSeen("1", created_ms=int((NOW - age_min * 60) * 1000), status=status)
    return judge(ticket, posted=posted, attempts=Attempts(**attempts), finished_statuses=FINISHED_STATUSES,
                 now_s=NOW, policy=POLICY, new_ticket_path=path)


def test_a_ticket_the_live_new_ticket_sensor_has_not_reached_is_left_to_it_however_old():
    behind = StreamCursor(ms=int((NOW - 40 * 60) * 1000), ids_at_ms=["0"])  # the sensor is 40 min behind
    assert verdict(path=NewTicketPath(behind, alive=True, state="latest tick STARTED 70 s ago")).reason == (
        "not yet reached by the new-ticket sensor (latest tick STARTED 70 s ago): still the new-ticket sensor's")
    assert verdict(path=NewTicketPath(None, alive=True, state="first tick")).action == "skip"
    # Not for ever: a sensor that ticks but never gets to the ticket leaves it to the sweep after six ages.
    assert verdict(age_min=61, path=NewTicketPath(behind, alive=True, state="ok")).action == "enhance"
    # Passed by the sensor, it is the sweep's again; so is everything once the sensor has stopped working.
    passed = StreamCursor(ms=int((NOW - 29 * 60) * 1000))
    assert verdict(path=NewTicketPath(passed, alive=True, state="ok")).action == "enhance"
    assert verdict(path=NewTicketPath(behind, alive=False, state="stopped")).action == "enhance"
    # A ticket with a run behind it was reached (by the sensor or by hand): the age rules apply.
    assert verdict(path=NewTicketPath(behind, alive=True, state="ok"), count=1, last_ended_s=NOW - 1200
                   ).action == "enhance"


def test_a_sensor_is_alive_while_its_latest_tick_is_recent_and_not_a_failure():
    alive = lambda **kw: path_alive(**{"stopped": False, "tick_status": "SUCCESS", "tick_s": NOW - 10,  # noqa: E731
                                       "now_s": NOW, "stale_s": 300, **kw})
    assert alive() and alive(tick_status="STARTED", tick_s=NOW - 200) and alive(tick_status="SKIPPED")
    assert not alive(stopped=True) and not alive(tick_status="FAILURE") and not alive(tick_s=NOW - 400)
    assert not alive(tick_status=None, tick_s=None)


def test_judge_enhances_only_a_ticket_that_needs_it_and_says_why_not_otherwise():
    assert verdict().action == "enhance" and "no run" in verdict().reason
    assert verdict(posted=True).action == "done"
    assert verdict(count=1, last_ended_s=NOW - 1200).reason.startswith("no note 30 min after creation, after 1 run")
    skipped = {
        "Closed in SDP": verdict(status="Closed"),
        "queued or in progress": verdict(count=1, in_flight=True),
        "failed for good (ticket_not_found)": verdict(count=1, last_failure="ticket_not_found"),
        "still the new-ticket sensor's": verdict(age_min=3),
        "given up": verdict(count=3, last_ended_s=NOW - 3600),
        "next try after 10 min": verdict(count=1, last_ended_s=NOW - 120),
    }
    for words, v in skipped.items():
        assert v.action == "skip" and words in v.reason, (words, v)
    # A refused key can be fixed: the ticket is tried again.
    assert verdict(count=1, last_ended_s=NOW - 1200, last_failure="sdp_auth").action == "enhance"


def sweep(tenant, resources, instance, cursor: str | None, policy=SweepPolicy(min_age_s=600, retry_wait_s=0)):
    sensor = build_delivery_sweep(tenant, policy=policy)
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      resources={"sdp": resources["sdp"], "postgres": resources["postgres"]})
    return sensor(context), context


def a_run(instance, ticket_id: str, status: dg.DagsterRunStatus, **tags) -> dg.DagsterRun:
    run = instance.create_run_for_job(enhance_ticket, tags={"tenant": TENANT, "ticket_id": ticket_id, **tags},
                                      run_config={"ops": {"load_ticket": {"config": {
                                          "tenant_id": TENANT, "ticket_id": ticket_id}}}}, status=status)
    if status == dg.DagsterRunStatus.FAILURE:
        instance.report_run_failed(run)
    return run


def test_the_sweep_reenhances_lost_tickets_and_leaves_the_rest_with_reasons(db, sdp_state, resources, tenant,
                                                                           instance):
    now_ms = int(time.time() * 1000)
    old = now_ms - 30 * 60_000
    add = lambda subject, created=old, **kw: sdp_state.add_request(subject=subject, description="details",  # noqa: E731
                                                                   created_millis=created, **kw)["id"]
    noted = add("has its note")
    lost = add("its run and run storage were lost")
    failed = add("its run failed on a 502 and exhausted its retries")
    closed = add("closed by the technician before any note", status="Closed")
    young = add("opened two minutes ago", created=now_ms - 2 * 60_000)
    running = add("its run is in progress")
    deleted = add("deleted after listing")
    assert run_enhance(resources, TENANT, noted, instance).success
    a_run(instance, failed, dg.DagsterRunStatus.FAILURE)
    a_run(instance, running, dg.DagsterRunStatus.STARTED)
    a_run(instance, deleted, dg.DagsterRunStatus.FAILURE, **{FAILURE_TAG: "ticket_not_found"})

    result, context = sweep(tenant, resources, instance, cursor=str(now_ms - 2 * 3600_000))
    requested = {r.tags["ticket_id"]: r for r in result.run_requests}
    assert set(requested) == {lost, failed}
    assert requested[lost].run_key == f"{TENANT}:{lost}:sweep:1"
    assert requested[failed].run_key == f"{TENANT}:{failed}:sweep:2"
    assert requested[failed].tags[TRIGGER_TAG] == "delivery_sweep" and requested[failed].tags[ATTEMPT_TAG] == "2"
    assert "after 1 run" in requested[failed].tags["enhancement/sweep_reason"]

    # What the sweep asked for works, and the next sweep finds nothing left to do.
    assert run_enhance(resources, TENANT, lost, instance).success
    again, _ = sweep(tenant, resources, instance, cursor=str(now_ms - 2 * 3600_000))
    assert {r.tags["ticket_id"] for r in again.run_requests or []} == {failed}
    assert len(sdp_state.notes[noted]) == len(sdp_state.notes[lost]) == 1
    assert not sdp_state.notes[closed] and not sdp_state.notes[young]


def test_a_first_sweep_leaves_the_backlog_from_before_the_pipeline_alone(db, sdp_state, resources, tenant, instance):
    now_ms = int(time.time() * 1000)
    sdp_state.add_request(subject="from last week", created_millis=now_ms - 3 * 3600_000)
    result, context = sweep(tenant, resources, instance, cursor=None)
    assert not result.run_requests
    # The cursor keeps the sweep's start: later sweeps look back to it, never further.
    assert abs(int(context.cursor) - (now_ms - 15 * 60_000)) < 60_000


def test_an_sdp_outage_skips_the_sweep_with_the_reason(db, sdp_state, resources, tenant, instance):
    from enhancement_pipeline.local.sdp_simulator import Fault

    sdp_state.faults.append(Fault(match=r"GET /api/v3/requests$", status=503, sdp_code=4004, times=50))
    result, _ = sweep(tenant, resources, instance, cursor=str(int(time.time() * 1000) - 3600_000))
    assert not result.run_requests and "SDP unavailable" in result.skip_reason.skip_message


def record_new_ticket_tick(instance, cursor: StreamCursor, status: str, age_s: float) -> None:
    """The new-ticket sensor's state and latest tick as the daemon stores them (origin, cursor, tick)."""
    from dagster._core.remote_origin import (
        RegisteredCodeLocationOrigin,
        RemoteInstigatorOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        SensorInstigatorData,
        TickData,
        TickStatus,
    )
    from dagster._utils.error import SerializableErrorInfo

    now = time.time()
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("enhancement_pipeline"),
                                                           "__repository__"), new_ticket_sensor_name(TENANT))
    state = InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE,
                            SensorInstigatorData(cursor=cursor.model_dump_json(),
                                                 last_tick_start_timestamp=now - age_s))
    if instance.get_instigator_state(state.instigator_origin_id, state.selector_id):
        instance.update_instigator_state(state)
    else:
        instance.add_instigator_state(state)
    instance.create_tick(TickData(instigator_origin_id=state.instigator_origin_id, instigator_name=state.name,
                                  instigator_type=InstigatorType.SENSOR, status=TickStatus(status),
                                  timestamp=now - age_s, selector_id=state.selector_id,
                                  error=SerializableErrorInfo("SdpServerError: 503", [], "SdpServerError")
                                  if status == "FAILURE" else None))


def test_a_burst_the_new_ticket_sensor_is_still_queuing_gets_no_second_run(db, sdp_state, resources, tenant,
                                                                            instance):
    """The fault matrix's burst: 300 tickets take the new-ticket sensor several ticks (200 runs each) and more
    than the sweep's minimum age to queue; the sweep must not queue its own runs for the rest meanwhile."""
    now_ms = int(time.time() * 1000)
    reached, waiting = (sdp_state.add_request(subject=f"burst {i}", description="details",
                                              created_millis=now_ms - 20 * 60_000 + i)["id"] for i in range(2))
    a_run(instance, reached, dg.DagsterRunStatus.FAILURE)
    record_new_ticket_tick(instance, StreamCursor(ms=now_ms - 20 * 60_000, ids_at_ms=[reached]), "STARTED", 90)
    result, context = sweep(tenant, resources, instance, cursor=str(now_ms - 3600_000))
    assert {r.tags["ticket_id"] for r in result.run_requests or []} == {reached}

    # Once that sensor has failed, or not ticked for minutes, the sweep takes every ticket older than its age.
    record_new_ticket_tick(instance, StreamCursor(ms=now_ms - 20 * 60_000, ids_at_ms=[reached]), "FAILURE", 5)
    result, _ = sweep(tenant, resources, instance, cursor=str(now_ms - 3600_000))
    assert {r.tags["ticket_id"] for r in result.run_requests} == {reached, waiting}


def test_the_new_ticket_sensor_requests_no_run_for_a_ticket_the_sweep_already_ran(db, sdp_state, resources, tenant,
                                                                                 instance):
    now_ms = int(time.time() * 1000)
    swept, new = (sdp_state.add_request(subject=f"ticket {i}", description="details",
                                        created_millis=now_ms - 60_000 + i)["id"] for i in range(2))
    a_run(instance, swept, dg.DagsterRunStatus.SUCCESS, **{TRIGGER_TAG: "delivery_sweep"})
    sensor = build_new_ticket_sensor(tenant)
    result = sensor(sensor_context(resources, instance, StreamCursor(ms=now_ms - 120_000).model_dump_json()))
    assert [r.tags["ticket_id"] for r in result.run_requests] == [new]
    # The cursor still passes both: the swept ticket is not listed again.
    assert StreamCursor.model_validate_json(result.cursor).handled(now_ms - 60_000 + 1, new)


def test_a_run_created_but_never_queued_does_not_keep_its_ticket_from_the_sweep(db, sdp_state, resources, tenant,
                                                                                instance, monkeypatch):
    """A trigger that died between create_run and submit_run leaves a NOT_STARTED run nothing will start: young,
    it may still be queued; past ``NOT_STARTED_STALE_S`` its ticket is swept like one without a run."""
    from enhancement_pipeline.delivery import sensors as delivery_sensors

    now_ms = int(time.time() * 1000)
    orphan = sdp_state.add_request(subject="created, never queued", description="details",
                                   created_millis=now_ms - 30 * 60_000)["id"]
    a_run(instance, orphan, dg.DagsterRunStatus.NOT_STARTED)
    result, _ = sweep(tenant, resources, instance, cursor=str(now_ms - 2 * 3600_000))
    assert not result.run_requests  # just created: it may be queued yet
    monkeypatch.setattr(delivery_sensors, "NOT_STARTED_STALE_S", 0)
    result, _ = sweep(tenant, resources, instance, cursor=str(now_ms - 2 * 3600_000))
    assert [r.tags["ticket_id"] for r in result.run_requests] == [orphan]
