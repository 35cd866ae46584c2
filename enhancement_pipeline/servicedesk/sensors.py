"""The two SDP sensors of each tenant, built from the tenants file.

- ``<tenant>__new_ticket_sensor``: one ``enhance_ticket`` run per new request (run key ``tenant:ticket``).
- ``<tenant>__resolved_ticket_sensor``: requests that became (or were edited while) Resolved/Closed are upserted
  into ``ticket_history`` with ``source = 'sensor_resolved'``, so history stays fresh between backfills.

Both read SDP through ``polling.iter_since`` and keep a ``StreamCursor``.
"""

import time
from concurrent.futures import ThreadPoolExecutor, wait
from itertools import groupby

import dagster as dg
from pydantic import ValidationError

from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.history.assets import history_asset_key
from enhancement_pipeline.history.importer import fetch_ticket
from enhancement_pipeline.history.search import add_to_lexeme_stats, embed_if_available
from enhancement_pipeline.history.store import merge_tickets
from enhancement_pipeline.models import Ticket
from enhancement_pipeline.servicedesk.client import SdpError, SdpNotFound, SdpRequestError
from enhancement_pipeline.servicedesk.payloads import FINISHED_STATUSES, RESOLVED_STATUSES, PayloadError
from enhancement_pipeline.servicedesk.polling import StreamCursor, iter_since
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.settings import Settings, get_settings
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

MAX_RUNS_PER_TICK = 200
MAX_RESOLVED_PER_TICK = 200
RESOLVED_TICK_BUDGET_S = 20
"""Seconds of the tenant's request budget one resolved-ticket tick may spend (two calls per ticket), so a
tick ends well inside the daemon's 60 s sensor timeout; a timed-out tick would keep its cursor and redo the
same work forever."""
RESOLVED_FETCH_CONCURRENCY = 4
RESOLVED_TICK_DEADLINE_S = 40.0
"""Wall-clock seconds after which a resolved-ticket tick stops fetching and keeps what it has: the budget may be
shared with a running backfill, or paused by a 429, and the daemon times a sensor out at 60 s."""
RESOLVED_MAX_FAILED_TICKS = 3
"""Ticks in a row SDP may fail on one request before the sensor passes it (logged as an error)."""
RESOLVED_LOOKBACK_MINUTES = 24 * 60
"""On its first tick the resolved-ticket sensor picks up requests updated this long ago; older ones are the
backfill's job."""



def initial_cursor(now_ms: int, lookback_minutes: int) -> StreamCursor:
    """A first tick starts ``lookback_minutes`` back (the backlog before that is not the sensor's job)."""
    return StreamCursor(ms=now_ms - lookback_minutes * 60_000)


def read_cursor(raw: str | None, sensor_name: str, lookback_minutes: int) -> StreamCursor:
    """The stored cursor, or a first one. Raises ``ValueError`` naming the sensor for an unreadable cursor."""
    if raw:
        try:
            return StreamCursor.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"unreadable {sensor_name} cursor {raw!r}: reset it in the UI ({exc})") from exc
    return initial_cursor(int(time.time() * 1000), lookback_minutes)


def build_new_ticket_sensor(tenant: Tenant, settings: Settings | None = None) -> dg.SensorDefinition:
    """``<tenant>__new_ticket_sensor``: polls ``created_time`` and launches one enhance_ticket run per request.
    Its interval and first-tick lookback come from ``settings`` (default: the environment's)."""
    tenant_id = tenant.tenant_id
    name = f"{tenant_id}__new_ticket_sensor"
    settings = settings or get_settings()

    @dg.sensor(name=name, job=enhance_ticket, minimum_interval_seconds=settings.new_ticket_sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Polls {tenant_id}'s SDP for requests created since its cursor and launches one "
                           "enhance_ticket run per request (run key tenant:ticket).")
    def new_ticket_sensor(context: dg.SensorEvaluationContext, sdp: ServiceDeskResource) -> dg.SensorResult:
        cursor = read_cursor(context.cursor, name, settings.new_ticket_lookback_minutes)
        run_requests: list[dg.RunRequest] = []
        skipped: list[str] = []
        try:
            with sdp.client(tenant_id) as client:
                for request, created_ms in iter_since(client, "created_time", cursor,
                                                      on_malformed=_log_malformed(context)):
                    if len(run_requests) >= MAX_RUNS_PER_TICK:
                        break  # the rest come next tick; the cursor stops at the last one requested
                    if request.status_name in FINISHED_STATUSES:
                        skipped.append(request.id)
                    else:
                        run_requests.append(dg.RunRequest(
                            run_key=f"{tenant_id}:{request.id}",
                            run_config={"ops": {"load_ticket": {"config": {"tenant_id": tenant_id,
                                                                           "ticket_id": request.id}}}},
                            tags={"tenant": tenant_id, "ticket_id": request.id,
                                  "display_id": request.display_id or ""},
                        ))
                    cursor = cursor.advance(created_ms, request.id)
        except SdpError as exc:
            # Keep what this tick already handled; the next tick resumes from there.
            context.log.warning(f"SDP poll stopped early: {exc}")
            if not run_requests and not skipped:
                return dg.SensorResult(skip_reason=dg.SkipReason(f"SDP unavailable: {exc}"),
                                       cursor=cursor.model_dump_json())
        if skipped:
            context.log.info(f"skipped {len(skipped)} already finished request(s): {', '.join(skipped)}")
        return dg.SensorResult(run_requests=run_requests, cursor=cursor.model_dump_json())

    return new_ticket_sensor


def build_resolved_ticket_sensor(tenant: Tenant, settings: Settings | None = None) -> dg.SensorDefinition:
    """``<tenant>__resolved_ticket_sensor``: upserts Resolved/Closed requests updated since its cursor.

    The cursor is a ``StreamCursor`` on ``last_updated_time``: the newest update already written to
    ``ticket_history`` and the ids written at that millisecond. It advances only over requests that were
    written (or that can never be: deleted, unreadable, reopened), in update order, and stops at the first
    request SDP failed to serve, so an outage delays history and loses nothing. A re-resolved ticket has a
    newer ``last_updated_time`` and is written again with its new resolution.
    """
    tenant_id = tenant.tenant_id
    name = f"{tenant_id}__resolved_ticket_sensor"
    settings = settings or get_settings()
    status_criterion = {"field": "status.name", "condition": "is", "values": sorted(RESOLVED_STATUSES)}

    @dg.sensor(name=name, minimum_interval_seconds=settings.resolved_ticket_sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Keeps {tenant_id}/ticket_history fresh: upserts requests resolved or closed (or "
                           "edited while resolved) since its cursor, source sensor_resolved.")
    def resolved_ticket_sensor(context: dg.SensorEvaluationContext, sdp: ServiceDeskResource,
                               postgres: PostgresResource) -> dg.SensorResult:
        cursor = read_cursor(context.cursor, name, RESOLVED_LOOKBACK_MINUTES)
        deadline = time.monotonic() + RESOLVED_TICK_DEADLINE_S
        limit = max(1, min(MAX_RESOLVED_PER_TICK,
                           sdp.endpoint(tenant_id).request_budget_per_s * RESOLVED_TICK_BUDGET_S // 2))
        changed: list[tuple[str, int]] = []
        listing_error: SdpError | None = None
        with sdp.client(tenant_id, budgeted=True) as client:
            try:
                for request, updated_ms in iter_since(client, "last_updated_time", cursor,
                                                      criteria=[status_criterion],
                                                      fields_required=["last_updated_time"],
                                                      on_malformed=_log_malformed(context)):
                    changed.append((request.id, updated_ms))
                    if len(changed) >= limit or time.monotonic() > deadline:
                        break
            except SdpError as exc:
                listing_error = exc  # still write what was listed before the failure
            pool = ThreadPoolExecutor(RESOLVED_FETCH_CONCURRENCY)
            futures = [pool.submit(fetch_ticket, client, tenant_id, request_id) for request_id, _ in changed]
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
            fetched = [f.result() if f.done() else TimeoutError("the tick's deadline came first") for f in futures]
            pool.shutdown(wait=False, cancel_futures=True)

        tickets: list[Ticket] = []
        passed: list[str] = []
        stopped: str | None = None
        for (request_id, updated_ms), result in zip(changed, fetched, strict=True):
            if isinstance(result, Ticket) and result.status in RESOLVED_STATUSES and result.resolved_at:
                tickets.append(result)
            elif isinstance(result, Ticket):
                # Reopened since it was listed, or closed without a resolved_time (not history by definition).
                passed.append(f"{request_id}: {result.status}, resolved_time {result.resolved_at}")
            elif isinstance(result, SdpNotFound | SdpRequestError | PayloadError):
                passed.append(f"{request_id}: {type(result).__name__}: {result}")  # will never succeed
            elif isinstance(result, TimeoutError):
                stopped = f"{request_id}: {result}"
                break  # not SDP's fault: this ticket first, next tick
            elif cursor.failures.get(request_id, 0) + 1 < RESOLVED_MAX_FAILED_TICKS:
                stopped = f"{request_id}: {type(result).__name__}: {result}"
                cursor = cursor.failed(request_id)
                break  # transient: retry from here next tick
            else:
                context.log.error(f"SDP failed on request {request_id} {RESOLVED_MAX_FAILED_TICKS} ticks in a row "
                                  f"({type(result).__name__}: {result}); passing it. A backfill of its month "
                                  "picks it up once SDP serves it.")
            cursor = cursor.advance(updated_ms, request_id)

        events: list[dg.AssetObservation] = []
        if tickets:
            with postgres.connection() as conn:
                load = merge_tickets(conn, tenant_id, tickets, "sensor_resolved")
                ids = [t.ticket_id for t in tickets]
                add_to_lexeme_stats(conn, tenant_id, ids)  # their words are searchable from now on
                embed_if_available(conn, tenant_id, context.log, ticket_ids=ids)
            context.log.info(f"ticket_history: {load.inserted} new, {load.updated} changed, {load.unchanged} "
                             f"unchanged resolved request(s)")
            events = _observations(tenant, tickets)
        for line in passed:
            context.log.warning(f"not written to ticket_history: {line}")
        problem = stopped or (str(listing_error) if listing_error else None)
        if problem:
            context.log.warning(f"SDP failed; resuming from here next tick: {problem}")
            if not changed:
                return dg.SensorResult(skip_reason=dg.SkipReason(f"SDP unavailable: {problem}"),
                                       cursor=cursor.model_dump_json())
        if not changed:
            return dg.SensorResult(skip_reason=dg.SkipReason("no resolved request updated since the cursor"),
                                   cursor=cursor.model_dump_json())
        return dg.SensorResult(cursor=cursor.model_dump_json(), asset_events=events)

    return resolved_ticket_sensor


def _observations(tenant: Tenant, tickets: list[Ticket]) -> list[dg.AssetObservation]:
    """One observation per month touched, so the asset's page shows what the sensor wrote and where."""
    first = tenant.history_start_date.strftime("%Y-%m-01")
    events = []
    def month_of(t: Ticket) -> str:
        return t.resolved_at.strftime("%Y-%m-01") if t.resolved_at else ""

    for month, group in groupby(sorted(tickets, key=month_of), key=month_of):
        ids = [t.ticket_id for t in group]
        events.append(dg.AssetObservation(
            asset_key=history_asset_key(tenant.tenant_id),
            # Months before the history's first partition have no partition to name.
            partition=month if month and month >= first else None,
            metadata={"source": "sensor_resolved", "tickets": len(ids), "ticket_ids": ", ".join(ids[:50])}))
    return events


def _log_malformed(context: dg.SensorEvaluationContext):
    def log(row: dict, exc: Exception) -> None:
        # One malformed row must not stop the stream: it is logged and skipped (read again, and logged again,
        # on later pages until the cursor passes its timestamp).
        context.log.error(f"skipping unreadable request row {row.get('id', '?')!r}: {exc}")

    return log
