"""Bulk import of resolved requests from SDP, month by month, as the v3 API forces it.

For each month: list the resolved requests (reduced rows, pages of 100), then fetch every request in full and
its resolution (two calls a ticket) on a bounded thread pool, then hand the month to ``write`` (one
transaction). Listing runs ahead of fetching by at most ``MAX_PENDING_MONTHS`` months, so memory stays
bounded however long the range is, and the listing of the next month overlaps the fetches of this one.

One ticket that cannot be fetched or parsed is recorded as a failure and the import goes on; an SDP that
cannot even list (after the client's retries) raises ``SdpError`` and the months already written stay
written: a re-run is idempotent. No Dagster here: the asset wires it and reports progress.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from enhancement_pipeline.history.store import HistoryLoad
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
from enhancement_pipeline.servicedesk.polling import StreamCursor, iter_since

MAX_PENDING_MONTHS = 2

WriteMonth = Callable[["MonthImport", list[Ticket], list[str]], HistoryLoad]
"""``write(month, tickets, listed_ids) -> HistoryLoad``: store one month (``month.start`` .. ``month.end``,
end exclusive; ``month.listed_at``: when its listing began)."""


@dataclass
class MonthImport:
    """What happened to one month: ids listed by SDP, tickets fetched and written, failures (``id: reason``)."""

    start: datetime
    end: datetime
    listed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    listed: int = 0
    load: HistoryLoad = field(default_factory=HistoryLoad)
    failures: list[str] = field(default_factory=list)
    without_resolution: int = 0
    seconds: float = 0.0

    @property
    def partition_key(self) -> str:
        return self.start.strftime("%Y-%m-%d")


def month_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at calendar-month boundaries: ``[(month_start, next_month_start), ...]``."""
    windows = []
    current = start
    while current < end:
        following = (current.replace(day=1, year=current.year + 1, month=1) if current.month == 12
                     else current.replace(day=1, month=current.month + 1))
        windows.append((current, min(following, end)))
        current = following
    return windows


def resolved_criteria(start: datetime, end: datetime) -> list[dict]:
    """SDP ``search_criteria`` for requests Resolved or Closed with ``resolved_time`` in ``[start, end)``."""
    start_ms, end_ms = datetime_to_millis(start), datetime_to_millis(end) - 1
    return [
        {"field": "resolved_time", "condition": "between", "values": [str(start_ms), str(end_ms)]},
        {"field": "status.name", "condition": "is", "values": sorted(RESOLVED_STATUSES), "logical_operator": "AND"},
    ]


def fetch_ticket(client: ServiceDeskClient, tenant_id: str, request_id: str) -> Ticket | SdpError | PayloadError:
    """The full request and its resolution as a ``Ticket``, or the ``SdpError`` / ``PayloadError`` that
    stopped it, returned rather than raised: callers fetch many on a pool and one bad ticket stops none."""
    try:
        request = parse_request(client.get_request(request_id))
        return to_ticket(tenant_id, request, resolution_text(client.get_resolution(request_id)))
    except (SdpError, PayloadError) as exc:
        return exc


@dataclass
class _Pending:
    month: MonthImport
    ids: list[str]
    futures: list[Future]
    started: float


def import_months(make_client: Callable[[], ServiceDeskClient], tenant_id: str,
                  windows: Sequence[tuple[datetime, datetime]], write: WriteMonth, *, concurrency: int = 8,
                  on_month: Callable[[MonthImport], None] | None = None) -> list[MonthImport]:
    """Import every window (a month each) in order; ``on_month`` is called as each one is written.

    ``concurrency`` tickets are fetched at once, each fetching thread with a client of its own from
    ``make_client`` (clients share their tenant's request budget, not their connection pool: one httpx pool
    shared by dozens of threads spends its time on its own lock). Raises ``SdpError`` when a listing fails
    after the client's retries.
    """
    clients: list[ServiceDeskClient] = []
    local = threading.local()

    def open_client() -> None:
        local.client = make_client()
        clients.append(local.client)

    def fetch(request_id: str) -> Ticket | SdpError | PayloadError:
        return fetch_ticket(local.client, tenant_id, request_id)

    done: list[MonthImport] = []
    pending: deque[_Pending] = deque()

    def finish(item: _Pending) -> None:
        tickets: list[Ticket] = []
        for request_id, future in zip(item.ids, item.futures, strict=True):
            result = future.result()
            if isinstance(result, Ticket):
                tickets.append(result)
            else:
                item.month.failures.append(f"{request_id}: {type(result).__name__}: {result}")
        item.month.without_resolution = sum(1 for t in tickets if not t.resolution)
        item.month.load = write(item.month, tickets, item.ids)
        item.month.seconds = time.perf_counter() - item.started
        done.append(item.month)
        if on_month is not None:
            on_month(item.month)

    lister = make_client()
    clients.append(lister)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"import-{tenant_id}",
                              initializer=open_client)
    try:
        for start, end in windows:
            item = _Pending(MonthImport(start, end), [], [], time.perf_counter())
            for request_id in _listed_ids(lister, start, end):
                item.ids.append(request_id)
                item.futures.append(pool.submit(fetch, request_id))
            item.month.listed = len(item.ids)
            pending.append(item)
            while pending and (len(pending) > MAX_PENDING_MONTHS or all(f.done() for f in pending[0].futures)):
                finish(pending.popleft())
        while pending:
            finish(pending.popleft())
    except BaseException:
        for item in pending:
            for future in item.futures:
                future.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
        for client in clients:
            client.close()
    return done


def _listed_ids(client: ServiceDeskClient, start: datetime, end: datetime) -> Iterator[str]:
    """Ids resolved in ``[start, end)``, by keyset paging on ``resolved_time`` (see ``polling``): offset paging
    would skip a ticket whenever one before it is reopened mid-listing, and the merge would then delete it."""
    cursor = StreamCursor(ms=datetime_to_millis(start))
    before_end = {"field": "resolved_time", "condition": "lesser than", "value": str(datetime_to_millis(end))}
    status = {"field": "status.name", "condition": "is", "values": sorted(RESOLVED_STATUSES)}
    for request, _ in iter_since(client, "resolved_time", cursor, criteria=[before_end, status],
                                 fields_required=["resolved_time"]):
        yield request.id
