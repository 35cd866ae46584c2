"""HTTP client for the ServiceDesk Plus v3 REST API (on-prem and cloud), built on httpx.

It follows ``shared/reference/servicedesk-plus-api-v3.md``: the ``authtoken`` header (or
``Authorization: Zoho-oauthtoken`` on cloud), the vnd Accept header, ``input_data`` JSON in the query
string for GET and in an urlencoded form for POST/PUT, ``list_info`` paging until ``has_more_rows`` is
false, and error envelopes checked on every response, HTTP 200 included.

Retries (tenacity): reads are retried on 429/4015, 5xx, non-JSON bodies and transport errors with
exponential backoff that honours ``Retry-After``. Writes are retried only when the server cannot have
acted on them (429, or a connection that never opened), so a note is never posted twice by a retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

ACCEPT = "application/vnd.manageengine.sdp.v3+json"
MAX_ROW_COUNT = 100


class SdpError(Exception):
    """An SDP call failed. ``http_status`` is the HTTP code, ``sdp_code`` the most specific body code."""

    def __init__(self, message: str, *, http_status: int | None = None, sdp_code: int | None = None,
                 messages: list[dict] | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.sdp_code = sdp_code
        self.messages = messages or []


class SdpAuthError(SdpError):
    """401 / 4022 (invalid key or token) or 403 / 4002 (not allowed). Not retried."""


class SdpNotFound(SdpError):
    """404 / 4007: no such request or URL."""


class SdpRateLimited(SdpError):
    """429 / 4015. ``retry_after_s`` is the server's Retry-After, when it sent one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class SdpServerError(SdpError):
    """5xx, an HTML/non-JSON body (proxy or login page), or a transport failure. Retried for reads."""


class SdpRequestError(SdpError):
    """Any other 4xxx failure (bad input, mandatory field missing, ...). Not retried."""


def _retryable_read(exc: BaseException) -> bool:
    return isinstance(exc, SdpRateLimited | SdpServerError)


def _retryable_write(exc: BaseException) -> bool:
    # A write whose connection never opened, or that was refused by the rate limiter, did not happen.
    return isinstance(exc, SdpRateLimited) or isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


def write_may_have_happened(exc: SdpError) -> bool:
    """Whether SDP may have acted on a write that raised ``exc``: False for a refusal it answered (429, 401/403,
    404, a 4xxx validation failure) and for a connection that never opened; True for a timeout, a 5xx, a
    proxy's HTML page or a dropped connection, whose outcome only SDP knows."""
    if isinstance(exc, SdpRateLimited | SdpAuthError | SdpNotFound | SdpRequestError):
        return False
    return not isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


def _status_of(body: dict[str, Any]) -> tuple[int | None, str | None, list[dict]]:
    status = body.get("response_status")
    if isinstance(status, list):  # list responses carry an array
        status = status[0] if status else None
    if not isinstance(status, dict):
        return None, None, []
    messages = [m for m in status.get("messages") or [] if isinstance(m, dict)]
    code = status.get("status_code")
    return (int(code) if code is not None else None), status.get("status"), messages


def check_response(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of an SDP response, or the matching ``SdpError`` subclass.

    Checks the HTTP status and the body's ``response_status`` (an object or an array), because SDP and the
    proxies in front of it also report failures on HTTP 200.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        snippet = response.text[:200].replace("\n", " ")
        if response.status_code == 429:
            raise SdpRateLimited(f"HTTP 429: {snippet}", http_status=429, sdp_code=4015,
                                 retry_after_s=retry_after_s(response))
        if response.status_code in (401, 403):
            raise SdpAuthError(f"HTTP {response.status_code}: {snippet}", http_status=response.status_code)
        raise SdpServerError(f"non-JSON response (HTTP {response.status_code}): {snippet}",
                             http_status=response.status_code)

    code, status, messages = _status_of(body)
    detail_code = next((int(m["status_code"]) for m in messages if m.get("status_code") not in (None, 2000)),
                       None)
    failed = response.status_code >= 400 or status == "failed" or (code is not None and code >= 4000)
    if not failed:
        return body
    sdp_code = detail_code or code
    text = "; ".join(str(m.get("message") or m.get("field") or m.get("fields") or m.get("status_code"))
                     for m in messages) or (status or "failed")
    message = f"HTTP {response.status_code}, SDP {sdp_code}: {text}"
    kw = {"http_status": response.status_code, "sdp_code": sdp_code, "messages": messages}
    if response.status_code == 429 or sdp_code == 4015:
        raise SdpRateLimited(message, retry_after_s=retry_after_s(response), **kw)
    if response.status_code in (401, 403) or sdp_code in (4022, 4002):
        raise SdpAuthError(message, **kw)
    if response.status_code == 404 or sdp_code == 4007:
        raise SdpNotFound(message, **kw)
    if response.status_code >= 500 or sdp_code == 4004:
        raise SdpServerError(message, **kw)
    raise SdpRequestError(message, **kw)


def retry_after_s(response: httpx.Response) -> float | None:
    """The response's ``Retry-After`` in seconds, or None when absent or an HTTP-date."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


class ServiceDeskClient:
    """A small, typed surface over SDP v3 requests, notes and resolutions.

    ``base_url``: on-prem ``https://host:8080``; cloud ``https://sdpondemand.manageengine.com/app/<portal>``.
    ``auth_scheme``: ``"authtoken"`` sends the key as the ``authtoken`` header; ``"zoho-oauthtoken"`` sends
    ``Authorization: Zoho-oauthtoken <token>``. ``transport`` is the seam for tests and custom retries.
    Timeouts in seconds. Raises ``SdpError`` subclasses (see ``check_response``).
    """

    def __init__(self, base_url: str, api_key: str, *, auth_scheme: str = "authtoken", timeout_s: float = 15.0,
                 max_attempts: int = 4, backoff_base_s: float = 1.0, backoff_max_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        if auth_scheme == "authtoken":
            auth = {"authtoken": api_key}
        elif auth_scheme == "zoho-oauthtoken":
            auth = {"Authorization": f"Zoho-oauthtoken {api_key}"}
        else:
            raise ValueError(f"unknown auth_scheme {auth_scheme!r} (authtoken or zoho-oauthtoken)")
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v3", headers={"Accept": ACCEPT, **auth},
            timeout=timeout_s, transport=transport,
        )
        self.max_attempts = max_attempts
        self._note_wrapper = "note"
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceDeskClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SdpRateLimited) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self.backoff_max_s)
        return min(self.backoff_base_s * 2 ** (state.attempt_number - 1), self.backoff_max_s)

    def _call(self, method: str, path: str, input_data: dict | None, retry_if: Callable[[BaseException], bool]
              ) -> dict[str, Any]:
        encoded = json.dumps(input_data) if input_data is not None else None

        def once() -> dict[str, Any]:
            try:
                if method == "GET":
                    params = {"input_data": encoded} if encoded is not None else None
                    response = self._http.get(path, params=params)
                else:
                    data = {"input_data": encoded} if encoded is not None else None
                    response = self._http.request(method, path, data=data)
            except httpx.TransportError as exc:
                raise SdpServerError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            return check_response(response)

        retrying = Retrying(stop=stop_after_attempt(self.max_attempts), wait=self._wait,
                            retry=retry_if_exception(retry_if), reraise=True)
        return retrying(once)

    def _get(self, path: str, input_data: dict | None = None) -> dict[str, Any]:
        return self._call("GET", path, input_data, _retryable_read)

    def _write(self, method: str, path: str, input_data: dict) -> dict[str, Any]:
        return self._call(method, path, input_data, _retryable_write)

    # -- requests ---------------------------------------------------------------------------------------

    def list_requests_page(self, list_info: dict[str, Any]) -> tuple[list[dict], dict[str, Any]]:
        """One page of ``GET /requests``: (reduced rows, the response's ``list_info``)."""
        body = self._get("/requests", {"list_info": list_info})
        return list(body.get("requests") or []), dict(body.get("list_info") or {})

    def iter_requests(self, *, search_criteria: list[dict] | dict | None = None, sort_field: str = "created_time",
                      sort_order: str = "asc", row_count: int = MAX_ROW_COUNT,
                      fields_required: list[str] | None = None, max_rows: int | None = None) -> Iterator[dict]:
        """Every matching request (reduced list rows), page by page until ``has_more_rows`` is false.

        Pages advance ``start_index`` by the rows actually returned. ``max_rows`` stops early.
        """
        row_count = max(1, min(row_count, MAX_ROW_COUNT))
        start_index, yielded = 1, 0
        while True:
            list_info: dict[str, Any] = {"row_count": row_count, "start_index": start_index,
                                         "sort_field": sort_field, "sort_order": sort_order}
            if search_criteria:
                list_info["search_criteria"] = search_criteria
            if fields_required:
                list_info["fields_required"] = fields_required
            rows, info = self.list_requests_page(list_info)
            for row in rows:
                yield row
                yielded += 1
                if max_rows is not None and yielded >= max_rows:
                    return
            if not info.get("has_more_rows") or not rows:
                return
            start_index += len(rows)

    def count_requests(self, search_criteria: list[dict] | dict | None = None) -> int:
        """How many requests match (``get_total_count``). Raises ``SdpError`` when SDP does not report a count."""
        list_info: dict[str, Any] = {"row_count": 1, "start_index": 1, "get_total_count": True}
        if search_criteria:
            list_info["search_criteria"] = search_criteria
        _, info = self.list_requests_page(list_info)
        if not isinstance(info.get("total_count"), int):
            raise SdpError(f"SDP answered no total_count for {list_info}")
        return info["total_count"]

    def get_request(self, request_id: str) -> dict[str, Any]:
        """The full request record (``GET /requests/{id}``). Raises ``SdpNotFound`` for an unknown id."""
        return self._get(f"/requests/{request_id}")["request"]

    def get_resolution(self, request_id: str) -> dict[str, Any]:
        """``GET /requests/{id}/resolutions``: the whole body (``{"resolution": {"content": ...}}``)."""
        return self._get(f"/requests/{request_id}/resolutions")

    def create_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /requests`` with ``{"request": request}``; returns the created request."""
        return self._write("POST", "/requests", {"request": request})["request"]

    def update_request(self, request_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``PUT /requests/{id}`` with ``{"request": changes}`` (e.g. ``{"status": {"name": "Resolved"}}``)."""
        return self._write("PUT", f"/requests/{request_id}", {"request": changes})["request"]

    def add_resolution(self, request_id: str, html: str) -> dict[str, Any]:
        """``POST /requests/{id}/resolutions`` with HTML ``content``; returns the stored resolution."""
        return self._write("POST", f"/requests/{request_id}/resolutions",
                           {"resolution": {"content": html}}).get("resolution") or {}

    # -- admin lists (the taxonomy) ---------------------------------------------------------------------

    def list_entries(self, path: str, key: str | None = None, *, search_criteria: list[dict] | None = None,
                     exclude_deleted: bool = True, row_count: int = MAX_ROW_COUNT, sort_field: str | None = None,
                     sort_order: str = "asc") -> list[dict[str, Any]]:
        """Every row of an admin list such as ``/categories``, ``/categories/{id}/subcategories`` or ``/items``
        (docs/sdp-api-taxonomy.md section 1), page by page: ``row_count`` rows (at most 100) from ``start_index``
        1, advanced by the rows returned while ``list_info.has_more_rows`` is true; a row seen on an earlier
        page (same ``id``) is not returned twice.

        ``key``: the body's list key; default the path's last segment (``subcategories``). ``search_criteria``:
        SDP criteria, ANDed with ``deleted is false`` when ``exclude_deleted`` (SDP lists deleted entries
        unless told not to). An SDP that refuses the ``deleted`` criterion (a 4xxx answer) is asked once more
        without it; rows with ``deleted: true`` are dropped either way. ``sort_field``: none by default (SDP's
        own order, by id).

        Raises ``SdpNotFound`` for a path SDP does not have (404/4007), ``SdpAuthError`` for one the key may
        not read (401/403), other ``SdpError`` subclasses as ``check_response`` says; reads are retried.
        """
        key = key or path.rstrip("/").rsplit("/", 1)[-1]
        criteria = list(search_criteria or [])
        if exclude_deleted:
            deleted = {"field": "deleted", "condition": "is", "values": [False]}
            if criteria:
                deleted["logical_operator"] = "AND"
            try:
                rows = self._list_all(path, key, [*criteria, deleted], row_count, sort_field, sort_order)
            except SdpRequestError:
                rows = self._list_all(path, key, criteria, row_count, sort_field, sort_order)
        else:
            rows = self._list_all(path, key, criteria, row_count, sort_field, sort_order)
        return [r for r in rows if not (exclude_deleted and r.get("deleted") is True)]

    def _list_all(self, path: str, key: str, criteria: list[dict], row_count: int, sort_field: str | None,
                  sort_order: str) -> list[dict[str, Any]]:
        row_count = max(1, min(row_count, MAX_ROW_COUNT))
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        start_index = 1
        while True:
            list_info: dict[str, Any] = {"row_count": row_count, "start_index": start_index}
            if sort_field:
                list_info.update(sort_field=sort_field, sort_order=sort_order)
            if criteria:
                list_info["search_criteria"] = criteria
            body = self._get(path, {"list_info": list_info})
            page = [r for r in body.get(key) or [] if isinstance(r, dict)]
            for row in page:
                row_id = str(row.get("id"))
                if row_id not in seen:
                    seen.add(row_id)
                    rows.append(row)
            if not (body.get("list_info") or {}).get("has_more_rows") or not page:
                return rows
            start_index += len(page)

    def get_entry(self, path: str, key: str) -> dict[str, Any]:
        """One admin record, e.g. ``get_entry("/support_groups/42", "support_group")``: the body's ``key`` object
        (``{}`` when the body lacks it). Raises ``SdpNotFound`` for an unknown id, other ``SdpError`` subclasses as
        ``check_response`` says."""
        body = self._get(path)
        entry = body.get(key)
        return entry if isinstance(entry, dict) else {}

    # -- notes ------------------------------------------------------------------------------------------

    def list_notes(self, request_id: str) -> list[dict[str, Any]]:
        """All notes of a request (``GET /requests/{id}/notes``, paged). Some SDP builds list a note without
        its ``description`` (a ``content_url`` instead): ``note_description`` reads those one by one."""
        notes: list[dict[str, Any]] = []
        start_index = 1
        while True:
            body = self._get(f"/requests/{request_id}/notes",
                             {"list_info": {"row_count": MAX_ROW_COUNT, "start_index": start_index}})
            page = list(body.get("notes") or body.get("request_notes") or [])
            notes.extend(page)
            if not (body.get("list_info") or {}).get("has_more_rows") or not page:
                return notes
            start_index += len(page)

    def get_note(self, request_id: str, note_id: str) -> dict[str, Any]:
        """One note with its ``description`` (``GET /requests/{id}/notes/{note_id}``); the wrapper is ``note``
        in the current format, ``request_note`` in the old one. Raises ``SdpNotFound`` for an unknown id."""
        body = self._get(f"/requests/{request_id}/notes/{note_id}")
        return body.get("note") or body.get("request_note") or {}

    def note_description(self, request_id: str, note: dict[str, Any]) -> str:
        """A listed note's HTML: its ``description`` when the list carried it, else the note read on its own."""
        description = note.get("description")
        if isinstance(description, str):
            return description
        if note.get("id") is None:
            return ""
        return str(self.get_note(request_id, str(note["id"])).get("description") or "")

    def add_note(self, request_id: str, html: str, *, show_to_requester: bool = False,
                 notify_technician: bool = False) -> dict[str, Any]:
        """``POST /requests/{id}/notes``: a note with HTML ``description``; returns the created note.

        The input wrapper is ``note``; an old on-prem build that rejects it (a 4xxx answer, so nothing was
        stored) gets the same note once more in the old ``request_note`` wrapper, and keeps getting that one.
        """
        note = {"description": html, "show_to_requester": show_to_requester,
                "notify_technician": notify_technician, "mark_first_response": False,
                "add_to_linked_requests": False}
        wrapper = self._note_wrapper
        try:
            body = self._write("POST", f"/requests/{request_id}/notes", {wrapper: note})
        except SdpRequestError:
            if wrapper != "note":
                raise
            body = self._write("POST", f"/requests/{request_id}/notes", {"request_note": note})
            self._note_wrapper = "request_note"
        return body.get("note") or body.get("request_note") or {}
