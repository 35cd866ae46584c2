"""Bulk import of resolved requests from SDP, month by month, as the v3 API forces it.

For each month: list the resolved requests (reduced rows, pages of 100), then fetch every request in full and
its resolution (two calls a ticket) on a bounded thread pool, then hand the month to ``write`` (one
transaction). Listing runs ahead of fetching by at most ``MAX_PENDING_MONTHS`` months, so memory stays
bounded however long the range is, and the listing of the next month overlaps the fetches of this one.

The listing pages by keyset on ``created_time`` (documented as sortable, in every list row, never changed once
set) with ``resolved_time`` in the month as a search criterion. Not on ``resolved_time``: the vendor's own
client does not list it among the sortable fields, and an SDP that ignores the sort makes keyset paging skip
rows. Not on ``last_updated_time``: SDP leaves it null on a request never updated after it was stored, and a
criterion on it would drop such a request (one imported into SDP already resolved, say). Every listed row is
checked here too (its ``resolved_time`` in the month, its status Resolved/Closed); a page not in
``created_time`` order, a row out of the month or without those fields, or a count that differs from SDP's
``total_count`` for the month makes the month's listing *unproven*: what was listed is imported, and nothing
is deleted (``MonthImport.complete`` False, ``problems`` say why).

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
LISTING_SORT_FIELD = "created_time"
"""The field the history listing sorts and pages on (see the module docstring)."""
MAX_PROBLEMS = 20
"""Problems kept per month (the first ones; ``untrusted`` counts every untrusted row)."""

WriteMonth = Callable[["MonthImport", list[Ticket], list[str]], HistoryLoad]
"""``write(month, tickets, listed_ids) -> HistoryLoad``: store one month (``month.start`` .. ``month.end``,
end exclusive; ``month.listed_at``: when its listing began). Delete rows of the month SDP did not list only when
``month.complete``: an unproven listing may have missed them."""


@dataclass
class MonthImport:
    """What happened to one month: ids listed by SDP, tickets fetched and written, failures (``id: reason``).

    ``complete``: the listing was shown complete (in order, every row in the month, as many as SDP's
    ``total_count``); when False, ``problems`` says why and the month's unlisted rows must not be deleted.
    ``sdp_total``: SDP's ``total_count`` for the month after listing (None when SDP gave none).
    ``untrusted``: rows SDP listed that were left out (outside the month, not resolved, missing fields).
    ``moved``: tickets listed as resolved whose full record no longer is (reopened since): not written.
    """

    start: datetime
    end: datetime
    listed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    listed: int = 0
    load: HistoryLoad = field(default_factory=HistoryLoad)
    failures: list[str] = field(default_factory=list)
    without_resolution: int = 0
    seconds: float = 0.0
    complete: bool = True
    problems: list[str] = field(default_factory=list)
    sdp_total: int | None = None
    untrusted: int = 0
    moved: int = 0

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
            if isinstance(result, Ticket) and (result.status not in RESOLVED_STATUSES or result.resolved_at is None):
                # Reopened between listing and fetching: not history now, and a row without resolved_at would
                # sit outside every month. Its id stays listed, so its existing row is kept until a re-run.
                item.month.moved += 1
            elif isinstance(result, Ticket):
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
            for request_id in _listed_ids(lister, item.month):
                item.ids.append(request_id)
                item.futures.append(pool.submit(fetch, request_id))
            item.month.listed = len(item.ids)
            _check_total(lister, item.month)
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


class _GuardedLister:
    """``list_requests_page`` of a client, checking each page of a keyset listing on ``LISTING_SORT_FIELD``
    before ``iter_since`` sees it: rows in ascending order and none before the page's lower bound (the first
    criterion, ``>= ms``). ``iter_since`` silently skips a row behind its anchor, which is what a sort SDP did
    not honour looks like from there; this is where it is noticed. Problems go to ``month.problems``."""

    def __init__(self, client: ServiceDeskClient, month: MonthImport):
        self.client, self.month = client, month

    def list_requests_page(self, list_info: dict) -> tuple[list[dict], dict]:
        rows, info = self.client.list_requests_page(list_info)
        echoed = info.get("sort_field")
        if echoed not in (None, LISTING_SORT_FIELD):
            _problem(self.month, f"SDP answered a list sorted by {echoed!r}, not {LISTING_SORT_FIELD!r}")
        try:  # iter_since's own lower bound comes first: {"field": ..., "condition": ">=", "value": ms}
            bound: int | None = int(list_info["search_criteria"][0]["value"])
        except (KeyError, IndexError, TypeError, ValueError):
            bound = None
        previous = None
        for row in rows:
            ms = _row_millis(row, LISTING_SORT_FIELD)
            if ms is None:
                continue  # reported (and left out) by the listing loop, through iter_since's on_malformed
            if bound is not None and ms < bound:
                _problem(self.month, f"row {row.get('id')!r}: {LISTING_SORT_FIELD} {ms} before the page's "
                                     f"lower bound {bound}: SDP ignored the search criterion")
            elif previous is not None and ms < previous:
                _problem(self.month, f"row {row.get('id')!r}: {LISTING_SORT_FIELD} {ms} after {previous}: "
                                     "SDP did not sort the page as asked")
            previous = ms if previous is None else max(previous, ms)
        return rows, info


def _row_millis(row: object, name: str) -> int | None:
    """A list row's datetime field (``{"value": "<ms>"}``, or a bare number) as epoch ms; None when it is
    missing or not epoch ms."""
    value = row.get(name) if isinstance(row, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool):
        return None
    try:
        return int(value) if isinstance(value, int | str) else None
    except ValueError:
        return None


def _problem(month: MonthImport, text: str) -> None:
    month.complete = False
    if len(month.problems) < MAX_PROBLEMS:
        month.problems.append(text)


def _listed_ids(client: ServiceDeskClient, month: MonthImport) -> Iterator[str]:
    """Ids of requests Resolved/Closed with ``resolved_time`` in ``[month.start, month.end)``, each once, by
    keyset paging on ``created_time`` from 0 (a ticket may be created years before it is resolved). Keyset,
    not offset paging: offset paging skips a row whenever one before it leaves the list (is reopened)
    mid-listing, and the merge would then delete it.

    A row is trusted only if its ``resolved_time`` (asked for in ``fields_required``) is in the month and its
    status is Resolved/Closed; any other row is left out, counted in ``month.untrusted`` and makes the listing
    unproven (``month.complete`` False), as does a page out of order (``_GuardedLister``). Raises ``SdpError``
    when SDP fails to list after the client's retries.
    """
    start_ms, end_ms = datetime_to_millis(month.start), datetime_to_millis(month.end)
    seen: set[str] = set()

    def untrusted(row_id: object, why: str) -> None:
        month.untrusted += 1
        _problem(month, f"row {row_id!r} left out: {why}")

    lister = _GuardedLister(client, month)
    for request, _ in iter_since(lister, LISTING_SORT_FIELD, StreamCursor(ms=0),  # type: ignore[arg-type]
                                 criteria=resolved_criteria(month.start, month.end),
                                 fields_required=["resolved_time"],
                                 on_malformed=lambda row, exc: untrusted(
                                     row.get("id") if isinstance(row, dict) else None, str(exc))):
        resolved_ms = int(request.resolved_time.value) if request.resolved_time else None
        if resolved_ms is None:
            untrusted(request.id, "no resolved_time in the row")
        elif not start_ms <= resolved_ms < end_ms:
            untrusted(request.id, f"resolved_time {resolved_ms} outside [{start_ms}, {end_ms})")
        elif request.status_name not in RESOLVED_STATUSES:
            untrusted(request.id, f"status {request.status_name!r}")
        elif request.id not in seen:
            seen.add(request.id)
            yield request.id


def _check_total(client: ServiceDeskClient, month: MonthImport) -> None:
    """Compare the ids listed for ``month`` with SDP's ``total_count`` for the same criteria, asked right
    after the listing; a difference (or no count) makes the listing unproven. A ticket resolved into the month
    or reopened while it was listed differs too, which errs on the side of deleting nothing."""
    try:
        month.sdp_total = client.count_requests(resolved_criteria(month.start, month.end))
    except SdpError as exc:
        _problem(month, f"SDP gave no total_count to compare the listing with: {exc}")
        return
    if month.sdp_total != month.listed:
        _problem(month, f"listed {month.listed} request(s), SDP counts {month.sdp_total}")
