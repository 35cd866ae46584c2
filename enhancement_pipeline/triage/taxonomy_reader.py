"""Read a tenant's taxonomy from SDP (``read_taxonomy``), following the client recipe of
``docs/sdp-api-taxonomy.md`` (section 6) with its fallbacks:

1. ``GET /categories`` (every list: 100 rows a page, ``start_index`` paging while ``has_more_rows``, criterion
   ``deleted is false``; ``ServiceDeskClient.list_entries``).
2. Each category's subcategories from ``GET /categories/{id}/subcategories`` (the form proven on cloud); when
   SDP answers that with 404/4007, from ``GET /subcategories`` with the criterion ``category.id is <id>`` (the
   form proven on-prem), for this and every later category.
3. Each subcategory's items from ``GET /items`` with the criterion ``subcategory.id is <id>``; when SDP refuses
   the criterion (a 4xxx answer) or ignores it (rows of other subcategories come back), every item is listed
   once and grouped by ``item.subcategory.id``. There is no ``/subcategories/{id}/items``.
4. ``/priorities``, ``/urgencies``, ``/impacts``, ``/levels``, ``/sites``: a failure fails the read.
   ``/modes``, ``/request_types``, ``/statuses`` (404 on cloud), ``/support_groups`` (not confirmed on cloud)
   and ``/technicians`` (401 on cloud): a 401/403/404 is recorded in ``Taxonomy.unknown`` and the read goes on.
5. Each support group's members from ``GET /support_groups/{id}`` (``support_group.technicians``) when the list
   row does not carry them; a group whose detail has no ``technicians`` has ``technicians=None`` (unknown).

Every call goes through the client's retries (429, 5xx, HTML pages); errors that retrying cannot fix are
raised as the client's ``SdpError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from enhancement_pipeline.servicedesk.client import (
    SdpAuthError,
    SdpNotFound,
    SdpRequestError,
    ServiceDeskClient,
)
from enhancement_pipeline.triage.taxonomy import (
    Category,
    Entry,
    Item,
    Priority,
    Ref,
    Subcategory,
    SupportGroup,
    Taxonomy,
    Technician,
)

REQUIRED_LISTS = ("priorities", "urgencies", "impacts", "levels", "sites")
"""Flat lists every SDP edition is known to serve: a failure to read one fails the whole read."""
OPTIONAL_LISTS = ("modes", "request_types", "statuses", "support_groups", "technicians")
"""Flat lists some editions or keys do not serve (docs/sdp-api-taxonomy.md sections 2.6, 2.8, 2.9, 4): a 401,
403 or 404 makes them unknown (None) instead of failing the read."""


def read_taxonomy(client: ServiceDeskClient, *, now: datetime | None = None) -> Taxonomy:
    """The tenant's taxonomy as ``client``'s SDP serves it now, deleted entries left out.

    ``now``: the ``fetched_at`` to record (default: the current UTC time, taken before the first call).
    Calls: one list per resource (more for more than 100 rows), one per category (subcategories), one per
    subcategory (items; one list in all when SDP cannot filter items), one per support group (members).

    Raises the client's ``SdpError`` subclasses when a category, subcategory, item or required list cannot be
    read (``SdpAuthError`` for a key refused, ``SdpNotFound``, ``SdpServerError`` after the retries, ...).
    """
    fetched_at = now or datetime.now(UTC)
    notes: list[str] = []
    unknown: dict[str, str] = {}

    category_rows = client.list_entries("/categories")
    subcategory_rows = _subcategories(client, [str(r["id"]) for r in category_rows if _ok(r)], notes)
    item_rows = _items(client, [s for rows in subcategory_rows.values() for s in rows], notes, unknown)
    categories = [
        Category(**_entry(c), subcategories=[
            Subcategory(**_entry(s), items=[Item(**_entry(i)) for i in item_rows.get(str(s["id"]), [])])
            for s in subcategory_rows.get(str(c["id"]), [])])
        for c in category_rows if _ok(c)]

    flat: dict[str, list[dict[str, Any]] | None] = {name: client.list_entries(f"/{name}") for name in REQUIRED_LISTS}
    for name in OPTIONAL_LISTS:
        flat[name] = _optional(lambda name=name: client.list_entries(f"/{name}"), name, unknown)

    groups = None
    if flat["support_groups"] is not None:
        groups = [_group(client, row, notes) for row in flat["support_groups"] if _ok(row)]
        missing = sum(g.technicians is None for g in groups)
        if missing:
            notes.append(f"support_groups: SDP did not say who is in {missing} of {len(groups)} group(s) "
                         "(no technicians in GET /support_groups/{id}); their members are unknown")

    def entries(name: str) -> list[Entry] | None:
        rows = flat[name]
        return None if rows is None else [Entry(**_entry(r)) for r in rows if _ok(r)]

    return Taxonomy(
        fetched_at=fetched_at, categories=categories,
        priorities=[Priority(**_entry(r), color=_text(r.get("color"))) for r in flat["priorities"] or [] if _ok(r)],
        urgencies=entries("urgencies") or [], impacts=entries("impacts") or [], levels=entries("levels") or [],
        sites=entries("sites") or [], modes=entries("modes"), request_types=entries("request_types"),
        statuses=entries("statuses"), support_groups=groups,
        technicians=None if flat["technicians"] is None else [
            Technician(**_entry(r), email_id=_text(r.get("email_id"))) for r in flat["technicians"] if _ok(r)],
        unknown=unknown, notes=notes,
    )


def _subcategories(client: ServiceDeskClient, category_ids: list[str], notes: list[str]
                   ) -> dict[str, list[dict[str, Any]]]:
    """{category id: its subcategory rows}: nested first, flat with ``category.id`` once nested is refused."""
    out: dict[str, list[dict[str, Any]]] = {}
    nested = True
    for cid in category_ids:
        rows = None
        if nested:
            try:
                rows = client.list_entries(f"/categories/{cid}/subcategories", "subcategories")
            except SdpNotFound as exc:
                nested = False
                notes.append(f"subcategories: GET /categories/{{id}}/subcategories refused ({exc}); read from "
                             "GET /subcategories with the criterion category.id")
        if rows is None:
            rows = client.list_entries("/subcategories", search_criteria=[
                {"field": "category.id", "condition": "is", "values": [cid]}])
        # A row that names another category (an SDP that ignored the criterion) is not this one's.
        out[cid] = [r for r in rows if _ok(r) and _parent_id(r, "category") in (None, cid)]
    return out


def _items(client: ServiceDeskClient, subcategories: list[dict[str, Any]], notes: list[str],
           unknown: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """{subcategory id: its item rows}: one filtered list per subcategory, or every item once when SDP cannot
    filter (refuses the criterion, or answers rows of other subcategories)."""
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        for sub in subcategories:
            sid = str(sub["id"])
            rows = client.list_entries("/items", search_criteria=[
                {"field": "subcategory.id", "condition": "is", "values": [sid]}])
            if any(_parent_id(r, "subcategory") not in (None, sid) for r in rows):
                notes.append("items: SDP ignored the criterion subcategory.id; every item listed once and grouped "
                             "by item.subcategory.id")
                break
            out[sid] = [r for r in rows if _ok(r)]
        else:
            return out
    except SdpRequestError as exc:
        notes.append(f"items: SDP refused the criterion subcategory.id ({exc}); every item listed once and grouped "
                     "by item.subcategory.id")
    except (SdpNotFound, SdpAuthError) as exc:
        unknown["items"] = str(exc)
        return {}
    rows = _optional(lambda: client.list_entries("/items"), "items", unknown) or []
    out = {}
    unplaced = 0
    for row in rows:
        parent = _parent_id(row, "subcategory")
        if not _ok(row) or parent is None:
            unplaced += 1
            continue
        out.setdefault(parent, []).append(row)
    if unplaced:
        notes.append(f"items: {unplaced} item(s) named no subcategory and were left out")
    return out


def _group(client: ServiceDeskClient, row: dict[str, Any], notes: list[str]) -> SupportGroup:
    technicians = row.get("technicians")
    if not isinstance(technicians, list):
        try:
            detail = client.get_entry(f"/support_groups/{row['id']}", "support_group")
            technicians = detail.get("technicians")
        except (SdpNotFound, SdpAuthError) as exc:
            notes.append(f"support_groups: GET /support_groups/{row['id']} refused ({exc})")
            technicians = None
    members = None
    if isinstance(technicians, list):
        members = [Ref(id=str(t["id"]), name=str(t["name"])) for t in technicians
                   if isinstance(t, dict) and t.get("id") is not None and t.get("name")]
    site = row.get("site")
    site_ref = (Ref(id=str(site["id"]), name=str(site.get("name") or site["id"]))
                if isinstance(site, dict) and site.get("id") is not None else None)
    return SupportGroup(**_entry(row), site=site_ref, technicians=members)


def _optional(read: Callable[[], list[dict[str, Any]]], name: str, unknown: dict[str, str]
              ) -> list[dict[str, Any]] | None:
    try:
        return read()
    except (SdpNotFound, SdpAuthError) as exc:
        unknown[name] = str(exc)
        return None


def _ok(row: Any) -> bool:
    """A usable row: an object with an id and a name, not deleted."""
    return (isinstance(row, dict) and row.get("id") is not None and bool(_text(row.get("name")))
            and row.get("deleted") is not True)


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": _text(row["name"]), "description": _text(row.get("description"))}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _parent_id(row: dict[str, Any], parent: str) -> str | None:
    ref = row.get(parent)
    return str(ref["id"]) if isinstance(ref, dict) and ref.get("id") is not None else None
