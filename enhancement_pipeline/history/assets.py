"""``ticket_history``: resolved SDP requests, one monthly partition per month of resolution."""

import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from enhancement_pipeline.history.store import upsert_history
from enhancement_pipeline.models import Ticket
from enhancement_pipeline.servicedesk.client import SdpError, ServiceDeskClient
from enhancement_pipeline.servicedesk.payloads import (
    RESOLVED_STATUSES,
    PayloadError,
    datetime_to_millis,
    parse_request,
    resolution_text,
    to_ticket,
)
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.settings import get_settings
from enhancement_pipeline.storage.postgres import PostgresResource

history_partitions = dg.MonthlyPartitionsDefinition(start_date=get_settings().history_start_date, end_offset=1)
"""Monthly partitions from HISTORY_START_DATE through the current month (end_offset=1: the month in progress)."""

FETCH_CONCURRENCY = 4


def _fetch_ticket(client: ServiceDeskClient, tenant_id: str, request_id: str) -> Ticket:
    request = parse_request(client.get_request(request_id))
    return to_ticket(tenant_id, request, resolution_text(client.get_resolution(request_id)))


@dg.asset(
    partitions_def=history_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="history",
    kinds={"postgres"},
    description="Resolved ServiceDesk Plus requests (subject, description, resolution) that similar_tickets "
                "searches. A partition is a month of resolved_time; a backfill of any range is one run.",
)
def ticket_history(context: dg.AssetExecutionContext, sdp: ServiceDeskResource,
                   postgres: PostgresResource) -> dg.MaterializeResult:
    window = context.partition_time_window
    start_ms, end_ms = datetime_to_millis(window.start), datetime_to_millis(window.end) - 1
    criteria = [
        {"field": "resolved_time", "condition": "between", "values": [str(start_ms), str(end_ms)]},
        {"field": "status.name", "condition": "is", "values": sorted(RESOLVED_STATUSES), "logical_operator": "AND"},
    ]
    started = time.perf_counter()
    failures: list[str] = []
    with sdp.client() as client:
        ids = [row["id"] for row in client.iter_requests(search_criteria=criteria, sort_field="resolved_time")]
        context.log.info(f"{len(ids)} resolved requests in {window.start:%Y-%m} .. {window.end:%Y-%m}")

        def fetch(request_id: str) -> Ticket | None:
            try:
                return _fetch_ticket(client, sdp.tenant_id, request_id)
            except (SdpError, PayloadError) as exc:  # one bad ticket never stops a backfill
                failures.append(f"{request_id}: {exc}")
                return None

        with ThreadPoolExecutor(FETCH_CONCURRENCY) as pool:
            tickets = [t for t in pool.map(fetch, ids) if t is not None]
    without_resolution = sum(1 for t in tickets if not t.resolution)
    with postgres.connection() as conn:
        written = upsert_history(conn, tickets, source="bulk_import")
    elapsed = time.perf_counter() - started
    for failure in failures[:20]:
        context.log.warning(f"not imported: {failure}")
    return dg.MaterializeResult(metadata={
        "listed": len(ids), "imported": written, "failed": len(failures),
        "without_resolution": without_resolution, "seconds": round(elapsed, 2),
        "tickets_per_s": round(written / elapsed, 1) if elapsed > 0 else 0.0,
        "window": f"{window.start.isoformat()} .. {window.end.isoformat()}",
    })
