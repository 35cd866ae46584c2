"""``ticket_history`` kept fresh between backfills: a sensor that finds what was resolved, runs that write it.

- ``<tenant>__resolved_ticket_sensor`` only lists: requests Resolved/Closed whose ``last_updated_time`` is past
  its cursor (keyset paging, ``servicedesk.polling``), at most ``MAX_TICKETS_PER_RUN`` per run request, and asks
  for a ``sync_resolved_tickets`` run with those ids (run key ``<tenant>:resolved:<digest>``). Its cursor moves
  past everything it handed to a run, so a tick is a few listing calls, far inside the daemon's timeout.
- ``sync_resolved_tickets`` (one run per batch) fetches each request and its resolution through the tenant's
  request budget, upserts the resolved ones (``source = 'sensor_resolved'``), counts their words and embeds
  them, and records one ``AssetObservation`` of ``<tenant>/ticket_history`` per month touched. A request
  reopened since, deleted, or unreadable is passed (logged; it is not history). A transient SDP failure on some
  requests writes the others, then fails the step: ``SDP_RETRY_POLICY`` retries it, then run retries; a batch
  that still fails leaves its tickets to their next update or to the month's backfill, and says so.

The run is the audit trail: the runs page lists every sync with its tickets and what it wrote.
"""


import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby

import dagster as dg

from enhancement_pipeline.delivery.failures import RUN_MAX_RETRIES, SDP_RETRY_POLICY
from enhancement_pipeline.history.assets import history_asset_key
from enhancement_pipeline.history.importer import fetch_ticket
from enhancement_pipeline.history.search import add_to_lexeme_stats, embed_if_available
from enhancement_pipeline.history.store import HistoryLoad, merge_tickets
from enhancement_pipeline.models import Ticket
from enhancement_pipeline.servicedesk.client import SdpError, SdpNotFound, SdpRequestError
from enhancement_pipeline.servicedesk.payloads import RESOLVED_STATUSES, PayloadError
from enhancement_pipeline.servicedesk.polling import iter_since, log_malformed, read_cursor
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.settings import Settings, get_settings
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

MAX_TICKETS_PER_RUN = 200
FETCH_CONCURRENCY = 4
RESOLVED_LOOKBACK_MINUTES = 24 * 60
"""On its first tick the sensor picks up requests updated this long ago; older ones are the backfill's job."""


class SyncConfig(dg.Config):
    """Which resolved requests a ``sync_resolved_tickets`` run writes (set by the sensor)."""

    tenant_id: str
    ticket_ids: list[str]


@dataclass
class SyncOutcome:
    """What a batch came to: tickets written, requests passed (with why), requests SDP failed on (transient)."""

    written: list[Ticket] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    load: HistoryLoad | None = None


def sort_results(ids: list[str], results: list[Ticket | Exception]) -> SyncOutcome:
    """Split fetched results (``fetch_ticket``'s, in ``ids``' order) into written / passed / failed."""
    outcome = SyncOutcome()
    for request_id, result in zip(ids, results, strict=True):
        if isinstance(result, Ticket) and result.status in RESOLVED_STATUSES and result.resolved_at:
            outcome.written.append(result)
        elif isinstance(result, Ticket):
            outcome.passed.append(f"{request_id}: {result.status}, resolved_time {result.resolved_at}")
        elif isinstance(result, SdpNotFound | SdpRequestError | PayloadError):
            outcome.passed.append(f"{request_id}: {type(result).__name__}: {result}")  # will never succeed
        else:
            outcome.failed.append(f"{request_id}: {type(result).__name__}: {result}")
    return outcome


class SyncIncomplete(Exception):
    """SDP failed (transiently) on some requests of the batch; the others were written."""


def _observations(tenant_id: str, first_month: str, tickets: list[Ticket]) -> list[dg.AssetObservation]:
    """One observation per month touched, so the asset's page shows what the sync wrote and where."""
    def month_of(t: Ticket) -> str:
        return t.resolved_at.strftime("%Y-%m-01") if t.resolved_at else ""

    events = []
    for month, group in groupby(sorted(tickets, key=month_of), key=month_of):
        ids = [t.ticket_id for t in group]
        events.append(dg.AssetObservation(
            asset_key=history_asset_key(tenant_id),
            # Months before the history's first partition have no partition to name.
            partition=month if month and month >= first_month else None,
            metadata={"source": "sensor_resolved", "tickets": len(ids), "ticket_ids": ", ".join(ids[:50])}))
    return events


def build_sync_job(tenants: list[Tenant]) -> dg.JobDefinition:
    """``sync_resolved_tickets``: one op that writes a batch of resolved requests into ``ticket_history``."""
    first_months = {t.tenant_id: t.history_start_date.strftime("%Y-%m-01") for t in tenants}

    @dg.op(name="write_resolved_tickets", retry_policy=SDP_RETRY_POLICY,
           description="Fetch the listed resolved requests (through the tenant's request budget) and upsert "
                       "them into ticket_history, searchable and embedded at once.")
    def write_resolved_tickets(context: dg.OpExecutionContext, config: SyncConfig, sdp: ServiceDeskResource,
                               postgres: PostgresResource) -> None:
        ids = list(dict.fromkeys(config.ticket_ids))
        with sdp.client(config.tenant_id, budgeted=True) as client, ThreadPoolExecutor(FETCH_CONCURRENCY) as pool:
            results = list(pool.map(lambda rid: fetch_ticket(client, config.tenant_id, rid), ids))
        outcome = sort_results(ids, results)
        if outcome.written:
            with postgres.connection() as conn:
                outcome.load = merge_tickets(conn, config.tenant_id, outcome.written, "sensor_resolved")
                written_ids = [t.ticket_id for t in outcome.written]
                add_to_lexeme_stats(conn, config.tenant_id, written_ids)  # searchable from now on
                embed_if_available(conn, config.tenant_id, context.log, ticket_ids=written_ids)
            first = first_months.get(config.tenant_id, "0000-00-01")
            for event in _observations(config.tenant_id, first, outcome.written):
                context.log_event(event)
        for line in outcome.passed:
            context.log.warning(f"not written to ticket_history: {line}")
        load = outcome.load
        context.add_output_metadata({
            "tenant_id": config.tenant_id, "listed": len(ids), "written": len(outcome.written),
            "inserted": load.inserted if load else 0, "updated": load.updated if load else 0,
            "unchanged": load.unchanged if load else 0, "passed": len(outcome.passed),
            "failed": len(outcome.failed), "ticket_ids": ", ".join(ids[:50])})
        if outcome.failed:
            message = (f"SDP failed on {len(outcome.failed)} of {len(ids)} request(s) (the others are written): "
                       f"{'; '.join(outcome.failed[:5])}")
            if context.retry_number >= SDP_RETRY_POLICY.max_retries:
                # Dagster reports the last attempt as "Exceeded max_retries": the reason goes in the run's log.
                context.log.error(f"{message}. If run retries do not help either, these tickets reach "
                                  "ticket_history with their next update or the month's backfill.")
            raise SyncIncomplete(message)

    @dg.job(name="sync_resolved_tickets", executor_def=dg.in_process_executor,
            tags={"dagster/max_retries": str(RUN_MAX_RETRIES)},
            description="Write requests resolved in SDP since the last sync into ticket_history (launched by each "
                        "tenant's resolved_ticket_sensor).")
    def sync_resolved_tickets() -> None:
        write_resolved_tickets()

    return sync_resolved_tickets


def build_resolved_ticket_sensor(tenant: Tenant, job: dg.JobDefinition,
                                 settings: Settings | None = None) -> dg.SensorDefinition:
    """``<tenant>__resolved_ticket_sensor``: lists Resolved/Closed requests updated since its cursor and asks
    ``job`` (``build_sync_job``'s) to write them. The cursor is a ``StreamCursor`` on ``last_updated_time``;
    a listing failure keeps what was listed before it and the next tick resumes there."""
    tenant_id = tenant.tenant_id
    name = f"{tenant_id}__resolved_ticket_sensor"
    settings = settings or get_settings()
    status_criterion = {"field": "status.name", "condition": "is", "values": sorted(RESOLVED_STATUSES)}

    @dg.sensor(name=name, job=job, minimum_interval_seconds=settings.resolved_ticket_sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Keeps {tenant_id}/ticket_history fresh: lists requests resolved or closed (or edited "
                           "while resolved) since its cursor and launches a sync_resolved_tickets run for them.")
    def resolved_ticket_sensor(context: dg.SensorEvaluationContext, sdp: ServiceDeskResource) -> dg.SensorResult:
        cursor = read_cursor(context.cursor, name, RESOLVED_LOOKBACK_MINUTES)
        batch: list[str] = []
        problem = None
        try:
            with sdp.client(tenant_id) as client:
                for request, updated_ms in iter_since(client, "last_updated_time", cursor,
                                                      criteria=[status_criterion],
                                                      fields_required=["last_updated_time"],
                                                      on_malformed=log_malformed(context)):
                    batch.append(request.id)
                    cursor = cursor.advance(updated_ms, request.id)
                    if len(batch) >= MAX_TICKETS_PER_RUN:
                        break  # the rest next tick
        except SdpError as exc:
            problem = f"SDP failed while listing; resuming from here next tick: {exc}"
            context.log.warning(problem)
        if not batch:
            reason = problem or "no resolved request updated since the cursor"
            return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.model_dump_json())
        digest = hashlib.sha256(f"{cursor.model_dump_json()}|{','.join(batch)}".encode()).hexdigest()[:16]
        request = dg.RunRequest(
            run_key=f"{tenant_id}:resolved:{digest}",
            run_config={"ops": {"write_resolved_tickets": {"config": {"tenant_id": tenant_id, "ticket_ids": batch}}}},
            # Ahead of queued enhance_ticket runs: a sync is one short run, and a burst of new tickets (one run
            # each) would otherwise hold the history, and the fixes it teaches the next notes, for minutes.
            tags={"tenant": tenant_id, "tickets": str(len(batch)), "dagster/priority": "1"})
        return dg.SensorResult(run_requests=[request], cursor=cursor.model_dump_json())

    return resolved_ticket_sensor
