"""The SDP simulator's taxonomy: one tenant's admin tables, as ``docs/sdp-api-taxonomy.md`` section 5 proposes.

Tables (plural names, as the v3 paths and list keys) and their rows::

    categories      {id, name, description, deleted, technician: None}
    subcategories   {id, name, description, deleted, category: {id, name}}
    items           {id, name, description, deleted, subcategory: {id, name}, category: {id, name}}
    priorities      {id, name, description, deleted, color}
    urgencies, impacts, levels, request_types   {id, name, description, deleted}
    modes           {id, name, description, deleted, internal_name}
    statuses        {id, name, description, deleted, internal_name, in_progress, stop_timer, color}
    sites           {id, name, description, deleted, region: {id, name}}
    support_groups  {id, name, description, deleted, site: {id, name} | None,
                     technicians: [{id, name, email_id}]}   (list rows leave technicians out; the detail has them)
    technicians     {id, name, first_name, last_name, email_id, is_technician, deleted}

The seed (``SimTaxonomy.seeded``): a small MSP tree (Email, Network, Hardware, Security, ...) holding every
label the project's tests and corpora put on requests, plus every category path of the shipped Microsoft
articles (``sap_category`` ``Category\\Subcategory[\\Item]``: the demo history's categories), so every label of
the demo history is one SDP knows. Each table has one ``deleted: true`` entry; two support groups are both
called "Network", on the sites Leeds and Boston. Ids are small integers on-prem and 18 digits on cloud, where
the defaults the research saw shared across cloud tenants keep their suffixes (E-Mail mode ...6665, High
priority ...6805, ...). Which rows a list shows, and how, is the simulator's list machinery (``sdp_simulator``).

Switches (attributes, also settable through ``POST /_sim/taxonomy``): ``statuses_404`` (cloud: ``/statuses``
answers 404/4007), ``technicians_401`` (``/technicians`` answers 401), ``nested_subcategories`` (False:
``/categories/{id}/subcategories`` answers 404/4007, as on-prem builds that only have the flat form) and
``refused_criteria`` (``"items:subcategory.id"``: a list refuses a criterion on that field with 400/4001), and for
``PUT /requests/{id}``: ``priority_locked`` (403/4002), ``subcategory_mandatory`` (4012) and ``closed_is_readonly``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

TABLES = ("categories", "subcategories", "items", "priorities", "urgencies", "impacts", "levels", "modes",
          "request_types", "statuses", "sites", "support_groups", "technicians")
SINGULAR = {"categories": "category", "subcategories": "subcategory", "items": "item", "priorities": "priority",
            "urgencies": "urgency", "impacts": "impact", "levels": "level", "modes": "mode",
            "request_types": "request_type", "statuses": "status", "sites": "site",
            "support_groups": "support_group", "technicians": "technician"}
TAXONOMY_FIELDS = {"category": "categories", "subcategory": "subcategories", "item": "items", "priority": "priorities",
                   "urgency": "urgencies", "impact": "impacts", "level": "levels", "mode": "modes",
                   "request_type": "request_types", "site": "sites", "group": "support_groups",
                   "technician": "technicians"}
"""The request fields ``PUT /requests/{id}`` resolves against a table, parents first (site before group: a group
name is resolved on the request's site)."""

_ONPREM_BASE = {"priorities": 1, "urgencies": 11, "impacts": 21, "levels": 31, "modes": 41, "request_types": 51,
                "statuses": 61, "sites": 71, "support_groups": 81, "technicians": 101, "categories": 301,
                "subcategories": 1001, "items": 3001}
_CLOUD_TENANT = 123_640_000_000_000_000
_CLOUD_BASE = _CLOUD_TENANT + 100_000
_CLOUD_DEFAULTS = {("modes", "E-Mail"): 6665, ("levels", "Tier 1"): 6671, ("impacts", "Affects Group"): 8036,
                   ("priorities", "High"): 6805, ("urgencies", "Normal"): 7921, ("request_types", "Incident"): 8391}
"""Default records whose id suffix two unrelated cloud tenants share (docs/sdp-api-taxonomy.md section 1)."""

STATUSES = {
    "Open": {"internal_name": "Open", "in_progress": True, "stop_timer": False, "color": "#0066ff"},
    "On Hold": {"internal_name": "Onhold", "in_progress": True, "stop_timer": True, "color": "#ff9900"},
    "Resolved": {"internal_name": "Resolved", "in_progress": False, "stop_timer": True, "color": "#00cc00"},
    "Closed": {"internal_name": "Closed", "in_progress": False, "stop_timer": True, "color": "#666666"},
    "Cancelled": {"internal_name": "Cancelled", "in_progress": False, "stop_timer": True, "color": "#999999"},
}
"""The request statuses the simulator knows (by name) and their attributes as SDP embeds them."""

_TREE: dict[str, dict[str, list[str]]] = {
    "Email": {"Outlook": ["Password prompt", "Profile", "Search"], "Mailbox": ["Quota", "Shared mailbox"],
              "Mail delivery": ["Bounce (NDR)", "Spam"]},
    "Network": {"Connectivity": ["VPN", "Wi-Fi", "DNS"], "Firewall": [], "Remote access": []},
    "Hardware": {"Printer": ["Laser printer", "Label printer"], "Laptop": ["Battery", "Screen", "Docking station"],
                 "Desktop": []},
    "Software": {"Installation": [], "Licensing": [], "Microsoft Office": ["Excel", "Word"]},
    "Active Directory": {"Account lockout": [], "Password reset": [], "Group membership": []},
    "Security": {"MFA": [], "Phishing": [], "Malware": []},
    "Server": {"Storage": [], "Backup": [], "Performance": []},
    "Collaboration": {"Microsoft Teams": ["Meetings", "Calling"], "SharePoint": []},
}
"""The MSP part of the seed: every category/subcategory/item the tests and note corpora label requests with."""

_DELETED_TREE = {"Telephony (retired)": {"PBX": ["Voicemail"]}}
_DELETED_SUBCATEGORIES = {"Hardware": ["Fax machine"]}
_DELETED_ITEMS = {("Hardware", "Printer"): ["Dot matrix printer"]}

_PRIORITIES = [("Low", "#6ebe4a"), ("Normal", "#3f9ce8"), ("Medium", "#ffcc00"), ("High", "#ff6600"),
               ("Urgent", "#ff0000")]
_FLAT = {
    "urgencies": ["Low", "Normal", "High", "Urgent"],
    "impacts": ["Affects User", "Affects Group", "Affects Department", "Affects Business"],
    "levels": ["Tier 1", "Tier 2", "Tier 3", "Tier 4"],
    "modes": ["E-Mail", "Phone Call", "Web Form"],
    "request_types": ["Incident", "Service Request"],
}
_DELETED_FLAT = {"priorities": "Critical (retired)", "urgencies": "Immediate (retired)",
                 "impacts": "Affects Site (retired)", "levels": "Tier 0 (retired)", "modes": "Fax",
                 "request_types": "Problem (retired)", "statuses": "Awaiting Parts (retired)",
                 "sites": "Dublin", "support_groups": "Legacy Helpdesk", "technicians": "Former Technician"}
_SITES = [("Leeds", "Head office", "Europe"), ("Boston", "US branch", "Americas")]
_TECHNICIANS = ["Priya Nair", "Tom Walsh", "Sofia Alvarez", "Kwame Mensah", "Fox Mulder"]
_GROUPS = [  # (name, site, members): "Network" twice, on two sites
    ("Service Desk", "Leeds", ["Priya Nair", "Tom Walsh"]),
    ("Messaging", "Leeds", ["Tom Walsh", "Fox Mulder"]),
    ("Network", "Leeds", ["Kwame Mensah"]),
    ("Network", "Boston", ["Sofia Alvarez"]),
    ("Desktop Support", "Boston", ["Sofia Alvarez", "Priya Nair"]),
    ("Collaboration", "Boston", ["Fox Mulder", "Kwame Mensah"]),
]


@lru_cache(maxsize=1)
def article_category_paths() -> tuple[tuple[str, ...], ...]:
    """Every distinct ``sap_category`` path of the shipped Microsoft articles as (category[, subcategory[, item]])
    (a fourth level is dropped): the categories the demo's history carries (``datasets.demo_split``)."""
    from enhancement_pipeline.local.datasets import ms_articles

    paths: set[tuple[str, ...]] = set()
    for article in ms_articles():
        for raw in article.get("sap_category") or []:
            parts = tuple(p.strip() for p in str(raw).split("\\") if p.strip())[:3]
            if parts:
                paths.add(parts)
    return tuple(sorted(paths))


def norm_name(name: str) -> str:
    """``name`` as SDP compares lookup names here: blanks collapsed, case ignored."""
    return " ".join(str(name).split()).casefold()


@dataclass
class SimTaxonomy:
    """A tenant's admin tables (see the module docstring) and the edition switches. Methods take ``lock``.

    Change rows through the methods (``add``, ``add_path``, ``add_group``, ``set_deleted``, ``rename``); after
    editing ``tables`` by hand, call ``reindex`` so lookups by name see the change.
    """

    edition: str = "onprem"
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in TABLES})
    statuses_404: bool = False
    technicians_401: bool = False
    nested_subcategories: bool = True
    refused_criteria: set[str] = field(default_factory=set)
    priority_locked: bool = False
    """``PUT /requests/{id}`` refuses any priority with 403 / 4002 "Cannot give value for priority" (seen on a cloud
    tenant; the cause, a priority matrix, the template or the role, is not established)."""
    subcategory_mandatory: bool = False
    """A PUT that changes the category without a subcategory is refused with 400 / 4012 (a template that makes
    subcategory mandatory)."""
    closed_is_readonly: bool = False
    """A Closed request refuses taxonomy edits (4001): the setting some SDPs have about editing closed requests."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    _counters: dict[str, int] = field(default_factory=dict)
    _index: dict[str, dict[str, list[dict[str, Any]]]] | None = None

    @classmethod
    def seeded(cls, edition: str = "onprem", *, with_article_categories: bool = True) -> SimTaxonomy:
        """The seeded taxonomy for ``edition`` (``onprem`` or ``cloud``: cloud ids, and ``/statuses`` answers 404).

        ``with_article_categories``: also every category path of the shipped Microsoft articles (reads them:
        about 0.7 s the first time in a process). Raises ``ValueError`` for another edition.
        """
        if edition not in ("onprem", "cloud"):
            raise ValueError(f"edition must be onprem or cloud, not {edition!r}")
        tax = cls(edition=edition, statuses_404=edition == "cloud")
        for name, color in _PRIORITIES:
            tax.add("priorities", name, color=color)
        for table, names in _FLAT.items():
            for name in names:
                extra = {"internal_name": name.replace(" ", "").replace("-", "")} if table == "modes" else {}
                tax.add(table, name, **extra)
        for name, attrs in STATUSES.items():
            tax.add("statuses", name, **attrs)
        for n, (name, description, region) in enumerate(_SITES, start=1):
            tax.add("sites", name, description=description, region={"id": str(n), "name": region})
        for name in _TECHNICIANS:
            first, _, last = name.partition(" ")
            tax.add("technicians", name, first_name=first, last_name=last, is_technician=True,
                    email_id=f"{name.lower().replace(' ', '.')}@msp.example")
        for name, site, members in _GROUPS:
            tax.add_group(name, site, members)
        for category, subcategories in _TREE.items():
            tax.add_path(category)
            for subcategory, items in subcategories.items():
                tax.add_path(category, subcategory)
                for item in items:
                    tax.add_path(category, subcategory, item)
        if with_article_categories:
            for path in article_category_paths():
                tax.add_path(*path)
        # One deleted entry per table: SDP lists them unless a criterion leaves them out.
        for category, subcategories in _DELETED_TREE.items():
            for subcategory, items in subcategories.items():
                for item in items:
                    tax.add_path(category, subcategory, item)
            tax.set_deleted("categories", category)
        for category, names in _DELETED_SUBCATEGORIES.items():
            for name in names:
                row = tax.add_path(category, name)
                row["deleted"] = True
        for (category, subcategory), names in _DELETED_ITEMS.items():
            for name in names:
                row = tax.add_path(category, subcategory, name)
                row["deleted"] = True
        for table, name in _DELETED_FLAT.items():
            if table == "support_groups":
                row = tax.add_group(name, "Leeds", ["Priya Nair"])
            else:
                row = tax.add(table, name, **({"color": "#000000"} if table == "priorities" else {}))
            row["deleted"] = True
        return tax

    # -- building -----------------------------------------------------------------------------------------

    def new_id(self, table: str, name: str) -> str:
        """The next id of ``table`` in this edition's style (the cloud defaults keep their known suffixes)."""
        with self.lock:
            n = self._counters.get(table, _ONPREM_BASE[table])
            self._counters[table] = n + 1
            if self.edition == "cloud":
                pinned = _CLOUD_DEFAULTS.get((table, name))
                return str(_CLOUD_TENANT + pinned) if pinned else str(_CLOUD_BASE + n)
            return str(n)

    def add(self, table: str, name: str, **fields: Any) -> dict[str, Any]:
        """Append a row ``{id, name, description: None, deleted: False, **fields}`` to ``table``; returns it."""
        with self.lock:
            row = {"id": self.new_id(table, name), "name": name, "description": None, "deleted": False, **fields}
            self.tables[table].append(row)
            if self._index is not None:
                self._index[table].setdefault(norm_name(name), []).append(row)
            return row

    def add_path(self, category: str, subcategory: str | None = None, item: str | None = None) -> dict[str, Any]:
        """Make sure category / subcategory / item exist (each under the one above); returns the deepest row."""
        with self.lock:
            cat = self.find("categories", category) or self.add("categories", category, technician=None)
            if subcategory is None:
                return cat
            cat_ref = {"id": cat["id"], "name": cat["name"]}
            sub = (self.find("subcategories", subcategory, parent=("category", cat["id"]))
                   or self.add("subcategories", subcategory, category=cat_ref))
            if item is None:
                return sub
            return (self.find("items", item, parent=("subcategory", sub["id"]))
                    or self.add("items", item, subcategory={"id": sub["id"], "name": sub["name"]}, category=cat_ref))

    def add_group(self, name: str, site: str | None, members: list[str]) -> dict[str, Any]:
        """A support group on ``site`` (a site name, or None) with the named technicians; returns its row."""
        with self.lock:
            site_row = self.find("sites", site) if site else None
            technicians = [{"id": t["id"], "name": t["name"], "email_id": t.get("email_id")}
                           for t in (self.find("technicians", m) for m in members) if t]
            return self.add("support_groups", name,
                            site={"id": site_row["id"], "name": site_row["name"]} if site_row else None,
                            technicians=technicians)

    def set_deleted(self, table: str, name: str, deleted: bool = True) -> dict[str, Any]:
        """Mark the first row of ``table`` called ``name`` deleted (or not); returns it. Raises ``KeyError``."""
        with self.lock:
            row = self.find(table, name, include_deleted=True)
            if row is None:
                raise KeyError(f"no {table} row named {name!r}")
            row["deleted"] = deleted
            return row

    def rename(self, table: str, name: str, new_name: str) -> dict[str, Any]:
        """Rename the first live row of ``table`` called ``name`` (children keep pointing at it by id, and their
        embedded ``{id, name}`` follows); returns it. Raises ``KeyError``."""
        with self.lock:
            row = self.find(table, name)
            if row is None:
                raise KeyError(f"no {table} row named {name!r}")
            row["name"] = new_name
            parent_field = SINGULAR[table]
            for rows in self.tables.values():
                for child in rows:
                    ref = child.get(parent_field)
                    if isinstance(ref, dict) and ref.get("id") == row["id"]:
                        ref["name"] = new_name
            self.reindex()
            return row

    def reindex(self) -> None:
        """Forget the name index (rebuilt on the next lookup)."""
        with self.lock:
            self._index = None

    # -- reading ------------------------------------------------------------------------------------------

    def rows(self, table: str) -> list[dict[str, Any]]:
        """A copy of ``table``'s rows (each row copied too)."""
        with self.lock:
            return [dict(r) for r in self.tables[table]]

    def get(self, table: str, entry_id: str) -> dict[str, Any] | None:
        """A copy of the row of ``table`` with id ``entry_id``, deleted or not; None when there is none."""
        with self.lock:
            row = next((r for r in self.tables[table] if r["id"] == str(entry_id)), None)
            return dict(row) if row else None

    def find(self, table: str, name: str | None, *, parent: tuple[str, str] | None = None,
             site: str | None = None, include_deleted: bool = False) -> dict[str, Any] | None:
        """The row of ``table`` called ``name`` (case and blanks ignored), live rows first; ``parent`` =
        (field, id) keeps to rows under that parent (``("category", "301")``); ``site`` prefers a support group
        on that site. The row itself (not a copy), or None."""
        if not name:
            return None
        with self.lock:
            if self._index is None:
                index: dict[str, dict[str, list[dict[str, Any]]]] = {t: {} for t in TABLES}
                for t, rows in self.tables.items():
                    for r in rows:
                        index[t].setdefault(norm_name(r["name"]), []).append(r)
                self._index = index
            rows = self._index[table].get(norm_name(name), [])
            if parent is not None:
                rows = [r for r in rows if (r.get(parent[0]) or {}).get("id") == parent[1]]
            live = [r for r in rows if not r.get("deleted")]
            candidates = live or (rows if include_deleted else [])
            if site is not None:
                wanted = norm_name(site)
                on_site = [r for r in candidates if norm_name((r.get("site") or {}).get("name") or "") == wanted]
                candidates = on_site or candidates
            return candidates[0] if candidates else None

    def embed(self, table: str, name: str | None, *, parent: tuple[str, str] | None = None,
              site: str | None = None) -> dict[str, Any] | None:
        """The object a request embeds for a known ``name`` of ``table``: ``{id, name}``; a priority adds
        ``color``, a status its attributes, a group ``site`` and ``deleted`` (as SDP embeds them). None when the
        taxonomy has no such name (the caller falls back to a made-up id)."""
        row = self.find(table, name, parent=parent, site=site)
        return self.embedded(table, row) if row is not None else None

    @staticmethod
    def embedded(table: str, row: dict[str, Any]) -> dict[str, Any]:
        """The object a request embeds for ``row`` of ``table`` (see ``embed``)."""
        out = {"id": row["id"], "name": row["name"]}
        if table == "priorities":
            out["color"] = row.get("color")
        elif table == "statuses":
            out.update({k: row.get(k) for k in ("internal_name", "in_progress", "stop_timer", "color")})
        elif table == "support_groups":
            out.update(site=row.get("site"), deleted=bool(row.get("deleted")))
        elif table == "technicians":
            out["email_id"] = row.get("email_id")
        return out

    def switches(self) -> dict[str, Any]:
        """The edition switches, as ``POST /_sim/taxonomy`` takes them."""
        with self.lock:
            return {"edition": self.edition, "statuses_404": self.statuses_404,
                    "technicians_401": self.technicians_401, "nested_subcategories": self.nested_subcategories,
                    "refused_criteria": sorted(self.refused_criteria), "priority_locked": self.priority_locked,
                    "subcategory_mandatory": self.subcategory_mandatory, "closed_is_readonly": self.closed_is_readonly}
