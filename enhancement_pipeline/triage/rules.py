"""A tenant's routing and escalation rules (issue 14, item 4): what the service desk has decided, which wins over
the learned suggestion. Pure, except ``load_rules`` / ``load_rules_cached`` which read the file.

The tenant's ``triage.rules_file`` (``TRIAGE_RULES_FILE`` without a tenants file) names a YAML file; the
example with every option is ``docs/triage-rules.example.yaml``::

    vip_requesters:                 # names, e-mail addresses or SDP user ids (any case)
      - ceo@contoso.example
      - Jane Doe
    rules:                          # in order: the first matching rule sets a field
      - name: VIP requesters        # optional; the note says "rule 'VIP requesters'" (else "rule 1")
        when: {vip_requester: true}
        then: {priority: High, group: VIP Desk}
      - when: {keywords: [VPN, "remote access"], site: London}
        then: {group: Network, category: Network}
    escalation:                     # priority -> the steps shown in the note
      High: [Tier 2, call the on-call engineer]

``when`` holds one or more conditions, all of which must hold:

- ``category``: a name or a list (any of); compared with the ticket's category when a person set one, else with
  the suggested one (a rule's ``then.category`` counts for the group and priority rules, see below).
- ``keywords``: a word, a phrase or a list (any of), looked for in the subject and description, case-insensitive,
  as whole words: ``VPN`` matches "vpn", "(VPN)" and "VPN-client" but not "VPNs" or "OpenVPN"; a trailing
  ``*`` matches any ending (``VPN*`` also matches "VPNs"); a phrase's words may be separated by any blanks.
  Whole words because a short keyword ("AD", "PC") would otherwise fire inside every other word.
- ``site``: a site name or a list (any of), the request's site.
- ``vip_requester``: true when the requester is in ``vip_requesters`` (by name, e-mail address or user id,
  case and blanks ignored); false when not.

``then`` sets one or more of ``category``, ``priority`` and ``group``. Per field, the first rule (in file
order) that matches and names a value the tenant's SDP taxonomy knows wins; a rule whose value the taxonomy
does not know (a typo, a group deleted in SDP, a group not on the request's site) is skipped, the reason kept in
the run's metadata, and the next matching rule may still set the field. Categories are decided first, so a
routing rule on ``category`` sees a category a rule set. A rule's suggestion has confidence 1.0, source
"rules", and a reason of a few words ("rule 'VIP requesters': VIP requester", "rule 3: keyword 'VPN'"). A rule
that changes the suggested category drops the learned subcategory and item (they belonged to the other one).

``escalation`` maps a priority name (any case) to its ordered steps: group names or free text; the note shows
the steps of the suggested priority.

An empty file is a file without rules. A file that does not validate raises ``RulesFileError`` naming the file
and every bad field; the run then keeps the learned suggestions and says why in its metadata.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from enhancement_pipeline.models import Ticket
from enhancement_pipeline.triage.classify import LABEL_FIELDS, Suggestion
from enhancement_pipeline.triage.taxonomy import AmbiguousGroupError, Taxonomy, normalise

ROUTED_FIELDS: tuple[str, ...] = ("category", "priority", "group")
"""The fields a rule's ``then`` may set, in the order they are decided."""
MAX_STEPS = 8
"""Steps of one escalation path at most (the note stays one line)."""


class RulesFileError(ValueError):
    """The rules file cannot be read or does not validate; the message names the file and every bad field."""


def _names(value: object) -> object:
    """A single name where a list is allowed is a list of one."""
    return [value] if isinstance(value, str) else value


def _clean(names: list[str], what: str) -> list[str]:
    cleaned = [" ".join(n.split()) for n in names]
    if not all(cleaned):
        raise ValueError(f"an empty {what}")
    return cleaned


class When(BaseModel):
    """The conditions of a rule (at least one; all must hold)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: list[str] | None = Field(None, min_length=1)
    keywords: list[str] | None = Field(None, min_length=1)
    site: list[str] | None = Field(None, min_length=1)
    vip_requester: bool | None = None

    @field_validator("category", "keywords", "site", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return _names(value)

    @field_validator("category", "site")
    @classmethod
    def _no_empty_name(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _clean(value, "name")

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        value = _clean(value, "keyword")
        for keyword in value:
            if not re.fullmatch(r"[^*]*[^*\s]\*?", keyword):
                raise ValueError(f"keyword {keyword!r}: '*' is allowed once, at the end, right after a word")
        return value

    @model_validator(mode="after")
    def _something(self) -> When:
        if self.category is None and self.keywords is None and self.site is None and self.vip_requester is None:
            raise ValueError("a rule needs at least one condition (category, keywords, site, vip_requester)")
        return self


class Then(BaseModel):
    """What a matching rule sets (at least one field): names as the tenant's SDP spells them (any case)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str | None = Field(None, min_length=1, max_length=200)
    priority: str | None = Field(None, min_length=1, max_length=200)
    group: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _something(self) -> Then:
        if self.category is None and self.priority is None and self.group is None:
            raise ValueError("a rule must set at least one of category, priority, group")
        return self


class RoutingRule(BaseModel):
    """One rule: ``name`` (optional, short: the note quotes it), ``when`` and ``then``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, min_length=1, max_length=60)
    when: When
    then: Then


class TriageRules(BaseModel):
    """A tenant's rules file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vip_requesters: list[str] = Field(default_factory=list)
    rules: list[RoutingRule] = Field(default_factory=list)
    escalation: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("vip_requesters")
    @classmethod
    def _vips(cls, value: list[str]) -> list[str]:
        return _clean(value, "VIP requester")

    @field_validator("escalation")
    @classmethod
    def _paths(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for priority, steps in value.items():
            if not priority.strip():
                raise ValueError("an empty priority name")
            if normalise(priority) in seen:
                raise ValueError(f"priority {priority!r} given twice (as {seen[normalise(priority)]!r})")
            seen[normalise(priority)] = priority
            if not 1 <= len(steps) <= MAX_STEPS:
                raise ValueError(f"{priority}: an escalation path has 1 to {MAX_STEPS} steps")
            _clean(steps, f"step of {priority}'s escalation")
            if any(len(s) > 80 for s in steps):
                raise ValueError(f"{priority}: a step is at most 80 characters")
        return {p: [" ".join(s.split()) for s in steps] for p, steps in value.items()}

    @functools.cached_property
    def _vip_set(self) -> frozenset[str]:
        return frozenset(normalise(v) for v in self.vip_requesters)

    def is_vip(self, ticket: Ticket) -> bool:
        """Whether the ticket's requester (name, e-mail address or user id) is in ``vip_requesters``."""
        ids = (ticket.requester, ticket.requester_email, ticket.requester_id)
        return any(i and normalise(i) in self._vip_set for i in ids)


# -- reading the file ---------------------------------------------------------------------------------------


def parse_rules(raw: object, source: str = "rules file") -> TriageRules:
    """Validate a parsed YAML document (None, an empty file: no rules). Raises ``RulesFileError`` naming
    ``source`` and every bad field (``rules.2.when.keywords: ...``)."""
    try:
        return TriageRules.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
                             for e in exc.errors())
        raise RulesFileError(f"{source} is invalid: {problems}") from exc


def load_rules(path: Path) -> TriageRules:
    """The rules in ``path``. Raises ``RulesFileError`` naming the file and every bad field."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RulesFileError(f"cannot read rules file {path}: {exc}") from exc
    return parse_rules(raw, f"rules file {path}")


_cache: dict[str, tuple[tuple[int, int], TriageRules]] = {}
_cache_lock = threading.Lock()


def load_rules_cached(path: Path) -> TriageRules:
    """``load_rules``, read again only when the file's modification time or size changed (one read per process
    and version of the file). A file that does not validate is not cached: every run reports it until fixed."""
    key = str(Path(path).resolve())
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise RulesFileError(f"cannot read rules file {path}: {exc}") from exc
    stamp = (st.st_mtime_ns, st.st_size)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    rules = load_rules(path)
    with _cache_lock:
        _cache[key] = (stamp, rules)
    return rules


# -- applying them ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    prefix = keyword.endswith("*")
    words = keyword.rstrip("*").split()
    body = r"\s+".join(re.escape(w) for w in words)
    return re.compile(rf"(?<!\w){body}" + (r"\w*" if prefix else r"(?!\w)"), re.IGNORECASE)


def keyword_found(keyword: str, text: str) -> bool:
    """Whether ``keyword`` (a word or phrase, optionally ending in ``*``) is in ``text`` as whole words,
    case-insensitively (see the module docstring)."""
    return _keyword_pattern(keyword).search(text) is not None


def _label(index: int, rule: RoutingRule) -> str:
    return f"rule {rule.name!r}" if rule.name else f"rule {index + 1}"


def _matches(rules: TriageRules, rule: RoutingRule, ticket: Ticket, category: str | None) -> str | None:
    """Why ``rule`` matches ``ticket`` in a few words ("keyword 'VPN', site London"), or None when it does not.
    ``category``: the ticket's category as the rule sees it."""
    when, why = rule.when, []
    if when.category is not None:
        if category is None or normalise(category) not in {normalise(c) for c in when.category}:
            return None
        why.append(f"category {category}")
    if when.keywords is not None:
        text = f"{ticket.subject}\n{ticket.description}"
        found = next((k for k in when.keywords if keyword_found(k, text)), None)
        if found is None:
            return None
        why.append(f"keyword {found!r}")
    if when.site is not None:
        if ticket.site is None or normalise(ticket.site) not in {normalise(s) for s in when.site}:
            return None
        why.append(f"site {ticket.site}")
    if when.vip_requester is not None:
        if rules.is_vip(ticket) != when.vip_requester:
            return None
        why.append("VIP requester" if when.vip_requester else "not a VIP requester")
    return ", ".join(why)


def _known(taxonomy: Taxonomy | None, field_name: str, name: str, site: str | None) -> tuple[str | None, str]:
    """SDP's spelling of ``name`` for ``field_name``, or None and why it is not one the taxonomy knows."""
    if taxonomy is None:  # never materialized: rules apply as written, as the history's labels do
        return name, ""
    what = {"category": "category", "priority": "priority", "group": "support group"}[field_name]
    if not taxonomy.told(field_name):
        return None, f"SDP did not tell its {what}s, so {what} {name!r} cannot be checked"
    if field_name != "group":
        spelled = taxonomy.canonical(field_name, name)
        return spelled, "" if spelled else f"{what} {name!r} is not in the tenant's SDP"
    try:
        group = taxonomy.resolve_group(name, site)
    except AmbiguousGroupError as exc:
        return None, str(exc)
    if group is not None:
        return group.name, ""
    if taxonomy.groups_named(name):
        return None, f"{what} {name!r} is not on site {site!r}"
    return None, f"{what} {name!r} is not in the tenant's SDP"


@dataclass(frozen=True)
class Routed:
    """What the rules did: ``suggestions`` (every field of the input, a rule's where one applied, in
    ``LABEL_FIELDS`` order), ``applied`` (field -> the rule's reason) and ``skipped`` (rules that matched but
    named a value the taxonomy does not know: "rule 2: group 'Tier 9' is not in the tenant's SDP; not applied")."""

    suggestions: dict[str, Suggestion]
    applied: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def apply_rules(rules: TriageRules | None, ticket: Ticket, suggestions: Mapping[str, Suggestion],
                taxonomy: Taxonomy | None) -> Routed:
    """The learned ``suggestions`` with the tenant's rules applied (see the module docstring): per field of
    ``ROUTED_FIELDS``, the first matching rule whose value the taxonomy knows sets it (source "rules",
    confidence 1.0). ``taxonomy`` None (never read from SDP): values are taken as written. Pure."""
    out = dict(suggestions)
    if rules is None or not rules.rules:
        return Routed(out)
    applied: dict[str, str] = {}
    by: dict[str, str] = {}
    skipped: list[str] = []
    learned_category = suggestions["category"].label if "category" in suggestions else None
    for field_name in ROUTED_FIELDS:
        # Category rules see the ticket's own category or the learned one; the others also a rule's category.
        current = out.get("category")
        category = ticket.category or (current.label if current is not None else None)
        for index, rule in enumerate(rules.rules):
            value = getattr(rule.then, field_name)
            if value is None:
                continue
            why = _matches(rules, rule, ticket, category)
            if why is None:
                continue
            spelled, problem = _known(taxonomy, field_name, value, ticket.site)
            if spelled is None:
                skipped.append(f"{_label(index, rule)}: {problem}; not applied")
                continue
            reason = f"{_label(index, rule)}: {why}"
            out[field_name] = Suggestion(field_name, spelled, 1.0, reason, "rules")
            applied[field_name], by[field_name] = reason, _label(index, rule)
            break
    if "category" in applied and (learned_category is None
                                  or normalise(learned_category) != normalise(out["category"].label)):
        for child in ("subcategory", "item"):
            if child in out and out[child].label is not None:
                out[child] = Suggestion(child, None, 0.0, f"category set by {by['category']}",
                                        "none")
    order = [f for f in LABEL_FIELDS if f in out] + [f for f in out if f not in LABEL_FIELDS]
    return Routed({f: out[f] for f in order}, applied, skipped)


def escalation_for(rules: TriageRules | None, priority: str | None) -> list[str]:
    """The escalation steps of ``priority`` (any case), or [] when the rules have none for it."""
    if rules is None or priority is None:
        return []
    wanted = normalise(priority)
    return next((list(steps) for name, steps in rules.escalation.items() if normalise(name) == wanted), [])
