"""``<tenant>__new_ticket_sensor``: one ``enhance_ticket`` run per new request (run key ``tenant:ticket``).

It reads SDP through ``servicedesk.polling.iter_since`` on ``created_time`` and keeps a ``StreamCursor``. Where SDP
pushes new tickets (``push/receiver.py``), the receiver has usually launched the ticket's run before this sensor
sees it: each ticket is claimed (``delivery/claims.py``) and only the trigger holding the claim launches. The
delivery sweep (``delivery/sensors.py``) comes back for any ticket whose run was lost.
"""

import dagster as dg
import psycopg

from enhancement_pipeline.delivery import claims
from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.servicedesk.client import SdpError
from enhancement_pipeline.servicedesk.payloads import FINISHED_STATUSES
from enhancement_pipeline.servicedesk.polling import MalformedRow, iter_since, raw_text, read_cursor
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.settings import Settings, get_settings
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

MAX_RUNS_PER_TICK = 200


def new_ticket_sensor_name(tenant_id: str) -> str:
    """The tenant's new-ticket sensor (the delivery sweep reads its cursor by this name)."""
    return f"{tenant_id}__new_ticket_sensor"


def already_run(instance: dg.DagsterInstance, tenant_id: str, ticket_ids: list[str]) -> dict[str, str]:
    """{ticket id: run id} for those of ``ticket_ids`` that already have an ``enhance_ticket`` run of this
    tenant (the delivery sweep's, one launched by hand, or this sensor's own from a tick Dagster resumed)."""
    if not ticket_ids:
        return {}
    records = instance.get_run_records(filters=dg.RunsFilter(
        job_name=enhance_ticket.name, tags={"tenant": tenant_id, "ticket_id": ticket_ids}))
    return {r.dagster_run.tags["ticket_id"]: r.dagster_run.run_id for r in records}


def _claimed(context: dg.SensorEvaluationContext, postgres: PostgresResource, tenant_id: str,
             run_requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The requests whose ticket this sensor holds the claim on (``delivery/claims.py``): a ticket SDP pushed is
    the push receiver's. When the claims cannot be read (Postgres away), every request goes ahead: a ticket is
    never lost for it, and a second run of a pushed ticket posts no second note (``delivery/posting.py``)."""
    if not run_requests:
        return run_requests
    try:
        with postgres.connection() as conn:
            held = claims.claim(conn, tenant_id, [r.tags["ticket_id"] for r in run_requests], claims.SENSOR).held
    except psycopg.Error as exc:
        context.log.warning(f"ticket claims unavailable ({type(exc).__name__}: {exc}); requesting every run")
        return run_requests
    pushed = [r.tags["ticket_id"] for r in run_requests if held.get(r.tags["ticket_id"]) != claims.SENSOR]
    if pushed:
        context.log.info(f"{len(pushed)} request(s) already launched by {claims.PUSH}: {', '.join(pushed)}")
    return [r for r in run_requests if held.get(r.tags["ticket_id"]) == claims.SENSOR]


def build_new_ticket_sensor(tenant: Tenant, settings: Settings | None = None) -> dg.SensorDefinition:
    """``<tenant>__new_ticket_sensor``: polls ``created_time`` and launches one enhance_ticket run per request.
    Its interval and first-tick lookback come from ``settings`` (default: the environment's)."""
    tenant_id = tenant.tenant_id
    name = new_ticket_sensor_name(tenant_id)
    settings = settings or get_settings()

    @dg.sensor(name=name, job=enhance_ticket, minimum_interval_seconds=settings.new_ticket_sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Polls {tenant_id}'s SDP for requests created since its cursor and launches one "
                           "enhance_ticket run per request (run key tenant:ticket).")
    def new_ticket_sensor(context: dg.SensorEvaluationContext, sdp: ServiceDeskResource,
                          postgres: PostgresResource) -> dg.SensorResult:
        cursor = read_cursor(context.cursor, name, settings.new_ticket_lookback_minutes)
        run_requests: list[dg.RunRequest] = []
        requested: set[str] = set()
        skipped: list[str] = []
        unreadable: list[tuple[dict, MalformedRow]] = []  # rows the listing could not read, in stream order

        def request_run(request_id: str, display_id: str | None, **tags: str) -> None:
            requested.add(request_id)
            run_requests.append(dg.RunRequest(
                run_key=f"{tenant_id}:{request_id}",
                run_config={"ops": {"load_ticket": {"config": {"tenant_id": tenant_id, "ticket_id": request_id}}}},
                tags={"tenant": tenant_id, "ticket_id": request_id, "display_id": display_id or "", **tags},
            ))

        def take_unreadable() -> bool:
            """Handle the unreadable rows listed so far; False when the tick's cap stopped it."""
            # Such a row still names a request: its run fetches the full record and, if that cannot be read
            # either, fails with the reason, which the UI shows on the run (a log line alone is lost in ticks).
            nonlocal cursor
            while unreadable:
                row, exc = unreadable[0]
                rid = exc.request_id
                if rid is None:
                    context.log.error(f"unreadable request row without a usable id, no run possible: {exc}")
                elif raw_text(row, "status", "name") in FINISHED_STATUSES:
                    skipped.append(rid)
                elif rid not in requested:
                    if len(run_requests) >= MAX_RUNS_PER_TICK:
                        return False
                    context.log.error(f"request {rid}: its list row is unreadable ({exc}); requesting its run "
                                      "anyway, which reads the full record")
                    request_run(rid, raw_text(row, "display_id"), list_row="unreadable")
                if rid is not None and exc.ms is not None:
                    cursor = cursor.advance(exc.ms, rid)
                unreadable.pop(0)
            return True

        full = False
        error: SdpError | None = None
        try:
            with sdp.client(tenant_id) as client:
                for request, created_ms in iter_since(client, "created_time", cursor,
                                                      on_malformed=lambda row, exc: unreadable.append((row, exc))):
                    if not take_unreadable() or len(run_requests) >= MAX_RUNS_PER_TICK:
                        full = True
                        break  # the rest come next tick; the cursor stops at the last one requested
                    if request.status_name in FINISHED_STATUSES:
                        skipped.append(request.id)
                    elif request.id not in requested:
                        request_run(request.id, request.display_id)
                    cursor = cursor.advance(created_ms, request.id)
        except SdpError as exc:
            error = exc
        if not full:
            take_unreadable()  # those listed after the last readable row
        if error is not None:
            # Keep what this tick already handled; the next tick resumes from there.
            context.log.warning(f"SDP poll stopped early: {error}")
            if not run_requests and not skipped:
                return dg.SensorResult(skip_reason=dg.SkipReason(f"SDP unavailable: {error}"),
                                       cursor=cursor.model_dump_json())
        if skipped:
            context.log.info(f"skipped {len(skipped)} already finished request(s): {', '.join(skipped)}")
        # A ticket the delivery sweep reached first (this sensor was down or failing) has its run already.
        ran = already_run(context.instance, tenant_id, [r.tags["ticket_id"] for r in run_requests])
        if ran:
            context.log.info(f"{len(ran)} request(s) already have a run, none requested again: "
                             + ", ".join(f"{t} (run {run_id[:8]})" for t, run_id in ran.items()))
            run_requests = [r for r in run_requests if r.tags["ticket_id"] not in ran]
        run_requests = _claimed(context, postgres, tenant_id, run_requests)
        return dg.SensorResult(run_requests=run_requests, cursor=cursor.model_dump_json())

    return new_ticket_sensor
