"""``<tenant>__delivery_sweep``: the sensor that makes sure every recent ticket gets its note.

Every few minutes it lists the requests SDP created in the last ``delivery_sweep_lookback_hours``, reads the
note ledger (``posted_notes``) and the tenant's ``enhance_ticket`` runs in Dagster's run storage, and asks
``delivery.sweep.judge`` about each ticket. A ticket that needs another attempt gets a run with the run key
``<tenant>:<ticket>:sweep:<attempt>`` and the tags ``enhancement/trigger=delivery_sweep`` and
``enhancement/attempt``, so the runs page shows every attempt of a ticket (filter by its ``ticket_id`` tag).
Every ticket it leaves alone is named in the tick's log with the reason.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType
from pydantic import ValidationError

from enhancement_pipeline.delivery.claims import TRIGGER_TAG
from enhancement_pipeline.delivery.failures import FAILURE_TAG
from enhancement_pipeline.delivery.sweep import Attempts, NewTicketPath, SweepPolicy, TicketSeen, judge, path_alive
from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.enhancement.sensors import new_ticket_sensor_name
from enhancement_pipeline.servicedesk.client import SdpError
from enhancement_pipeline.servicedesk.payloads import FINISHED_STATUSES
from enhancement_pipeline.servicedesk.polling import StreamCursor, raw_millis, raw_request_id, raw_text
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.settings import Settings, get_settings
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

MAX_LISTED = 5_000
"""Requests one sweep reads at most (50 pages): more than an MSP tenant opens in a day."""
MAX_RUNS_PER_SWEEP = 100
NEW_TICKET_SENSOR_STALE_S = 300.0
"""A new-ticket sensor whose latest tick is older than this (or than the sweep's minimum age) has stopped working:
the sweep no longer waits for it (its ticks come every few seconds while it works)."""
ATTEMPT_TAG = "enhancement/attempt"
IN_FLIGHT = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


def _seen(row: dict) -> TicketSeen | None:
    """A listed row, read as leniently as the new-ticket sensor reads one (the sweep must not stop on one odd
    row); None without an id or a created_time."""
    ticket_id, created_ms = raw_request_id(row), raw_millis(row, "created_time")
    if ticket_id is None or created_ms is None:
        return None
    return TicketSeen(ticket_id=ticket_id, created_ms=created_ms, status=raw_text(row, "status", "name"),
                      display_id=raw_text(row, "display_id"))


def attempts_by_ticket(instance: dg.DagsterInstance, tenant_id: str, since: datetime) -> dict[str, Attempts]:
    """The tenant's ``enhance_ticket`` runs created since ``since``, summed up per ``ticket_id`` tag."""
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=enhance_ticket.name, tags={"tenant": tenant_id},
                                                             created_after=since))
    grouped: dict[str, list] = defaultdict(list)
    for record in records:
        ticket_id = record.dagster_run.tags.get("ticket_id")
        if ticket_id:
            grouped[ticket_id].append(record)
    out = {}
    for ticket_id, runs in grouped.items():
        runs.sort(key=lambda r: r.create_timestamp)
        last = runs[-1]
        ended = [r.end_time for r in runs if r.end_time]
        out[ticket_id] = Attempts(
            count=len(runs), in_flight=any(_in_flight(r) for r in runs),
            last_ended_s=max(ended) if ended else None,
            last_failure=last.dagster_run.tags.get(FAILURE_TAG)
            if last.dagster_run.status == dg.DagsterRunStatus.FAILURE else None)
    return out


NOT_STARTED_STALE_S = 600
"""A run still NOT_STARTED this long after it was created was never queued (its creator failed between
``create_run`` and ``submit_run``): nothing will ever start it, so it is not in flight."""


def _in_flight(record) -> bool:
    if record.dagster_run.status == dg.DagsterRunStatus.NOT_STARTED:
        return time.time() - record.create_timestamp.timestamp() < NOT_STARTED_STALE_S
    return record.dagster_run.status in IN_FLIGHT


def new_ticket_path(instance: dg.DagsterInstance, sensor_name: str, now_s: float, stale_s: float) -> NewTicketPath:
    """Where the sensor ``sensor_name`` stands: its stored cursor and whether its latest tick is healthy and
    recent (``delivery.sweep.path_alive``), read from Dagster's schedule storage. Dagster has no public API for
    another sensor's state; ``all_instigator_state`` and ``get_ticks`` are what its UI's sensor page reads."""
    states = [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
              if s.instigator_name == sensor_name]
    if not states:
        return NewTicketPath(cursor=None, alive=False, state="no state in Dagster yet")
    # One per code location that ever served it; the one ticking most recently is the live one.
    state = max(states, key=lambda s: getattr(s.instigator_data, "last_tick_start_timestamp", None) or 0)
    stopped = state.status == InstigatorStatus.STOPPED
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
    tick = ticks[0] if ticks else None
    tick_s = (tick.end_timestamp or tick.timestamp) if tick else None
    alive = path_alive(stopped=stopped, tick_status=tick.status.value if tick else None, tick_s=tick_s,
                       now_s=now_s, stale_s=stale_s)
    raw = getattr(state.instigator_data, "cursor", None)
    try:
        cursor = StreamCursor.model_validate_json(raw) if raw else None
    except ValidationError:
        cursor = None
    words = "stopped" if stopped else (f"latest tick {tick.status.value} {now_s - tick_s:.0f} s ago" if tick
                                       else "no tick yet")
    return NewTicketPath(cursor=cursor, alive=alive, state=words)


def build_delivery_sweep(tenant: Tenant, settings: Settings | None = None,
                         policy: SweepPolicy | None = None) -> dg.SensorDefinition:
    """``<tenant>__delivery_sweep``, every ``delivery_sweep_interval_s`` (see the module docstring)."""
    tenant_id = tenant.tenant_id
    settings = settings or get_settings()
    policy = policy or SweepPolicy(min_age_s=settings.delivery_sweep_min_age_minutes * 60,
                                   retry_wait_s=settings.delivery_sweep_retry_wait_minutes * 60)
    lookback = timedelta(hours=settings.delivery_sweep_lookback_hours)

    @dg.sensor(name=f"{tenant_id}__delivery_sweep", job=enhance_ticket,
               minimum_interval_seconds=settings.delivery_sweep_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Every ticket of {tenant_id} created in the last {settings.delivery_sweep_lookback_hours} "
                           "h that has neither a posted note nor a run in flight is enhanced again (run key "
                           "tenant:ticket:sweep:attempt); the tick's log says why each other one was left alone.")
    def delivery_sweep(context: dg.SensorEvaluationContext, sdp: ServiceDeskResource,
                       postgres: PostgresResource) -> dg.SensorResult:
        now = datetime.now(UTC)
        # The sweep covers what the pipeline was there for: from its first tick (less the new-ticket sensor's own
        # first-tick lookback), never the whole backlog of a newly installed tenant.
        started_ms = int(context.cursor) if (context.cursor or "").isdigit() else int(
            (now - timedelta(minutes=settings.new_ticket_lookback_minutes)).timestamp() * 1000)
        context.update_cursor(str(started_ms))
        since = max(now - lookback, datetime.fromtimestamp(started_ms / 1000, UTC))
        criteria = [{"field": "created_time", "condition": "greater than",
                     "value": str(int(since.timestamp() * 1000))}]
        try:
            with sdp.client(tenant_id, budgeted=True) as client:
                rows = list(client.iter_requests(search_criteria=criteria, sort_field="created_time",
                                                 max_rows=MAX_LISTED))
        except SdpError as exc:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"SDP unavailable, no sweep this time: {exc}"))
        seen = [t for t in map(_seen, rows) if t is not None]
        if len(seen) < len(rows):
            context.log.warning(f"{len(rows) - len(seen)} listed row(s) without an id or created_time: not swept")
        with postgres.connection() as conn:
            posted = {r[0] for r in conn.execute(
                "SELECT ticket_id FROM posted_notes WHERE tenant_id = %s AND state = 'posted'"
                " AND ticket_id = ANY(%s)", (tenant_id, [t.ticket_id for t in seen]))}
        # Runs since a little before the oldest listed ticket: its first run may have been queued before it.
        attempts = attempts_by_ticket(context.instance, tenant_id, since - timedelta(minutes=5))
        # A ticket the new-ticket sensor has not reached yet is its own, as long as that sensor is alive: a
        # burst takes it several ticks to queue, and a second run of the same ticket only wastes a worker.
        path = new_ticket_path(context.instance, new_ticket_sensor_name(tenant_id), time.time(),
                               stale_s=max(policy.min_age_s, NEW_TICKET_SENSOR_STALE_S))

        requests, skipped = [], []
        for ticket in seen:
            tried = attempts.get(ticket.ticket_id, Attempts())
            verdict = judge(ticket, posted=ticket.ticket_id in posted, attempts=tried,
                            finished_statuses=FINISHED_STATUSES, now_s=time.time(), policy=policy,
                            new_ticket_path=path)
            if verdict.action == "skip":
                skipped.append(f"{ticket.ticket_id}: {verdict.reason}")
            elif verdict.action == "enhance" and len(requests) < MAX_RUNS_PER_SWEEP:
                attempt = tried.count + 1
                requests.append(dg.RunRequest(
                    run_key=f"{tenant_id}:{ticket.ticket_id}:sweep:{attempt}",
                    run_config={"ops": {"load_ticket": {"config": {"tenant_id": tenant_id,
                                                                   "ticket_id": ticket.ticket_id}}}},
                    tags={"tenant": tenant_id, "ticket_id": ticket.ticket_id, "display_id": ticket.display_id or "",
                          TRIGGER_TAG: "delivery_sweep", ATTEMPT_TAG: str(attempt),
                          "enhancement/sweep_reason": verdict.reason[:200]}))
                context.log.warning(f"enhancing {ticket.ticket_id} again (attempt {attempt}): {verdict.reason}")
        # Young tickets are the normal path's; only the others are worth a line each.
        for line in skipped:
            if "still the new-ticket sensor's" not in line:
                context.log.info(f"left alone: {line}")
        summary = (f"{len(seen)} ticket(s) created since {since:%Y-%m-%d %H:%M} UTC: {len(posted)} with a note, "
                   f"{len(requests)} enhanced again, {len(skipped)} left alone")
        context.log.info(summary)
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason(summary))
        return dg.SensorResult(run_requests=requests)

    return delivery_sweep
