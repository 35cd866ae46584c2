"""Reading SDP requests in order of a millisecond timestamp, resumable from a cursor. No Dagster here.

Both sensors poll this way: ``new_ticket_sensor`` on ``created_time``, ``resolved_ticket_sensor`` on
``last_updated_time``. Offset paging over a list sorted by a time that changes while we read it loses rows: a
request updated while we are on page 3 jumps to the end, everything behind it moves up one place, and the row
that moves onto page 2 is never read. So every page is asked for afresh from the newest timestamp read so far
(keyset paging, ``start_index`` 1), skipping the ids already read at exactly that millisecond. A request
updated mid-poll simply shows up again later with its new timestamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError

from enhancement_pipeline.servicedesk.client import MAX_ROW_COUNT, ServiceDeskClient
from enhancement_pipeline.servicedesk.payloads import PayloadError, SdpRequest, parse_request

PAGE_OVERLAP = 20
"""When a whole page holds one millisecond (a bulk update), the next page overlaps this page by this many
rows, so up to that many rows leaving the group while we page through it cannot make us skip one."""


class StreamCursor(BaseModel):
    """Where a sensor stands in SDP's stream of requests ordered by one timestamp field.

    ``ms``: the timestamp (epoch ms) of the newest request already handled. ``ids_at_ms``: the ids handled
    *at exactly that millisecond*. The next poll asks for ``field >= ms`` and skips those ids, so requests
    sharing a timestamp are neither lost at a page or tick boundary nor handled twice. The cursor moves only
    over requests the sensor handled, so it never passes one it has not.
    """

    ms: int = Field(validation_alias=AliasChoices("ms", "created_ms"))
    ids_at_ms: list[str] = Field(default_factory=list)
    # (A cursor stored before the sync became runs also has "failures": ignored, as pydantic ignores extras.)

    def handled(self, ms: int, request_id: str) -> bool:
        """Whether the request at ``ms`` is at or behind the cursor (already handled)."""
        return ms < self.ms or (ms == self.ms and request_id in self.ids_at_ms)

    def advance(self, ms: int, request_id: str) -> StreamCursor:
        """The cursor after handling the request at ``ms`` (requests must be handled in timestamp order)."""
        if ms > self.ms:
            return StreamCursor(ms=ms, ids_at_ms=[request_id])
        return StreamCursor(ms=self.ms, ids_at_ms=[*self.ids_at_ms, request_id])


class MalformedRow(PayloadError):
    """A listed row that does not parse. ``request_id`` and ``ms`` (its timestamp field) as far as they can be
    read from the raw row, else None: with an id the request can still be handled (fetched in full)."""

    def __init__(self, message: str, *, request_id: str | None, ms: int | None):
        super().__init__(message)
        self.request_id = request_id
        self.ms = ms


def raw_request_id(row: Any) -> str | None:
    """The id of a raw row, as a string, when it has a usable one (a non-empty string or an integer)."""
    rid = row.get("id") if isinstance(row, dict) else None
    if isinstance(rid, int) and not isinstance(rid, bool):
        return str(rid)
    return (rid.strip() or None) if isinstance(rid, str) else None


def raw_text(row: Any, *path: str) -> str | None:
    """A text (or number) at ``path`` of a raw row (``"status", "name"``; a plain string where a lookup
    belongs is taken as its name), or None."""
    value = row
    for i, key in enumerate(path):
        if isinstance(value, str) and i == len(path) - 1 and key == "name":
            break
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return (value.strip() or None) if isinstance(value, str) else None


def raw_millis(row: Any, field: str) -> int | None:
    """The epoch milliseconds of a raw row's datetime ``field`` (``{"value": "<ms>"}``, or a bare number or
    digit string), or None."""
    value = row.get(field) if isinstance(row, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    return None


def _millis(request: SdpRequest, field: str) -> int:
    value = getattr(request, field, None)
    if value is None:
        raise PayloadError(f"request {request.id} has no {field}")
    try:
        return int(value.value)
    except (TypeError, ValueError):
        raise PayloadError(f"request {request.id}: {field} {value.value!r} is not epoch milliseconds") from None


def iter_since(client: ServiceDeskClient, field: str, cursor: StreamCursor, *,
               criteria: list[dict[str, Any]] | None = None, fields_required: list[str] | None = None,
               page_size: int = MAX_ROW_COUNT, on_malformed=None) -> Iterator[tuple[SdpRequest, int]]:
    """Requests whose ``field`` is at or after ``cursor`` and not yet handled, oldest first: ``(request, ms)``.

    ``criteria``: more ``search_criteria`` ANDed to the time condition. List rows are reduced: a ``field``
    they lack (``last_updated_time``, ``resolved_time``) must be asked for in ``fields_required``, which is
    sent as given (``created_time`` is in every row). A row that does not parse (or lacks ``field``) is not
    yielded: it is passed to ``on_malformed(row, error)``, ``error`` a ``MalformedRow`` carrying the row's id
    and timestamp where they can be read, once per call (a row whose timestamp is readable counts as read at
    it, so the stream moves past it; one without is reported once, however many pages list it). Raises
    ``SdpError`` when SDP fails after the client's retries.
    """
    anchor = StreamCursor(ms=cursor.ms, ids_at_ms=list(cursor.ids_at_ms))
    start_index = 1
    reported: set[str] = set()
    while True:
        asked_from = anchor.ms
        search = [{"field": field, "condition": "greater or equal", "value": str(asked_from)}]
        search += [{**c, "logical_operator": c.get("logical_operator", "AND")} for c in criteria or []]
        list_info: dict[str, Any] = {"row_count": page_size, "start_index": start_index, "sort_field": field,
                                     "sort_order": "asc", "search_criteria": search}
        if fields_required:
            list_info["fields_required"] = fields_required
        rows, info = client.list_requests_page(list_info)
        for row in rows:
            try:
                request = parse_request(row)
                ms = _millis(request, field)
            except PayloadError as exc:
                rid, raw_ms = raw_request_id(row), raw_millis(row, field)
                if rid is not None and raw_ms is not None:
                    if anchor.handled(raw_ms, rid):
                        continue
                    anchor = anchor.advance(raw_ms, rid)
                elif rid is not None:
                    if rid in reported:
                        continue
                    reported.add(rid)
                if on_malformed is not None:
                    on_malformed(row, MalformedRow(str(exc), request_id=rid, ms=raw_ms))
                continue
            if anchor.handled(ms, request.id):
                continue
            anchor = anchor.advance(ms, request.id)
            yield request, ms
        if not info.get("has_more_rows") or not rows:
            return
        # Re-anchor at the newest timestamp read (start_index 1). A page that did not get past the
        # millisecond it was asked from (a bulk update larger than a page) moves on by offset instead,
        # overlapping the last page, so the group is walked once, not once per page.
        start_index = 1 if anchor.ms > asked_from else start_index + max(1, len(rows) - PAGE_OVERLAP)


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


def log_malformed(context: Any) -> Callable[[Any, Exception], None]:
    """An ``on_malformed`` callback that logs each unreadable row, with its id, to ``context.log`` (a sensor's)."""

    def log(row: dict, exc: Exception) -> None:
        # One malformed row must not stop the stream: it is logged, with its id, and skipped (once per tick;
        # logged again on later ticks until the cursor passes its timestamp).
        rid = row.get("id", "?") if isinstance(row, dict) else "?"
        context.log.error(f"skipping unreadable request row {rid!r}: {exc}")

    return log
