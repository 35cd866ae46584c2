"""A tenant's own SDP taxonomy: the only labels triage may suggest (issue 14, item 1). Pure: no I/O.

Where it comes from: ``triage.taxonomy_reader.read_taxonomy`` reads it through the SDP v3 admin endpoints
(``docs/sdp-api-taxonomy.md``, sections 1-2 and 6): ``/categories`` with their subcategories
(``/categories/{id}/subcategories``, or ``/subcategories`` filtered on ``category.id``) and ``/items``
(filtered on ``subcategory.id``), ``/priorities``, ``/urgencies``, ``/impacts``, ``/levels``, ``/modes``,
``/request_types``, ``/statuses``, ``/sites``, ``/support_groups`` (with each group's ``technicians`` from
``/support_groups/{id}`` where SDP gives them) and ``/technicians``. The ``<tenant>/sdp_taxonomy`` asset
stores it in Postgres (``sdp_taxonomy``, a JSON document per tenant) once a day.

Shape (every id a string, as SDP sends it: small integers on-prem, 18 digits on cloud)::

    Taxonomy
      fetched_at            when SDP was read (timezone-aware UTC)
      categories            [Category{id, name, description, subcategories: [Subcategory{..., items: [Item]}]}]
      priorities            [Priority{id, name, description, color}]
      urgencies, impacts, levels, sites, modes, request_types           [Entry{id, name, description}]
      statuses              [Entry] | None          None: SDP did not tell (cloud answers /statuses with 404)
      support_groups        [SupportGroup{id, name, description, site: Ref | None,
                                          technicians: [Ref] | None}] | None
      technicians           [Technician{id, name, email_id}] | None   (cloud answers /technicians with 401)
      unknown               {resource: why SDP did not tell}, e.g. {"statuses": "HTTP 404, SDP 4007: ..."}
      notes                 how it was read when SDP needed a fallback, e.g. "subcategories: flat list ..."

Deleted entries (``deleted: true`` in SDP) are never in it: a label SDP keeps only for old tickets is not one
to suggest. A group's ``technicians`` is None when SDP does not say who is in it (never taken as empty).

Names are matched the way SDP matches a lookup by name: case and surrounding blanks do not matter
(``canonical`` gives SDP's own spelling). Names repeat: a subcategory name under several categories
("Other"), an item name under several subcategories, and a support group name on several sites; the
helpers that need the parent take it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TaxonomyField = Literal["category", "subcategory", "item", "priority", "group", "urgency", "impact", "level",
                        "site", "status", "mode", "request_type", "technician"]
FIELDS: tuple[str, ...] = ("category", "subcategory", "item", "priority", "group", "urgency", "impact", "level",
                           "site", "status", "mode", "request_type", "technician")
"""The request fields a taxonomy lists allowed values for (names as on ``PUT /requests/{id}``)."""


class UnknownFieldError(KeyError):
    """A field name the taxonomy has no values for (not one of ``FIELDS``)."""


class AmbiguousGroupError(LookupError):
    """A support group name held by several groups (on different sites) and no site that tells them apart.

    ``candidates`` are the groups with that name.
    """

    def __init__(self, name: str, candidates: list[SupportGroup]):
        sites = ", ".join(f"{g.site.name if g.site else 'no site'} (id {g.id})" for g in candidates)
        super().__init__(f"support group {name!r} exists on several sites: {sites}; give the request's site")
        self.name = name
        self.candidates = candidates


def normalise(name: str) -> str:
    """The form names are compared in: blanks collapsed and stripped, case folded (``" Mail  Flow"`` and
    ``"mail flow"`` are one name)."""
    return " ".join(name.split()).casefold()


class Ref(BaseModel):
    """A reference to another entry as SDP embeds it (``{"id", "name"}``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str


class Entry(BaseModel):
    """One value of a lookup field: ``id`` (a string), ``name`` as SDP shows it, optional ``description``."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    description: str | None = None


class Item(Entry):
    """An item under a subcategory (``GET /items``, each row carrying ``subcategory: {id, name}``)."""


class Subcategory(Entry):
    """A subcategory of one category, with its items (empty when it has none)."""

    items: list[Item] = Field(default_factory=list)


class Category(Entry):
    """A category with its subcategories."""

    subcategories: list[Subcategory] = Field(default_factory=list)


class Priority(Entry):
    """A priority; ``color`` is SDP's hex colour (``"#ff0000"``) or None."""

    color: str | None = None


class Technician(Entry):
    """A technician (``GET /technicians``); ``email_id`` when SDP sends it."""

    email_id: str | None = None


class SupportGroup(Entry):
    """A support group: ``site`` it belongs to (None on a single-site tenant) and its ``technicians``, None when
    SDP does not tell (``GET /support_groups/{id}`` without a ``technicians`` field)."""

    site: Ref | None = None
    technicians: list[Ref] | None = None


class Taxonomy(BaseModel):
    """A tenant's taxonomy as SDP served it at ``fetched_at`` (see the module docstring for the shape)."""

    model_config = ConfigDict(frozen=True)

    fetched_at: datetime
    categories: list[Category] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    urgencies: list[Entry] = Field(default_factory=list)
    impacts: list[Entry] = Field(default_factory=list)
    levels: list[Entry] = Field(default_factory=list)
    sites: list[Entry] = Field(default_factory=list)
    modes: list[Entry] | None = None
    request_types: list[Entry] | None = None
    statuses: list[Entry] | None = None
    support_groups: list[SupportGroup] | None = None
    technicians: list[Technician] | None = None
    unknown: dict[str, str] = Field(default_factory=dict, description="Resources SDP did not serve, with why.")
    notes: list[str] = Field(default_factory=list, description="Fallbacks the read needed, in words.")

    # -- allowed values -----------------------------------------------------------------------------------

    def entries(self, field: str) -> list[Entry] | None:
        """Every entry of ``field`` (one of ``FIELDS``); subcategories and items of every category, so their
        names may repeat. None when SDP did not tell (e.g. ``status`` on cloud). Raises ``UnknownFieldError``."""
        match field:
            case "category":
                return list(self.categories)
            case "subcategory":
                return [s for c in self.categories for s in c.subcategories]
            case "item":
                return [i for c in self.categories for s in c.subcategories for i in s.items]
            case "priority":
                return list(self.priorities)
            case "group":
                return None if self.support_groups is None else list(self.support_groups)
            case "technician":
                return None if self.technicians is None else list(self.technicians)
            case "urgency" | "impact" | "level" | "site":
                return list(getattr(self, {"urgency": "urgencies", "impact": "impacts", "level": "levels",
                                           "site": "sites"}[field]))
            case "status" | "mode" | "request_type":
                values = getattr(self, f"{field}es" if field == "status" else f"{field}s")
                return None if values is None else list(values)
        raise UnknownFieldError(f"no taxonomy field {field!r} (known: {', '.join(FIELDS)})")

    def told(self, field: str) -> bool:
        """Whether SDP told the values of ``field`` (False: suggest nothing for it). Raises ``UnknownFieldError``."""
        return self.entries(field) is not None

    def allowed(self, field: str) -> tuple[str, ...]:
        """The distinct names ``field`` may take, sorted case-insensitively; empty when SDP did not tell. These are
        the only labels a classifier may suggest. Raises ``UnknownFieldError``."""
        seen: dict[str, str] = {}
        for entry in self.entries(field) or []:
            seen.setdefault(normalise(entry.name), entry.name)
        return tuple(sorted(seen.values(), key=normalise))

    def canonical(self, field: str, name: str | None) -> str | None:
        """SDP's spelling of ``name`` for ``field`` (case and blanks as SDP has them), or None when the taxonomy
        does not know it (or SDP did not tell the field). Raises ``UnknownFieldError``."""
        if name is None:
            return None
        wanted = normalise(name)
        return next((e.name for e in self.entries(field) or [] if normalise(e.name) == wanted), None)

    def knows(self, field: str, name: str | None) -> bool:
        """Whether ``name`` is a value of ``field`` the tenant's SDP has (not deleted). A subcategory or item is
        known here if it is under any category; ``subcategories_of`` / ``items_of`` check the parent. False for
        a field SDP did not tell. Raises ``UnknownFieldError``."""
        return self.canonical(field, name) is not None

    # -- the tree -----------------------------------------------------------------------------------------

    def category(self, name: str) -> Category | None:
        """The category called ``name`` (as ``normalise`` compares), or None."""
        wanted = normalise(name)
        return next((c for c in self.categories if normalise(c.name) == wanted), None)

    def subcategories_of(self, category: str) -> tuple[str, ...]:
        """Names of the subcategories under ``category`` (SDP's order); empty for an unknown category."""
        found = self.category(category)
        return tuple(s.name for s in found.subcategories) if found else ()

    def subcategory(self, category: str, subcategory: str) -> Subcategory | None:
        """The subcategory ``subcategory`` under ``category``, or None."""
        found, wanted = self.category(category), normalise(subcategory)
        if found is None:
            return None
        return next((s for s in found.subcategories if normalise(s.name) == wanted), None)

    def items_of(self, category: str, subcategory: str) -> tuple[str, ...]:
        """Names of the items under ``subcategory`` of ``category`` (a subcategory name may repeat under other
        categories); empty when either is unknown or the subcategory has no items."""
        found = self.subcategory(category, subcategory)
        return tuple(i.name for i in found.items) if found else ()

    def knows_path(self, category: str | None, subcategory: str | None = None, item: str | None = None) -> bool:
        """Whether category / subcategory / item form a path SDP has (each level under the one above; a level
        left None ends the path there). False for an item without a subcategory."""
        if category is None:
            return subcategory is None and item is None
        if self.category(category) is None:
            return False
        if subcategory is None:
            return item is None
        found = self.subcategory(category, subcategory)
        if found is None:
            return False
        return item is None or any(normalise(i.name) == normalise(item) for i in found.items)

    # -- support groups -----------------------------------------------------------------------------------

    def groups_named(self, name: str) -> list[SupportGroup]:
        """Every support group called ``name`` (several on a multi-site tenant); empty when SDP did not tell."""
        wanted = normalise(name)
        return [g for g in self.support_groups or [] if normalise(g.name) == wanted]

    def resolve_group(self, name: str, site: str | None = None) -> SupportGroup | None:
        """The support group a request on ``site`` means by ``name``.

        - ``site`` given (a site name or id): the group of that name on that site, else the one of that name
          without a site; None when the name exists only on other sites (SDP refuses such a group for the
          request, docs/sdp-api-taxonomy.md section 5).
        - no ``site``: the one group of that name. Raises ``AmbiguousGroupError`` when several sites have one.

        None for a name no group has, or when SDP did not tell the groups.
        """
        candidates = self.groups_named(name)
        if not candidates:
            return None
        if site is not None:
            wanted = normalise(site)
            on_site = [g for g in candidates if g.site and (normalise(g.site.name) == wanted or g.site.id == site)]
            if len(on_site) == 1:
                return on_site[0]
            if len(on_site) > 1:  # two groups of one name on one site: SDP should not allow it
                raise AmbiguousGroupError(name, on_site)
            siteless = [g for g in candidates if g.site is None]
            return siteless[0] if len(siteless) == 1 else None
        if len(candidates) > 1:
            raise AmbiguousGroupError(name, candidates)
        return candidates[0]

    # -- summaries ----------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int | None]:
        """Entries per field (``FIELDS``; subcategories and items over all categories); None where SDP did not
        tell."""
        return {f: (None if (e := self.entries(f)) is None else len(e)) for f in FIELDS}

    def changes_since(self, before: Taxonomy) -> dict[str, tuple[list[str], list[str]]]:
        """Per field, the names added and removed since ``before`` (fields unchanged are left out; a field SDP did
        not tell on either side is compared as empty). Subcategories and items as ``Category/Subcategory`` and
        ``Category/Subcategory/Item`` paths, since their names repeat."""
        out: dict[str, tuple[list[str], list[str]]] = {}
        for f in FIELDS:
            now, then = _names(self, f), _names(before, f)
            added, removed = sorted(now.keys() - then.keys()), sorted(then.keys() - now.keys())
            if added or removed:
                out[f] = ([now[k] for k in added], [then[k] for k in removed])
        return out


def _names(taxonomy: Taxonomy, field: str) -> dict[str, str]:
    if field == "subcategory":
        paths = [f"{c.name}/{s.name}" for c in taxonomy.categories for s in c.subcategories]
    elif field == "item":
        paths = [f"{c.name}/{s.name}/{i.name}" for c in taxonomy.categories for s in c.subcategories
                 for i in s.items]
    elif field == "group":
        paths = [f"{g.name} ({g.site.name})" if g.site else g.name for g in taxonomy.support_groups or []]
    else:
        paths = [e.name for e in taxonomy.entries(field) or []]
    return {normalise(p): p for p in paths}
