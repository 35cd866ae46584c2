"""``new_ticket_sensor``: one ``enhance_ticket`` run per new SDP request."""

import time

import dagster as dg
from pydantic import BaseModel, Field, ValidationError

from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.enhancement.prompts import PROMPT_VERSION
from enhancement_pipeline.servicedesk.client import SdpError
from enhancement_pipeline.servicedesk.payloads import FINISHED_STATUSES, PayloadError, parse_request
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.settings import get_settings

MAX_RUNS_PER_TICK = 200


class NewTicketCursor(BaseModel):
    """Where the sensor stands in the SDP request stream.

    ``created_ms``: the ``created_time`` (epoch ms) of the newest request already handled (requested or
    deliberately skipped). ``ids_at_ms``: the ids handled *at exactly that millisecond*. Each tick asks for
    ``created_time >= created_ms`` and skips those ids, so requests sharing a timestamp are neither lost at a
    page or tick boundary nor requested twice; run keys (``tenant:ticket``) make a repeat harmless anyway.
    The cursor only moves over requests this tick handled, so it never passes one it has not requested.
    """

    created_ms: int
    ids_at_ms: list[str] = Field(default_factory=list)


def initial_cursor(now_ms: int, lookback_minutes: int) -> NewTicketCursor:
    """The first tick starts ``lookback_minutes`` back: recent tickets get a note, the backlog does not."""
    return NewTicketCursor(created_ms=now_ms - lookback_minutes * 60_000)


def _read_cursor(raw: str | None, lookback_minutes: int) -> NewTicketCursor:
    if raw:
        try:
            return NewTicketCursor.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"unreadable new_ticket_sensor cursor {raw!r}: reset it in the UI ({exc})") from exc
    return initial_cursor(int(time.time() * 1000), lookback_minutes)


def _advance(cursor: NewTicketCursor, created_ms: int, ticket_id: str) -> NewTicketCursor:
    if created_ms > cursor.created_ms:
        return NewTicketCursor(created_ms=created_ms, ids_at_ms=[ticket_id])
    return NewTicketCursor(created_ms=cursor.created_ms, ids_at_ms=[*cursor.ids_at_ms, ticket_id])


@dg.sensor(
    job=enhance_ticket,
    minimum_interval_seconds=get_settings().new_ticket_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls SDP for requests created since its cursor and launches one enhance_ticket run per request.",
)
def new_ticket_sensor(context: dg.SensorEvaluationContext, sdp: ServiceDeskResource) -> dg.SensorResult:
    cursor = _read_cursor(context.cursor, get_settings().new_ticket_lookback_minutes)
    criteria = [{"field": "created_time", "condition": "greater or equal", "value": str(cursor.created_ms)}]
    run_requests: list[dg.RunRequest] = []
    skipped: list[str] = []
    try:
        with sdp.client() as client:
            for row in client.iter_requests(search_criteria=criteria, sort_field="created_time", sort_order="asc"):
                if len(run_requests) >= MAX_RUNS_PER_TICK:
                    break  # the rest come next tick; the cursor stops at the last one requested
                try:
                    request = parse_request(row)
                    created_ms = request.created_millis
                    if created_ms is None:
                        raise PayloadError(f"request {request.id} has no created_time")
                except PayloadError as exc:
                    # One malformed row must not stop the stream; it is logged and not retried forever.
                    context.log.error(f"skipping unreadable request row: {exc}")
                    continue
                if created_ms < cursor.created_ms or (created_ms == cursor.created_ms
                                                      and request.id in cursor.ids_at_ms):
                    continue
                if request.status_name in FINISHED_STATUSES:
                    skipped.append(request.id)
                else:
                    run_requests.append(dg.RunRequest(
                        run_key=f"{sdp.tenant_id}:{request.id}",
                        run_config={"ops": {"load_ticket": {"config": {"tenant_id": sdp.tenant_id,
                                                                       "ticket_id": request.id}}}},
                        tags={"tenant": sdp.tenant_id, "ticket_id": request.id,
                              "display_id": request.display_id or "", "prompt_version": PROMPT_VERSION},
                    ))
                cursor = _advance(cursor, created_ms, request.id)
    except SdpError as exc:
        # Keep what this tick already handled; the next tick resumes from there.
        context.log.warning(f"SDP poll stopped early: {exc}")
        if not run_requests and not skipped:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"SDP unavailable: {exc}"),
                                   cursor=cursor.model_dump_json())
    if skipped:
        context.log.info(f"skipped {len(skipped)} already finished request(s): {', '.join(skipped)}")
    return dg.SensorResult(run_requests=run_requests, cursor=cursor.model_dump_json())
