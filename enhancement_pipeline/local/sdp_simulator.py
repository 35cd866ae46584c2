"""A ServiceDesk Plus v3 simulator: the API surface this project uses, over real HTTP, state in memory.

It is a test double for an external SaaS and follows ``shared/reference/servicedesk-plus-api-v3.md`` §9:
routes under ``/api/v3`` and ``/app/{portal}/api/v3``; ``authtoken`` / ``TECHNICIAN_KEY`` headers or
``Authorization: Zoho-oauthtoken|Bearer``; ``input_data`` JSON from the query (GET) or an urlencoded form
(POST/PUT); reduced list rows; ``list_info`` paging (row_count default 10, max 100; start_index 1-based,
<= 1 taken as 1) with ``has_more_rows`` and optional ``total_count``; ``search_criteria`` with the
documented conditions and shorthands, ``value``/``values`` and ``logical_operator`` evaluated left to right;
string ids, epoch-millis datetimes; error envelopes (401/4022, 404/4007, 400/4000, 429/4015).

The tenant's taxonomy (``sdp_taxonomy.SimTaxonomy``: categories, subcategories, items, priorities, urgencies,
impacts, levels, modes, request types, statuses, sites, support groups, technicians) is served read-only as
``GET /<table>`` (the same list semantics, ``list_page``) and ``GET /<table>/{id}``, plus
``GET /categories/{id}/subcategories``; ``/subcategories/{id}/items`` and ``/groups`` answer 404/4007, as no
SDP is known to have them. Requests embed the taxonomy's entries for the names they carry.

Switchable faults (``POST /_sim/faults``) make it answer 429 with or without ``Retry-After``, 5xx, an HTML
page, or HTTP 200 with a failure envelope, for the next N matching calls.

Admin routes under ``/_sim`` (no auth) seed data and read counters; they are not part of SDP.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from enhancement_pipeline.local.datasets import ArticleTicket
from enhancement_pipeline.local.sdp_taxonomy import SINGULAR, STATUSES, TABLES, TAXONOMY_FIELDS, SimTaxonomy, norm_name
from enhancement_pipeline.servicedesk.payloads import datetime_to_millis, html_to_text

_ID_BASE = 123_640_000_000_000_000  # cloud-style 18-digit ids

_STATUSES = STATUSES

_LIST_ROW_FIELDS = ("id", "display_id", "subject", "requester", "technician", "group", "status", "template",
                    "created_time", "due_by_time", "is_service_request", "cancellation_requested",
                    "cancel_flag_comments", "has_notes", "has_draft")

SORTABLE_FIELDS = frozenset({"created_time", "last_updated_time", "due_by_time", "subject", "id", "priority",
                             "status"})
"""The request fields ``list_info.sort_field`` may name: the list in ManageEngine's own client (the
manageengine.sdp_cloud Ansible collection's ``sortable_fields`` for requests, reference §2.1). Any other field
is refused (``_check_sort_field``)."""

TAXONOMY_SORTABLE = frozenset({"id", "name"})
"""What an admin list (``/categories``, ``/priorities``, ...) may be sorted by: ``name`` is what a production
client sends (docs/sdp-api-taxonomy.md section 1), ``id`` what PSSDPAPI sends; other fields are refused."""

_CONDITIONS = {
    "is": "is", "=": "is", "eq": "is",
    "is not": "is not", "!=": "is not", "neq": "is not",
    "greater than": "gt", "gt": "gt", "greater or equal": "gte", "gte": "gte",
    "lesser than": "lt", "lt": "lt", "lesser or equal": "lte", "lte": "lte",
    "between": "between", "not between": "not between",
    "starts with": "starts with", "ends with": "ends with", "contains": "contains", "not contains": "not contains",
}


def now_millis() -> int:
    return int(time.time() * 1000)


def sdp_datetime(millis: int | None) -> dict[str, str] | None:
    """``{"display_value", "value"}`` as SDP renders a datetime; None for unset."""
    if millis is None:
        return None
    display = datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%b %d, %Y %I:%M %p")
    return {"display_value": display, "value": str(millis)}


class SimulatorError(Exception):
    """Becomes an SDP error envelope with the given HTTP status and SDP status code."""

    def __init__(self, http_status: int, sdp_code: int, message: str, field_name: str | None = None):
        super().__init__(message)
        self.http_status, self.sdp_code, self.field_name = http_status, sdp_code, field_name


@dataclass
class Fault:
    """Answer the next ``times`` calls whose ``"METHOD /path"`` matches ``match`` (a regex) with a failure."""

    match: str
    status: int = 429
    sdp_code: int | None = 4015
    times: int = 1
    retry_after: float | None = None
    html: bool = False
    delay_s: float = 0.0
    takes_effect_after_s: float | None = None
    """When set, the call is carried out (a note stored, say) this many seconds after it arrived, and the answer
    (the fault's, or with ``status`` 200 the normal one) comes at ``delay_s``: an SDP that stores a POST but
    answers after the client has given up."""


@dataclass
class Webhook:
    """A Custom Trigger on *Created* with a Webhook action, as an SDP administrator sets one up: ``POST url`` with
    ``headers`` and the JSON ``template``, whose ``$id``, ``$display_id`` and ``$subject`` SDP fills in (JSON-escaped).
    SDP runs triggers after it has stored the request, apart from the API call that created it: the simulator
    posts from a thread of its own, ``delay_s`` after the creation, and records each answer's status (or the
    error) in ``SdpState.webhook_calls``."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    template: str = '{"request": {"id": "$id", "display_id": "$display_id"}, "event": "created"}'
    delay_s: float = 0.0


@dataclass
class SdpState:
    """Requests, notes and resolutions; every mutation under ``lock``.

    ``latency_s`` delays every API answer (seconds, without blocking other calls). ``cache_lists`` keeps each
    filtered, sorted list between pages until a request changes through these methods: for benchmarks over
    tens of thousands of requests; leave it off when a test edits ``requests`` directly.
    """

    api_key: str
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    resolutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)
    latency_s: float = 0.0
    cache_lists: bool = False
    list_quirks: set[str] = field(default_factory=set)
    """Ways an SDP may not do what a list asks, to test the listing's guards with: ``"unsorted"`` (rows newest
    id first, whatever ``sort_field`` says), ``"no_fields_required"`` (``fields_required`` adds no columns),
    ``"no_search:<field>"`` (criteria on ``<field>`` are ignored). Empty: SDP as documented."""
    notes_listed_without_description: bool = False
    """List notes as some SDP builds do: no ``description``, a ``content_url`` to read the note by."""
    note_wrapper: str = "note"
    """``request_note``: an old on-prem build that takes only the old ``request_note`` input wrapper (refusing
    ``note`` with 400/4012, field ``request_note``: the code an SDP sends for a missing mandatory field; the
    exact wording of such a build's refusal is our assumption) and answers in it."""
    webhooks: list[Webhook] = field(default_factory=list)
    """Fired for every request created through the API (``POST /api/v3/requests``), not for seeded ones."""
    webhook_calls: list[tuple[str, int | str]] = field(default_factory=list)
    """(request id, HTTP status or error) of every webhook call made, in order."""
    edition: str = "onprem"
    """``onprem`` or ``cloud``: the seeded taxonomy's ids and whether ``/statuses`` answers 404 (``sdp_taxonomy``)."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    _next: int = 1
    _list_cache: dict[str, tuple[list[dict[str, Any]], list]] = field(default_factory=dict)
    _taxonomy: SimTaxonomy | None = None

    @property
    def taxonomy(self) -> SimTaxonomy:
        """The tenant's admin tables (categories, priorities, support groups, ...), seeded for ``edition`` on first
        use (``SimTaxonomy.seeded``); assign a ``SimTaxonomy`` to replace them."""
        with self.lock:
            if self._taxonomy is None:
                self._taxonomy = SimTaxonomy.seeded(self.edition)
            return self._taxonomy

    @taxonomy.setter
    def taxonomy(self, value: SimTaxonomy | None) -> None:
        with self.lock:
            self._taxonomy = value

    def reset_taxonomy(self) -> None:
        """Back to the seeded taxonomy of ``edition`` (seeded again on next use), switches included."""
        self.taxonomy = None

    def _labels(self, *, category: str | None, subcategory: str | None, item: str | None, priority: str | None,
                group: str | None, site: str | None) -> dict[str, dict[str, Any] | None]:
        """The lookup objects a request embeds for these names: the taxonomy's entries (its ids; a priority's
        colour, a group's site) where it has them, each level of category/subcategory/item under the one above;
        a name it does not have gets a made-up id (seeding is not validated)."""
        tax = self.taxonomy
        cat = tax.embed("categories", category) if category else None
        sub = tax.embed("subcategories", subcategory, parent=("category", cat["id"])) if subcategory and cat else None
        itm = tax.embed("items", item, parent=("subcategory", sub["id"])) if item and sub else None
        grp = tax.embed("support_groups", group, site=site) if group else None
        return {
            "category": cat or (_lookup(category) if category else None),
            "subcategory": sub or (_lookup(subcategory) if subcategory else None),
            "item": itm or (_lookup(item) if item else None),
            "priority": (tax.embed("priorities", priority) or _lookup(priority)) if priority else None,
            "group": (grp or _lookup(group)) if group else None,
            "site": (tax.embed("sites", site) or _lookup(site)) if site else None,
            "request_type": tax.embed("request_types", "Incident") or _lookup("Incident"),
            "mode": tax.embed("modes", "E-Mail") or _lookup("E-Mail"),
        }

    def _status(self, name: str) -> dict[str, Any]:
        return self.taxonomy.embed("statuses", name) or _lookup(name, **_STATUSES[name])

    def next_ids(self) -> tuple[str, str]:
        with self.lock:
            n = self._next
            self._next += 1
        return str(_ID_BASE + n), str(n)

    # -- building records -------------------------------------------------------------------------------

    def add_request(self, *, subject: str, description: str = "", requester: str = "Requester",
                    requester_email: str | None = None, status: str = "Open", technician: str | None = None,
                    created_millis: int | None = None, resolved_millis: int | None = None,
                    resolution_html: str | None = None, category: str | None = None,
                    priority: str | None = None, subcategory: str | None = None, item: str | None = None,
                    group: str | None = None, site: str | None = None) -> dict[str, Any]:
        """Create a request as SDP stores it (new v3 format) and return it."""
        if status not in _STATUSES:
            raise SimulatorError(400, 4001, f"status {status!r} does not exist", "status")
        rid, display_id = self.next_ids()
        created = created_millis if created_millis is not None else now_millis()
        # SDP leaves last_updated_time null until the request is first changed after it was stored (reference
        # §3 shows it set on a request edited since; a never-edited one carries null like every unset
        # datetime). A request stored with a resolved time was resolved after it was created: updated then.
        updated = max(created, resolved_millis) if resolved_millis is not None else None
        labels = self._labels(category=category, subcategory=subcategory, item=item, priority=priority,
                              group=group, site=site)
        record: dict[str, Any] = {
            "id": rid, "display_id": display_id, "subject": subject, "description": description,
            "status": self._status(status), "priority": labels["priority"],
            "requester": _user(requester, requester_email), "technician": _user(technician) if technician else None,
            "group": labels["group"], "site": labels["site"], "category": labels["category"],
            "subcategory": labels["subcategory"], "item": labels["item"],
            "template": _lookup("Default Request"),
            "request_type": labels["request_type"], "mode": labels["mode"],
            "created_time": sdp_datetime(created), "last_updated_time": sdp_datetime(updated),
            "resolved_time": sdp_datetime(resolved_millis), "completed_time": None, "due_by_time": None,
            "resolution": None, "udf_fields": {}, "is_service_request": False, "cancellation_requested": False,
            "cancel_flag_comments": None, "has_notes": False, "has_draft": False, "attachments": [],
        }
        with self.lock:
            self._list_cache.clear()
            self.requests[rid] = record
            self.notes[rid] = []
            if resolution_html is not None:
                self.resolutions[rid] = {"content": resolution_html, "submitted_on": sdp_datetime(resolved_millis),
                                         "submitted_by": _user(technician or "Technician"),
                                         "resolution_attachments": []}
        return record

    def fire_webhooks(self, record: dict[str, Any]) -> None:
        """Call every ``webhooks`` entry for a created request, each from a thread of its own."""
        for hook in list(self.webhooks):
            threading.Thread(target=self._call_webhook, args=(hook, record), name="sdp-webhook", daemon=True).start()

    def _call_webhook(self, hook: Webhook, record: dict[str, Any]) -> None:
        import httpx

        if hook.delay_s:
            time.sleep(hook.delay_s)
        body = hook.template
        for name in ("display_id", "subject", "id"):  # longest first: $id is a prefix of $id_anything
            body = body.replace(f"${name}", json.dumps(str(record.get(name) or ""))[1:-1])
        try:
            answer = httpx.post(hook.url, content=body.encode(), timeout=10,
                                headers={"Content-Type": "application/json", **hook.headers})
            outcome: int | str = answer.status_code
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        with self.lock:
            self.webhook_calls.append((record["id"], outcome))

    def add_note(self, rid: str, note: dict[str, Any]) -> dict[str, Any]:
        if not note.get("description"):
            raise SimulatorError(400, 4012, "description is mandatory", "description")
        with self.lock:
            request = self._get(rid)
            millis = now_millis()
            stored = {
                "id": str(_ID_BASE + 500_000_000 + sum(len(v) for v in self.notes.values()) + 1),
                "description": note["description"],
                "show_to_requester": bool(note.get("show_to_requester", False)),
                "notify_technician": bool(note.get("notify_technician", False)),
                "mark_first_response": bool(note.get("mark_first_response", False)),
                "add_to_linked_requests": bool(note.get("add_to_linked_requests", False)),
                "added_by": _user("API Technician"), "added_time": sdp_datetime(millis),
                "last_updated_by": None, "last_updated_time": None,
            }
            self._list_cache.clear()
            self.notes[rid].append(stored)
            request["has_notes"] = True
            request["last_updated_time"] = sdp_datetime(millis)
        return stored

    def update_request(self, rid: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a ``PUT /requests/{id}`` body: subject, description, status (by name) and the taxonomy fields
        (``TAXONOMY_FIELDS``, docs/sdp-api-taxonomy.md section 5, point 5); stamps times.

        Taxonomy fields are given as ``{"id"}``, ``{"name"}`` or both (the id wins) or null (cleared), resolved
        against the tenant's tables and stored as the embedded object a GET shows. Validated before anything
        changes, and refused as a whole (raises ``SimulatorError``): an unknown or deleted entry, a subcategory
        not under the request's (new or current) category or an item not under its subcategory, a group name on
        several sites none of which is the request's: 400 / 4001 on that field; not an object: 400 / 4021. A new
        category clears subcategory and item unless given (400 / 4012 on ``subcategory`` with the taxonomy's
        ``subcategory_mandatory``); a new subcategory clears item. ``priority_locked``: any priority is refused
        with 403 / 4002 "Cannot give value for priority"; ``closed_is_readonly``: a Closed request refuses taxonomy
        edits (4001). Codes for the cases SDP's documentation does not show are the research's best fit.
        """
        with self.lock:
            self._list_cache.clear()
            request = self._get(rid)
            resolved = self._resolve_taxonomy_changes(request, changes)
            millis = now_millis()
            status = (changes.get("status") or {}).get("name") if isinstance(changes.get("status"), dict) else None
            if status and status not in _STATUSES:
                raise SimulatorError(400, 4001, f"status {status!r} does not exist", "status")
            for key in ("subject", "description"):
                if key in changes:
                    request[key] = changes[key]
            request.update(resolved)
            if status:
                request["status"] = self._status(status)
                if status in ("Resolved", "Closed") and request["resolved_time"] is None:
                    request["resolved_time"] = sdp_datetime(millis)
                if status == "Closed":
                    request["completed_time"] = sdp_datetime(millis)
            request["last_updated_time"] = sdp_datetime(millis)
            return request

    def _resolve_taxonomy_changes(self, request: dict[str, Any], changes: dict[str, Any]
                                  ) -> dict[str, dict[str, Any] | None]:
        """The embedded objects ``changes`` set (see ``update_request``); raises ``SimulatorError`` for the first
        field that does not validate, before the request is touched."""
        tax = self.taxonomy
        given = {f: changes[f] for f in TAXONOMY_FIELDS if f in changes}
        if not given:
            return {}
        if tax.closed_is_readonly and (request.get("status") or {}).get("name") == "Closed":
            field_name = next(iter(given))
            raise SimulatorError(400, 4001, "a closed request cannot be edited", field_name)
        out: dict[str, dict[str, Any] | None] = {}

        def current(field_name: str) -> dict[str, Any] | None:
            return out[field_name] if field_name in out else request.get(field_name)

        for field_name in TAXONOMY_FIELDS:  # parents before children: category, subcategory, item, ...
            if field_name not in given:
                continue
            value = given[field_name]
            if value is None:
                out[field_name] = None
                continue
            if not isinstance(value, dict) or not (value.get("id") or value.get("name")):
                raise SimulatorError(400, 4021, f"{field_name} must be an object with an id or a name", field_name)
            if field_name == "priority" and tax.priority_locked:
                raise SimulatorError(403, 4002, "Cannot give value for priority", "priority")
            table = TAXONOMY_FIELDS[field_name]
            parent = None
            if field_name == "subcategory":
                category = current("category")
                if not category:
                    raise SimulatorError(400, 4001, "a subcategory needs a category", field_name)
                parent = ("category", category["id"])
            elif field_name == "item":
                subcategory = current("subcategory")
                if not subcategory:
                    raise SimulatorError(400, 4001, "an item needs a subcategory", field_name)
                parent = ("subcategory", subcategory["id"])
            if value.get("id"):
                row = tax.get(table, str(value["id"]))
                if row is not None and parent and (row.get(parent[0]) or {}).get("id") != parent[1]:
                    row = None
            else:
                row = self._find_by_name(table, str(value["name"]), parent, current("site"))
            if row is None or row.get("deleted"):
                raise SimulatorError(400, 4001, f"'{field_name}' value does not exist or not in use or user cannot "
                                                "set the value", field_name)
            out[field_name] = tax.embedded(table, row)
            if field_name == "category" and (request.get("category") or {}).get("id") != row["id"]:
                if "subcategory" not in given:
                    if tax.subcategory_mandatory:
                        raise SimulatorError(400, 4012, "Mandatory field missing: subcategory", "subcategory")
                    out["subcategory"] = None
                if "item" not in given:
                    out["item"] = None
            if field_name == "subcategory" and (request.get("subcategory") or {}).get("id") != row["id"] \
                    and "item" not in given:
                out["item"] = None
        return out

    def _find_by_name(self, table: str, name: str, parent: tuple[str, str] | None,
                      site: dict[str, Any] | None) -> dict[str, Any] | None:
        """The live row of ``table`` called ``name`` (under ``parent``); a support group named on several sites
        must be on the request's ``site`` (else None: SDP cannot tell which one is meant)."""
        tax = self.taxonomy
        if table != "support_groups":
            return tax.find(table, name, parent=parent)
        with tax.lock:
            live = [r for r in tax.tables[table] if not r.get("deleted") and norm_name(r["name"]) == norm_name(name)]
        if len(live) <= 1:
            return live[0] if live else None
        site_name = norm_name((site or {}).get("name") or "")
        on_site = [r for r in live if norm_name((r.get("site") or {}).get("name") or "") == site_name]
        return on_site[0] if site_name and len(on_site) == 1 else None

    def set_resolution(self, rid: str, content: str) -> dict[str, Any]:
        with self.lock:
            self._list_cache.clear()
            request = self._get(rid)
            millis = now_millis()
            self.resolutions[rid] = {"content": content, "submitted_on": sdp_datetime(millis),
                                     "submitted_by": _user("API Technician"), "resolution_attachments": []}
            request["last_updated_time"] = sdp_datetime(millis)
            return self.resolutions[rid]

    def set_raw_fields(self, rid: str, fields: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
        """Store ``fields`` on request ``rid`` exactly as given, unvalidated, and remove the ``drop`` keys: the
        record as an odd SDP build or integration can serve it (``created_time`` a bare number, ``status`` a plain
        string, NUL bytes in the subject), in its full record and its list rows alike."""
        with self.lock:
            self._list_cache.clear()
            request = self._get(rid)
            request.update(fields)
            for key in drop:
                request.pop(key, None)
            return request

    def delete_request(self, rid: str) -> None:
        """Delete request ``rid`` for good (a technician's "delete permanently"): later calls on it answer 404."""
        with self.lock:
            self._list_cache.clear()
            self._get(rid)
            del self.requests[rid]
            self.notes.pop(rid, None)
            self.resolutions.pop(rid, None)

    def _get(self, rid: str) -> dict[str, Any]:
        request = self.requests.get(rid)
        if request is None:
            raise SimulatorError(404, 4007, f"request {rid} not found")
        return request

    # -- listing ----------------------------------------------------------------------------------------

    def list_requests(self, list_info: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        row_count = _int(list_info.get("row_count", 10), "row_count")
        row_count = max(1, min(row_count, 100))
        start_index = max(1, _int(list_info.get("start_index", 1), "start_index"))
        sort_field = _check_sort_field(list_info.get("sort_field") or "created_time")
        descending = str(list_info.get("sort_order", "asc")).lower() == "desc"
        criteria = list_info.get("search_criteria")
        if isinstance(criteria, dict):
            criteria = [criteria]
        fields = list_info.get("search_fields") or {}
        criteria = criteria or []
        quirks = set(self.list_quirks)
        if quirks:
            criteria = [c for c in criteria if not isinstance(c, dict) or f"no_search:{c.get('field')}" not in quirks]
        # Like a database with an index on the sort field: a keyset page ("sort field >= x AND ...") reuses
        # the sorted list of the other conditions and only re-applies the range.
        only_and = all(str(c.get("logical_operator", "AND")).upper() == "AND" for c in criteria[1:])
        ranges = [c for c in criteria if c.get("field") == sort_field
                  and _CONDITIONS.get(str(c.get("condition")).lower()) in ("gt", "gte", "lt", "lte")]
        if self.cache_lists and not descending and only_and and ranges and not quirks:
            rows, keys = self._sorted_rows(criteria=[c for c in criteria if c not in ranges], fields=fields,
                                           sort_field=sort_field, descending=False, with_keys=True)
            lo, hi = 0, len(rows)
            for c in ranges:
                bound = _sort_key(c["value"] if "value" in c else (c.get("values") or [None])[0])
                condition = _CONDITIONS[str(c["condition"]).lower()]
                if condition in ("gt", "gte"):
                    lo = max(lo, (bisect.bisect_right if condition == "gt" else bisect.bisect_left)(keys, bound))
                else:
                    hi = min(hi, (bisect.bisect_left if condition == "lt" else bisect.bisect_right)(keys, bound))
            rows = rows[lo:hi]
        else:
            rows = self._sorted_rows(criteria, fields, sort_field, descending)[0]
        if "unsorted" in quirks:
            rows = sorted(rows, key=lambda r: int(r["id"]), reverse=True)
        page = rows[start_index - 1:start_index - 1 + row_count]
        extra = [] if "no_fields_required" in quirks else list(list_info.get("fields_required") or [])
        out = []
        for r in page:
            row = {k: r.get(k) for k in _LIST_ROW_FIELDS}
            row["short_description"] = html_to_text(r.get("description"))[:200]
            for name in extra:
                row[name] = r.get(name)
            out.append(row)
        return out, _page_info(list_info, start_index, row_count, len(out), len(rows))

    def _sorted_rows(self, criteria: list, fields: dict, sort_field: str, descending: bool,
                     with_keys: bool = False) -> tuple[list[dict[str, Any]], list]:
        """(matching requests sorted by ``sort_field`` then id, their sort keys when ``with_keys``)."""
        cache_key = json.dumps([criteria, fields, sort_field, descending], sort_keys=True, default=str)
        with self.lock:
            cached = self._list_cache.get(cache_key) if self.cache_lists else None
            if cached is None:
                rows = [r for r in self.requests.values() if _matches_all(r, criteria) and _matches_fields(r, fields)]
                rows.sort(key=lambda r: (_sort_key(_field(r, sort_field)), int(r["id"])), reverse=descending)
                # Cached lists always carry their keys: the same conditions may be asked for with and without.
                keys = [_sort_key(_field(r, sort_field)) for r in rows] if with_keys or self.cache_lists else []
                cached = (rows, keys)
                if self.cache_lists:
                    self._list_cache[cache_key] = cached
            return cached


def seed_resolved_tickets(state: SdpState, tickets: list[ArticleTicket]) -> dict[str, str]:
    """Store ``tickets`` as Resolved requests with their resolutions; returns {article_id: request id}."""
    return {t.article_id: state.add_request(
                subject=t.subject, description=t.description_html, requester=t.requester,
                technician=t.technician, status="Resolved", created_millis=datetime_to_millis(t.created_at),
                resolved_millis=datetime_to_millis(t.resolved_at), resolution_html=t.resolution_html,
                category=t.category)["id"]
            for t in tickets}


def _page_info(list_info: dict[str, Any], start_index: int, row_count: int, returned: int, matched: int
               ) -> dict[str, Any]:
    """The answer's ``list_info``: the request's, with ``has_more_rows``, ``start_index`` and ``row_count`` (rows
    returned), and ``total_count`` only when ``get_total_count`` asked for it, as SDP answers."""
    info = dict(list_info)
    info.update({"has_more_rows": start_index - 1 + row_count < matched, "start_index": start_index,
                 "row_count": returned})
    if list_info.get("get_total_count"):
        info["total_count"] = matched
    return info


def _check_sort_field(name: Any) -> str:
    """``name`` if requests may be sorted by it; otherwise the refusal SDP answers an invalid input value with.

    How sure: the refusal itself is what the vendor's own client guards against (it rejects any other
    sort_field before sending), but no captured SDP answer to an unsortable sort_field was found. HTTP 400
    with the outer code 4000 and a message of code 4001 ("Id or Name given in input does not exist or not in
    use or user cannot set the value", reference §6.1) naming ``field: sort_field`` is the documented shape of
    an invalid input value (§6.2); the exact code and message text are a judgment, not an observation.
    """
    if not isinstance(name, str) or name not in SORTABLE_FIELDS:
        raise SimulatorError(400, 4001, f"sort_field {name!r} is not a sortable field", "sort_field")
    return name


def list_page(rows: list[dict[str, Any]], list_info: dict[str, Any], *, sortable: frozenset[str] = TAXONOMY_SORTABLE,
              refused_fields: frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One page of an admin list, with the request list's semantics: ``row_count`` default 10, at most 100;
    ``start_index`` 1-based (<= 1 taken as 1); ``sort_field`` among ``sortable`` (default ``id``, numerically),
    ``sort_order``; ``search_criteria`` and ``search_fields`` as for requests (dotted fields such as
    ``category.id``; a ``deleted`` row matches ``deleted is false`` only when it is not deleted); the answered
    ``list_info`` echoes the asked one with ``has_more_rows``, ``start_index``, ``row_count`` (rows in this page)
    and ``total_count`` with ``get_total_count``. Deleted rows are listed unless a criterion leaves them out.

    Raises ``SimulatorError`` 400/4001 for another sort field or a criterion on one of ``refused_fields`` (an SDP
    that cannot search that field: the answer's exact code is our assumption).
    """
    if not isinstance(list_info, dict):
        raise SimulatorError(400, 4000, "list_info must be an object", "list_info")
    row_count = max(1, min(_int(list_info.get("row_count", 10), "row_count"), 100))
    start_index = max(1, _int(list_info.get("start_index", 1), "start_index"))
    sort_field = list_info.get("sort_field") or "id"
    if sort_field not in sortable:
        raise SimulatorError(400, 4001, f"sort_field {sort_field!r} is not a sortable field", "sort_field")
    descending = str(list_info.get("sort_order", "asc")).lower() == "desc"
    criteria = list_info.get("search_criteria") or []
    if isinstance(criteria, dict):
        criteria = [criteria]
    for criterion in criteria:
        if isinstance(criterion, dict) and criterion.get("field") in refused_fields:
            raise SimulatorError(400, 4001, f"search on {criterion['field']} is not supported here", "search_criteria")
    fields = list_info.get("search_fields") or {}
    matched = [r for r in rows if _matches_all(r, criteria) and _matches_fields(r, fields)]
    matched.sort(key=lambda r: (_sort_key(_field(r, sort_field)), _sort_key(r.get("id"))), reverse=descending)
    page = matched[start_index - 1:start_index - 1 + row_count]
    return page, _page_info(list_info, start_index, row_count, len(page), len(matched))


def _lookup(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(zlib.crc32(name.encode())), "name": name, **extra}


def _user(name: str, email: str | None = None) -> dict[str, Any]:
    return {"id": str(zlib.crc32(name.encode())), "name": name, "email_id": email, "is_technician": False,
            "is_vip_user": False, "phone": None, "mobile": None, "department": None}


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SimulatorError(400, 4021, f"{name} must be a number", name) from None


def _field(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, dict) and "value" in value and "display_value" in value:
        return value["value"]  # datetimes compare by their epoch millis
    if isinstance(value, dict) and "name" in value:
        return value["name"]
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    try:
        return (1, float(value))
    except (TypeError, ValueError):
        return (2, str(value).lower())


def _compare(actual: Any, condition: str, values: list[Any]) -> bool:
    if condition in ("is", "is not"):
        hit = any(_equal(actual, v) for v in values)
        return hit if condition == "is" else not hit
    if actual is None:
        return condition in ("not contains", "not between")
    if condition in ("gt", "gte", "lt", "lte"):
        a, b = _sort_key(actual), _sort_key(values[0])
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[condition]
    if condition in ("between", "not between"):
        if len(values) != 2:
            raise SimulatorError(400, 4000, "between needs values [from, to]", "values")
        inside = _sort_key(values[0]) <= _sort_key(actual) <= _sort_key(values[1])
        return inside if condition == "between" else not inside
    text = str(actual).lower()
    probes = [str(v).lower() for v in values]
    if condition == "starts with":
        return any(text.startswith(p) for p in probes)
    if condition == "ends with":
        return any(text.endswith(p) for p in probes)
    hit = any(p in text for p in probes)
    return hit if condition == "contains" else not hit


def _equal(actual: Any, expected: Any) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return str(actual).lower() == str(expected).lower()


def _matches_all(record: dict[str, Any], criteria: list[dict[str, Any]]) -> bool:
    result: bool | None = None
    for criterion in criteria:
        if not isinstance(criterion, dict) or "field" not in criterion or "condition" not in criterion:
            raise SimulatorError(400, 4000, "each search_criteria needs field and condition", "search_criteria")
        condition = _CONDITIONS.get(str(criterion["condition"]).lower())
        if condition is None:
            raise SimulatorError(400, 4000, f"unknown condition {criterion['condition']!r}", "condition")
        values = criterion.get("values")
        if values is None:
            values = [criterion.get("value")]
        hit = _compare(_field(record, criterion["field"]), condition, list(values))
        operator = str(criterion.get("logical_operator", "AND")).upper()
        if result is None:
            result = hit
        elif operator == "OR":
            result = result or hit
        else:
            result = result and hit
    return True if result is None else result


def _matches_fields(record: dict[str, Any], fields: dict[str, Any]) -> bool:
    return all(_equal(_field(record, k), v) for k, v in fields.items())


# -- HTTP layer ---------------------------------------------------------------------------------------------

def _envelope_error(exc: SimulatorError) -> JSONResponse:
    message: dict[str, Any] = {"status_code": exc.sdp_code, "type": "failed", "message": str(exc)}
    if exc.field_name:
        message["field"] = exc.field_name
    return JSONResponse({"response_status": {"status_code": 4000, "status": "failed", "messages": [message]}},
                        status_code=exc.http_status)


def _ok(payload: dict[str, Any], *, as_list: bool = False) -> JSONResponse:
    status = {"status_code": 2000, "status": "success"}
    return JSONResponse({**payload, "response_status": [status] if as_list else status})


def _parse_input_data(raw: str | None) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise SimulatorError(400, 4000, "Unable to parse input_data as JSON", "input_data") from None
    if not isinstance(data, dict):
        raise SimulatorError(400, 4000, "input_data must be a JSON object", "input_data")
    return data


def create_app(state: SdpState) -> Starlette:
    """The ASGI app serving ``state``."""

    def authorised(request: Request) -> bool:
        headers = request.headers
        key = headers.get("authtoken") or headers.get("technician_key")
        if key is None:
            auth = headers.get("authorization", "")
            match = re.match(r"(?i)(zoho-oauthtoken|bearer)\s+(.+)", auth)
            key = match.group(2).strip() if match else None
        return key == state.api_key

    def fault_for(signature: str) -> Fault | None:
        with state.lock:
            for fault in state.faults:
                if fault.times > 0 and re.search(fault.match, signature):
                    fault.times -= 1
                    return fault
            state.faults = [f for f in state.faults if f.times > 0]
        return None

    async def handle(request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        signature = f"{request.method} /api/v3{path}"
        with state.lock:
            state.calls[f"{request.method} {re.sub(r'/[0-9]+', '/{id}', path)}"] += 1
        if state.latency_s:
            import asyncio
            await asyncio.sleep(state.latency_s)
        fault = fault_for(signature)
        if fault is not None and fault.takes_effect_after_s is not None:
            import asyncio
            await request.body()  # received in full at once, as a real server would; carried out later
            await asyncio.sleep(fault.takes_effect_after_s)
            answer = await serve(request, path)
            await asyncio.sleep(max(0.0, fault.delay_s - fault.takes_effect_after_s))
            if fault.status == 200:
                return answer
            fault = Fault(match=fault.match, status=fault.status, sdp_code=fault.sdp_code, html=fault.html)
        if fault is not None:
            if fault.delay_s:
                import asyncio
                await asyncio.sleep(fault.delay_s)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            if fault.html:
                return HTMLResponse("<html><body><h1>Service Unavailable</h1></body></html>",
                                    status_code=fault.status, headers=headers)
            code = fault.sdp_code or 4000
            body = {"response_status": {"status_code": 4000, "status": "failed",
                                        "messages": [{"status_code": code, "type": "failed",
                                                      "message": "simulated fault"}]}}
            return JSONResponse(body, status_code=fault.status, headers=headers)
        return await serve(request, path)

    async def serve(request: Request, path: str) -> Response:
        if not authorised(request):
            return _envelope_error(SimulatorError(401, 4022, "Invalid API key"))
        try:
            if request.method == "GET":
                data = _parse_input_data(request.query_params.get("input_data"))
            else:
                form = parse_qs((await request.body()).decode("utf-8", "replace"))
                data = _parse_input_data((form.get("input_data") or [None])[0])
            return route(request.method, path, data)
        except SimulatorError as exc:
            return _envelope_error(exc)

    def taxonomy_route(method: str, parts: list[str], data: dict[str, Any]) -> Response:
        """The admin tables (docs/sdp-api-taxonomy.md section 5): ``GET /<table>`` and ``/<table>/{id}``,
        ``GET /categories/{id}/subcategories``; nothing else (no ``/subcategories/{id}/items``, no writes)."""
        tax = state.taxonomy
        table = parts[0]
        if method != "GET":
            raise SimulatorError(405, 4000, f"{method} /{'/'.join(parts)} is not simulated")
        if table == "statuses" and tax.statuses_404:
            raise SimulatorError(404, 4007, "no such URL /statuses")
        if table == "technicians" and tax.technicians_401:
            # A cloud token without the users scope; the body's detail code is our assumption (the research saw
            # only the HTTP status).
            raise SimulatorError(401, 4002, "not authorised to read technicians")
        list_info = data.get("list_info") or {}

        def refused(name: str) -> frozenset[str]:
            return frozenset(c.split(":", 1)[1] for c in tax.refused_criteria if c.startswith(f"{name}:"))

        if len(parts) == 1:
            rows = tax.rows(table)
            if table == "support_groups":  # members only in the detail (docs section 2.9)
                rows = [{k: v for k, v in r.items() if k != "technicians"} for r in rows]
            page, info = list_page(rows, list_info, refused_fields=refused(table))
            return _ok({table: page, "list_info": info}, as_list=True)
        if len(parts) == 3 and table == "categories" and parts[2] == "subcategories" and not tax.nested_subcategories:
            raise SimulatorError(404, 4007, f"no such URL /{'/'.join(parts)}")
        entry = tax.get(table, parts[1])
        if entry is None:
            raise SimulatorError(404, 4007, f"{SINGULAR[table]} {parts[1]} not found")
        if len(parts) == 2:
            return _ok({SINGULAR[table]: entry})
        if len(parts) == 3 and table == "categories" and parts[2] == "subcategories":
            rows = [r for r in tax.rows("subcategories") if (r.get("category") or {}).get("id") == entry["id"]]
            page, info = list_page(rows, list_info, refused_fields=refused("subcategories"))
            return _ok({"subcategories": page, "list_info": info}, as_list=True)
        raise SimulatorError(404, 4007, f"no such URL /{'/'.join(parts)}")

    def route(method: str, path: str, data: dict[str, Any]) -> Response:
        parts = path.strip("/").split("/")
        if parts[0] in TABLES:
            return taxonomy_route(method, parts, data)
        if parts[0] != "requests":
            raise SimulatorError(404, 4007, f"no such URL {path}")
        if len(parts) == 1:
            if method == "GET":
                rows, info = state.list_requests(data.get("list_info") or {})
                return _ok({"requests": rows, "list_info": info}, as_list=True)
            if method == "POST":
                body = data.get("request")
                if not isinstance(body, dict) or not body.get("subject"):
                    raise SimulatorError(400, 4012, "subject is mandatory", "subject")
                requester = body.get("requester") or {}
                status = (body.get("status") or {}).get("name", "Open")
                record = state.add_request(subject=str(body["subject"]), description=str(body.get("description", "")),
                                           requester=requester.get("name") or "Requester",
                                           requester_email=requester.get("email_id"), status=status,
                                           category=(body.get("category") or {}).get("name"),
                                           priority=(body.get("priority") or {}).get("name"))
                state.fire_webhooks(record)
                return _ok({"request": record})
        rid = parts[1]
        if len(parts) == 2:
            if method == "GET":
                with state.lock:
                    return _ok({"request": dict(state._get(rid))})
            if method == "PUT":
                return _ok({"request": state.update_request(rid, data.get("request") or {})})
        elif parts[2] == "notes":
            if len(parts) == 3 and method == "GET":
                list_info = data.get("list_info") or {}
                start = max(1, _int(list_info.get("start_index", 1), "start_index"))
                count = max(1, min(_int(list_info.get("row_count", 10), "row_count"), 100))
                with state.lock:
                    notes = list(state.notes.get(rid) if rid in state.requests else state._get(rid))
                page = notes[start - 1:start - 1 + count]
                if state.notes_listed_without_description:
                    page = [{k: v for k, v in n.items() if k != "description"}
                            | {"content_url": f"/requests/{rid}/notes/{n['id']}"} for n in page]
                info = {"has_more_rows": start - 1 + count < len(notes), "start_index": start, "row_count": len(page)}
                return _ok({"notes": page, "list_info": info}, as_list=True)
            if len(parts) == 3 and method == "POST":
                if state.note_wrapper == "request_note":
                    note = data.get("request_note")
                    if not isinstance(note, dict):
                        raise SimulatorError(400, 4012, "Mandatory field missing", "request_note")
                else:
                    note = data.get("note") or data.get("request_note")
                    if not isinstance(note, dict):
                        raise SimulatorError(400, 4012, "note is mandatory", "note")
                return _ok({state.note_wrapper: state.add_note(rid, note)})
            if len(parts) == 4 and method == "GET":
                with state.lock:
                    notes = list(state.notes.get(rid) if rid in state.requests else state._get(rid))
                stored = next((n for n in notes if n["id"] == parts[3]), None)
                if stored is None:
                    raise SimulatorError(404, 4007, f"no note {parts[3]} on request {rid}")
                return _ok({state.note_wrapper: dict(stored)})
        elif parts[2] == "resolutions" and len(parts) == 3:
            if method == "GET":
                with state.lock:
                    state._get(rid)
                    stored = state.resolutions.get(rid)
                empty = {"content": None, "submitted_on": None, "submitted_by": None, "resolution_attachments": []}
                return _ok({"resolution": stored or empty})
            if method == "POST":
                content = (data.get("resolution") or {}).get("content")
                if not content:
                    raise SimulatorError(400, 4012, "content is mandatory", "content")
                return _ok({"resolution": state.set_resolution(rid, content)})
        raise SimulatorError(404, 4007, f"no such URL {path}")

    async def add_fault(request: Request) -> Response:
        body = await request.json()
        with state.lock:
            state.faults.append(Fault(**body))
        return JSONResponse({"ok": True})

    async def clear_faults(request: Request) -> Response:
        with state.lock:
            state.faults.clear()
        return JSONResponse({"ok": True})

    async def stats(request: Request) -> Response:
        with state.lock:
            return JSONResponse({"calls": dict(state.calls), "requests": len(state.requests),
                                 "notes": sum(len(v) for v in state.notes.values())})

    async def taxonomy_switches(request: Request) -> Response:
        """``POST /_sim/taxonomy`` ``{"edition": "cloud"}`` re-seeds the taxonomy for that edition; the switches
        ``statuses_404``, ``technicians_401``, ``nested_subcategories`` and ``refused_criteria`` (a list of
        ``"table:field"``) are then set as given. GET answers them."""
        if request.method == "POST":
            body = await request.json()
            with state.lock:
                if "edition" in body:
                    state.edition = str(body["edition"])
                    state.taxonomy = SimTaxonomy.seeded(state.edition)
                tax = state.taxonomy
                for name in ("statuses_404", "technicians_401", "nested_subcategories", "priority_locked",
                             "subcategory_mandatory", "closed_is_readonly"):
                    if name in body:
                        setattr(tax, name, bool(body[name]))
                if "refused_criteria" in body:
                    tax.refused_criteria = set(body["refused_criteria"])
        return JSONResponse(state.taxonomy.switches())

    methods = ["GET", "POST", "PUT", "DELETE"]
    return Starlette(routes=[
        Route("/_sim/taxonomy", taxonomy_switches, methods=["GET", "POST"]),
        Route("/_sim/faults", add_fault, methods=["POST"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/stats", stats, methods=["GET"]),
        Route("/api/v3/{path:path}", handle, methods=methods),
        Route("/app/{portal}/api/v3/{path:path}", handle, methods=methods),
    ])
