"""Apply mode (a tenant's ``triage.mode: apply``): which triage suggestions the pipeline writes into SDP itself,
as the body of one ``PUT /api/v3/requests/{id}``. Pure; the op ``triage.ops.apply_triage`` reads the request,
plans with ``plan_writes``, sends the PUT and records every write and every refusal in the run's metadata.

What is written, and why:

- **Only empty fields.** The request is read again just before the PUT (a person may have triaged it while the
  run gathered context), and a field that holds any value is left alone, even when it is the value we would
  suggest: a technician's choice, the template's default or an SDP business rule's is never overwritten. SDP
  has no conditional PUT, so a person setting the field in the half-second between that read and the PUT is
  overwritten; the run's metadata then shows the write.
- **Only confident suggestions.** The calibrated confidence (``classify``) must reach the tenant's
  ``triage.apply_min_confidence`` (default 0.8, stricter than the 0.6 that puts a suggestion in the note); a
  routing rule's suggestion (confidence 1.0) always does.
- **Only what the tenant's taxonomy names, by id.** The stored ``<tenant>/sdp_taxonomy`` gives each label its
  id: SDP resolves ids without ambiguity, while a group name can exist on two sites. A group is the one of
  that name on the request's site (``Taxonomy.resolve_group``); when that is not one group, no group is written.
  Without a stored taxonomy nothing is written.
- **A path stays a path.** A subcategory is written only when the request's category ends up the suggested
  one (written now, or already so), an item only under its subcategory: SDP refuses a subcategory under another
  category.

``APPLY_FIELDS`` are the fields apply mode writes: category, subcategory, item, priority, group (the triage
suggestions). SDP's answers that refuse one field (``4001`` unknown value, ``4002`` "Cannot give value for
priority", ``4012`` mandatory subcategory) are handled by the op with ``WritePlan.without``: the refused field
(and the fields under it) leave the plan with SDP's reason, the rest is sent again.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from enhancement_pipeline.models import Ticket
from enhancement_pipeline.triage.classify import PARENT, ancestors
from enhancement_pipeline.triage.suggestions import TriageSuggestions
from enhancement_pipeline.triage.taxonomy import AmbiguousGroupError, Taxonomy

APPLY_FIELDS = ("category", "subcategory", "item", "priority", "group")
CHILDREN = {"category": ("subcategory", "item"), "subcategory": ("item",)}
APPLY_MIN_CONFIDENCE = 0.8
"""Default of a tenant's ``triage.apply_min_confidence``: the calibrated probability a suggestion needs before the
pipeline writes it into SDP."""
_TICKET_FIELD = {"group": "support_group"}


class FieldWrite(BaseModel):
    """One field the pipeline writes: SDP's ``id`` and ``label`` (name) for it, the suggestion's ``confidence``
    (0..1) and ``source`` ("history" or "rules")."""

    field: str
    label: str
    id: str
    confidence: float
    source: str

    def describe(self) -> str:
        """"category Hardware (id 301, 91%, history)": how the run's metadata lists a write."""
        return f"{self.field} {self.label} (id {self.id}, {self.confidence:.0%}, {self.source})"


class WritePlan(BaseModel):
    """The fields to write (``writes``, in ``APPLY_FIELDS`` order) and, for every other suggested field, why it is
    not written (``skipped``: field -> reason)."""

    writes: list[FieldWrite] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)

    def body(self) -> dict[str, dict[str, str]]:
        """The ``PUT /requests/{id}`` ``request`` object: ``{"category": {"id": "301", "name": "Hardware"}, ...}``
        (SDP takes the id and ignores the name when both are given)."""
        return {w.field: {"id": w.id, "name": w.label} for w in self.writes}

    def without(self, field: str, reason: str) -> WritePlan:
        """The plan without ``field`` and the fields under it (a refused category takes its subcategory and
        item along), each skipped with ``reason``."""
        dropped = {field, *CHILDREN.get(field, ())}
        writes = [w for w in self.writes if w.field not in dropped]
        skipped = dict(self.skipped)
        for w in self.writes:
            if w.field in dropped:
                skipped[w.field] = reason if w.field == field else f"{reason} (on {field}, which it is under)"
        return WritePlan(writes=writes, skipped=skipped)

    @property
    def fields(self) -> list[str]:
        return [w.field for w in self.writes]


def plan_writes(current: Ticket, triage: TriageSuggestions, taxonomy: Taxonomy | None,
                min_confidence: float = APPLY_MIN_CONFIDENCE) -> WritePlan:
    """What to write on the request ``current`` (as SDP has it now, read just before) from ``triage``: see the
    module docstring for the rules. Every suggested field is either written or skipped with a reason; a field
    without a suggestion is neither."""
    plan = WritePlan()
    if triage.error is not None:
        return plan
    suggested = {f.field: f for f in triage.fields if f.field in APPLY_FIELDS and f.label}
    if not suggested:
        return plan
    if taxonomy is None:
        return WritePlan(skipped={f: "no stored sdp_taxonomy: the ids to write are unknown" for f in suggested})
    final: dict[str, str | None] = {f: getattr(current, _TICKET_FIELD.get(f, f)) for f in APPLY_FIELDS}
    for name in APPLY_FIELDS:
        s = suggested.get(name)
        if s is None:
            continue
        value = final[name]
        if value is not None:
            same = " (the suggestion)" if value.casefold() == s.label.casefold() else ""
            plan.skipped[name] = f"already set to {value}{same}: never overwritten"
            continue
        if s.confidence < min_confidence:
            plan.skipped[name] = f"confidence {s.confidence:.0%} below the tenant's {min_confidence:.0%} for writing"
            continue
        parent = PARENT.get(name)  # classify's: what a subcategory or item was voted under
        if parent is not None:
            wanted = suggested.get(parent)
            if wanted is None or (final[parent] or "").casefold() != wanted.label.casefold():
                # Voted among tickets of the suggested parent: under another one it means something else.
                plan.skipped[name] = (f"suggested under {parent} {wanted.label}, but the request's {parent} is "
                                      f"{final[parent]}" if wanted is not None and final[parent]
                                      else f"no {parent} on the request to put it under")
                continue
        entry_id, why = _entry_id(name, s.label, final, taxonomy, current.site)
        if entry_id is None:
            plan.skipped[name] = why
            continue
        plan.writes.append(FieldWrite(field=name, label=s.label, id=entry_id, confidence=s.confidence,
                                      source=s.source))
        final[name] = s.label
    return plan


def _entry_id(name: str, label: str, final: dict[str, str | None], taxonomy: Taxonomy, site: str | None
              ) -> tuple[str | None, str]:
    """SDP's id of ``label`` for field ``name`` given the request's (final) category and subcategory, or
    ``(None, why not)``."""
    match name:
        case "category":
            entry = taxonomy.category(label)
        case "subcategory":
            if final["category"] is None:
                return None, "no category on the request to put it under"
            entry = taxonomy.subcategory(final["category"], label)
            if entry is None:
                return None, f"not a subcategory of {final['category']} in the taxonomy"
        case "item":
            if final["category"] is None or final["subcategory"] is None:
                return None, "no subcategory on the request to put it under"
            parent = taxonomy.subcategory(final["category"], final["subcategory"])
            entry = next((i for i in (parent.items if parent else []) if i.name.casefold() == label.casefold()), None)
            if entry is None:
                return None, f"not an item of {final['category']} › {final['subcategory']} in the taxonomy"
        case "priority":
            entry = next((p for p in taxonomy.priorities if p.name.casefold() == label.casefold()), None)
        case "group":
            try:
                entry = taxonomy.resolve_group(label, site)
            except AmbiguousGroupError as exc:
                return None, f"ambiguous: {exc}"
            if entry is None:
                return None, (f"no group {label} on the request's site {site}" if site
                              else f"no group {label} in the taxonomy")
        case _:
            return None, f"{name} is not written in apply mode"
    if entry is None:
        return None, f"{label} is not in the tenant's taxonomy"
    return entry.id, ""


def refused_field(plan: WritePlan, messages: list[dict]) -> str | None:
    """The planned field an SDP refusal names (``messages[].field`` or ``messages[].fields``), or the nearest
    planned field above one it names: a 4012 "subcategory is mandatory" refuses the category we sent without one.
    None when the refusal names no planned field."""
    named = [m.get("field") for m in messages] + [f for m in messages for f in (m.get("fields") or [])]
    return next((f for name in named if name for f in (name, *ancestors(name)) if f in plan.fields), None)


def verify(plan: WritePlan, answered: Ticket) -> tuple[list[FieldWrite], dict[str, str]]:
    """The writes SDP's answer to the PUT shows (``answered``: the request it returned) and, for the others, why
    not: SDP can answer 200 with a warning (status 3000) and leave a field unchanged."""
    done, missing = [], {}
    for w in plan.writes:
        shown = getattr(answered, _TICKET_FIELD.get(w.field, w.field))
        if shown is not None and shown.casefold() == w.label.casefold():
            done.append(w)
        else:
            missing[w.field] = f"SDP accepted the PUT but its answer shows {w.field} {shown!r}, not {w.label!r}"
    return done, missing


def describe(writes: Iterable[FieldWrite]) -> str:
    """The writes for the run's metadata: "category Hardware (id 301, 91%, history); group Network (...)"."""
    return "; ".join(w.describe() for w in writes) or "none"
