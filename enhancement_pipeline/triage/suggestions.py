"""The triage suggestions of one ticket as the run passes them on (``suggest_triage`` -> ``synthesize_note``),
and the one compact line that opens the note. Pure."""

from __future__ import annotations

from pydantic import BaseModel, Field

from enhancement_pipeline.triage.classify import LABEL_FIELDS, Suggestion
from enhancement_pipeline.triage.duplicates import Findings

FIELD_NAMES = {"category": "Category", "subcategory": "Subcategory", "item": "Item", "priority": "Priority",
               "group": "Group"}


class FieldSuggestion(BaseModel):
    """One field: ``label`` as the tenant's SDP spells it (None: no confident suggestion), ``confidence`` the
    calibrated probability that it is right (0..1), ``reason`` a few words on why, ``source`` where it came
    from ("history": the vote of similar resolved tickets; "rules": the tenant's routing rules, confidence 1.0,
    ``reason`` naming the rule; "none")."""

    field: str
    label: str | None = None
    confidence: float = 0.0
    reason: str = ""
    source: str = "none"
    applied: bool = False
    """Written into the request by this run (the tenant's apply mode, ``triage.apply``)."""

    @classmethod
    def of(cls, s: Suggestion) -> FieldSuggestion:
        return cls(field=s.field, label=s.label, confidence=s.confidence, reason=s.reason, source=s.source)


class TriageSuggestions(BaseModel):
    """Every field's suggestion for one ticket (``LABEL_FIELDS`` order), the threshold they were held to, and
    ``error``/``note`` when triage could not run or ran without the tenant's taxonomy."""

    fields: list[FieldSuggestion] = Field(default_factory=list)
    min_confidence: float = 0.0
    taxonomy: str = "none"
    error: str | None = None
    related: Findings = Field(default_factory=Findings)
    """Possible duplicates and storm among the tenant's open tickets (``triage.duplicates``)."""
    related_error: str | None = None
    """Why duplicates were not looked for (no pgvector, a database error), or None."""
    escalation: list[str] = Field(default_factory=list)
    """The escalation steps the tenant's rules give ``escalation_priority`` (``triage.rules.escalation_for``)."""
    escalation_priority: str | None = None
    """The priority ``escalation`` is for: the suggested one, else the one set on the ticket."""
    mode: str = "suggest"
    """The tenant's triage mode: ``suggest`` (the note only) or ``apply`` (confident suggestions also written into
    empty fields of the request: ``triage.apply``)."""

    def get(self, field: str) -> FieldSuggestion | None:
        return next((f for f in self.fields if f.field == field), None)


def suggestion_line(triage: TriageSuggestions, escape=lambda text: text) -> str | None:
    """The note's first line: "**Suggested triage:** Category Hardware (91%: 4 of 5 similar resolved tickets) ›
    Printer (80%) · Priority: no confident suggestion · Group Network (70%: 2 of 3 similar resolved tickets)"; in
    apply mode a field the run wrote into the request says so ("...; set in SDP").
    Category, subcategory and item are one path; priority and group follow, then the escalation path of the
    priority ("Escalation (High): Tier 2 → call the on-call engineer"). ``escape`` escapes the tenant's
    names for Markdown. None when triage did not run (an error); "no confident suggestion" is said, not hidden."""
    if triage.error is not None and not triage.fields:
        return None
    parts = []
    path = [f for f in (triage.get(x) for x in ("category", "subcategory", "item")) if f and f.label]
    if path:
        top, *below = path
        parts.append(f"Category {escape(top.label)} ({_why(top, escape)})"
                     + "".join(f" › {escape(f.label)} ({f.confidence:.0%}{'; set in SDP' if f.applied else ''})"
                               for f in below))
    else:
        parts.append("Category: no confident suggestion")
    for name in ("priority", "group"):
        f = triage.get(name)
        if f is None:
            continue
        if f.label:
            parts.append(f"{FIELD_NAMES[name]} {escape(f.label)} ({_why(f, escape)})")
        else:
            parts.append(f"{FIELD_NAMES[name]}: no confident suggestion")
    if triage.escalation:
        parts.append(f"Escalation ({escape(triage.escalation_priority or '?')}): "
                     + " → ".join(escape(step) for step in triage.escalation))
    return "**Suggested triage:** " + " · ".join(parts)


def _why(f: FieldSuggestion, escape) -> str:
    """Why, in the label's parentheses: "91%: 4 of 5 similar resolved tickets"; a rule's reason alone; "; set in
    SDP" when the run wrote it into the request."""
    why = escape(f.reason) if f.source == "rules" else f"{f.confidence:.0%}: {escape(f.reason)}"
    return f"{why}; set in SDP" if f.applied else why


__all__ = ["LABEL_FIELDS", "FieldSuggestion", "TriageSuggestions", "suggestion_line"]
