"""The tenant's routing and escalation rules (triage/rules.py), the note line they feed (triage/suggestions.py),
and the ``suggest_triage`` op with a rules file, on the real Postgres."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from enhancement_pipeline.models import SimilarTicketsContext, Ticket
from enhancement_pipeline.servicedesk.payloads import parse_request, to_ticket
from enhancement_pipeline.tenants import load_tenants_file
from enhancement_pipeline.triage import rules as rules_mod
from enhancement_pipeline.triage.classify import Neighbour, Suggestion
from enhancement_pipeline.triage.rules import (
    RulesFileError,
    apply_rules,
    escalation_for,
    keyword_found,
    load_rules,
    load_rules_cached,
    parse_rules,
)
from enhancement_pipeline.triage.suggestions import FieldSuggestion, TriageSuggestions, suggestion_line
from enhancement_pipeline.triage.taxonomy import Category, Priority, Ref, SupportGroup, Taxonomy

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "triage-rules.example.yaml"


def ticket(subject: str = "Printer jams", description: str = "", **fields) -> Ticket:
    return Ticket(tenant_id="acme", ticket_id="100", subject=subject, description=description, **fields)


def learned(**labels: tuple[str | None, float]) -> dict[str, Suggestion]:
    """Learned suggestions: ``group=("Network", 0.95)``; fields not given have no suggestion."""
    out = {}
    for field in ("category", "subcategory", "item", "priority", "group"):
        label, confidence = labels.get(field, (None, 0.0))
        out[field] = (Suggestion(field, label, confidence, "4 of 5 similar resolved tickets", "history")
                      if label else Suggestion(field, None, confidence, "no similar resolved tickets", "none"))
    return out


TAXONOMY = Taxonomy(
    fetched_at=datetime(2025, 1, 1, tzinfo=UTC),
    categories=[Category(id="1", name="Network"), Category(id="2", name="Hardware"), Category(id="3", name="Security")],
    priorities=[Priority(id="1", name="Low"), Priority(id="2", name="High"), Priority(id="3", name="Urgent")],
    support_groups=[SupportGroup(id="1", name="Network Team"), SupportGroup(id="2", name="VIP Desk"),
                    SupportGroup(id="3", name="Field Services", site=Ref(id="10", name="London")),
                    SupportGroup(id="4", name="Field Services", site=Ref(id="11", name="Paris"))])


# -- validation --------------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_unknown_key_is_named_with_the_file(tmp_path):
    path = write(tmp_path, "rules:\n  - when: {keyword: VPN}\n    then: {group: Network Team}\n")
    with pytest.raises(RulesFileError) as err:
        load_rules(path)
    message = str(err.value)
    assert str(path) in message
    assert "rules.0.when.keyword: Extra inputs are not permitted" in message


def test_every_bad_field_is_named(tmp_path):
    path = write(tmp_path, """
vip_requesters: ceo@acme.example          # not a list
rules:
  - when: {vip_requester: maybe}
    then: {group: [A, B]}
  - when: {}
    then: {group: X}
  - when: {site: London}
    then: {}
escalation:
  High: []
colour: blue
""")
    with pytest.raises(RulesFileError) as err:
        load_rules(path)
    message = str(err.value)
    assert message.startswith(f"rules file {path} is invalid: ")
    for part in ("vip_requesters: Input should be a valid list", "rules.0.when.vip_requester: Input should be a "
                 "valid boolean", "rules.0.then.group: Input should be a valid string",
                 "rules.1.when: Value error, a rule needs at least one condition",
                 "rules.2.then: Value error, a rule must set at least one of category, priority, group",
                 "escalation: Value error, High: an escalation path has 1 to 8 steps",
                 "colour: Extra inputs are not permitted"):
        assert part in message


def test_unreadable_and_broken_yaml_name_the_file(tmp_path):
    with pytest.raises(RulesFileError, match="cannot read rules file .*missing.yaml"):
        load_rules(tmp_path / "missing.yaml")
    with pytest.raises(RulesFileError, match=f"cannot read rules file {tmp_path / 'bad.yaml'}"):
        load_rules(write(tmp_path, "rules: [\n", "bad.yaml"))


def test_an_empty_file_has_no_rules_and_one_name_may_stand_for_a_list(tmp_path):
    assert load_rules(write(tmp_path, "")).rules == []
    rules = parse_rules({"rules": [{"when": {"keywords": "VPN", "site": "London", "category": "Network"},
                                    "then": {"group": "Network Team"}}]})
    when = rules.rules[0].when
    assert (when.keywords, when.site, when.category) == (["VPN"], ["London"], ["Network"])


@pytest.mark.parametrize("keyword", ["", "   ", "*", "VP*N", "VPN**", "VPN *"])
def test_bad_keywords_are_refused(keyword):
    with pytest.raises(RulesFileError, match="rules.0.when.keywords"):
        parse_rules({"rules": [{"when": {"keywords": [keyword]}, "then": {"group": "G"}}]})


def test_a_priority_given_twice_in_escalation_is_refused():
    with pytest.raises(RulesFileError, match="priority 'high' given twice"):
        parse_rules({"escalation": {"High": ["Tier 2"], "high": ["Tier 3"]}})


def test_the_example_file_validates_and_the_tenants_file_names_it(tmp_path):
    rules = load_rules(EXAMPLE)
    assert rules.rules and rules.escalation and rules.vip_requesters
    tenants = write(tmp_path, f"""
tenants:
  - tenant_id: acme
    sdp: {{base_url: "http://sdp"}}
    kb: {{base_url: "http://kb"}}
    triage: {{rules_file: {EXAMPLE}}}
""", "tenants.yaml")
    tenant, = load_tenants_file(tenants)
    assert tenant.triage.rules_file == EXAMPLE


def test_the_single_tenant_environment_names_the_rules_file_and_the_policy_carries_it(monkeypatch):
    from enhancement_pipeline.enhancement.policy import TenantNotePolicy
    from enhancement_pipeline.settings import Settings
    from enhancement_pipeline.tenants import tenant_from_settings

    monkeypatch.setenv("TRIAGE_RULES_FILE", str(EXAMPLE))
    tenant = tenant_from_settings(Settings())
    assert tenant.triage.rules_file == EXAMPLE
    assert TenantNotePolicy.for_tenant(tenant).triage_rules_file == str(EXAMPLE)
    monkeypatch.delenv("TRIAGE_RULES_FILE")
    assert TenantNotePolicy.for_tenant(tenant_from_settings(Settings())).triage_rules_file is None


# -- matching ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("keyword", "text", "found"), [
    ("VPN", "The vpn drops every hour", True),
    ("VPN", "(VPN) down", True),
    ("VPN", "VPN-client crashes", True),
    ("VPN", "Both VPNs are down", False),      # whole words: plurals are listed, or written VPN*
    ("VPN", "OpenVPN is down", False),
    ("VPN*", "Both VPNs are down", True),
    ("VPN*", "OpenVPN is down", False),
    ("password reset", "Need a PASSWORD\n  reset please", True),
    ("password reset", "passwords reset", False),
    ("C++", "The C++ runtime is missing", True),
    ("AD", "bad address", False),
])
def test_keywords_match_whole_words_case_insensitively(keyword, text, found):
    assert keyword_found(keyword, text) is found


def test_the_first_matching_rule_wins_per_field():
    rules = parse_rules({"rules": [
        {"when": {"keywords": ["printer"]}, "then": {"group": "Field Services"}},
        {"name": "printers", "when": {"keywords": ["printer", "toner"]}, "then": {"group": "Network Team",
                                                                                 "priority": "Low"}},
        {"when": {"keywords": ["toner"]}, "then": {"priority": "High"}}]})
    routed = apply_rules(rules, ticket("Printer out of toner"), learned(), None)
    got = routed.suggestions
    assert (got["group"].label, got["group"].reason) == ("Field Services", "rule 1: keyword 'printer'")
    # The second rule sets no group (the first did) but is the first to set a priority.
    assert (got["priority"].label, got["priority"].reason) == ("Low", "rule 'printers': keyword 'printer'")
    assert got["group"].source == got["priority"].source == "rules" and got["group"].confidence == 1.0
    assert list(got) == ["category", "subcategory", "item", "priority", "group"]


def test_every_condition_must_hold():
    rules = parse_rules({"rules": [{"when": {"keywords": "printer", "site": ["Paris", "London"]},
                                    "then": {"group": "Field Services"}}]})
    assert apply_rules(rules, ticket("Printer jams"), learned(), TAXONOMY).suggestions["group"].label is None
    routed = apply_rules(rules, ticket("Printer jams", site="london"), learned(), TAXONOMY)
    assert routed.suggestions["group"].label == "Field Services"
    assert routed.suggestions["group"].reason == "rule 1: keyword 'printer', site london"


def test_vip_by_email_name_or_id_ignoring_case():
    rules = parse_rules({"vip_requesters": ["CEO@Acme.example", "Jane  Doe", "4711"], "rules": [
        {"name": "VIP requesters", "when": {"vip_requester": True}, "then": {"priority": "Urgent",
                                                                             "group": "VIP Desk"}},
        {"when": {"vip_requester": False, "keywords": "printer"}, "then": {"priority": "Low"}}]})
    for who in ({"requester": "Chief", "requester_email": "ceo@ACME.example"}, {"requester": "jane doe"},
                {"requester": "Someone", "requester_id": "4711"}):
        got = apply_rules(rules, ticket(**who), learned(), TAXONOMY).suggestions
        assert (got["priority"].label, got["group"].label) == ("Urgent", "VIP Desk"), who
        assert got["priority"].reason == "rule 'VIP requesters': VIP requester"
    got = apply_rules(rules, ticket(requester="Bob", requester_email="bob@acme.example"), learned(),
                      TAXONOMY).suggestions
    assert (got["priority"].label, got["priority"].reason) == ("Low", "rule 2: keyword 'printer', not a VIP "
                                                                      "requester")
    assert got["group"].label is None


def test_the_requester_email_comes_from_sdp():
    request = parse_request({"id": "7", "subject": "x", "requester": {"id": "5", "name": "Chief",
                                                                       "email_id": " ceo@acme.example "}})
    assert to_ticket("acme", request).requester_email == "ceo@acme.example"
    odd = parse_request({"id": "8", "subject": "x", "requester": {"id": "5", "name": "C", "email_id": {"x": 1}}})
    assert to_ticket("acme", odd).requester_email is None
    assert to_ticket("acme", parse_request({"id": "9", "subject": "x", "requester": "Chief"})).requester_email is None


def test_a_rule_beats_a_confident_learned_suggestion():
    rules = parse_rules({"rules": [{"when": {"keywords": "VPN"}, "then": {"group": "network team"}}]})
    before = learned(group=("VIP Desk", 0.97), priority=("High", 0.9))
    routed = apply_rules(rules, ticket("VPN down"), before, TAXONOMY)
    group = routed.suggestions["group"]
    assert (group.label, group.confidence, group.source) == ("Network Team", 1.0, "rules")  # SDP's spelling
    assert routed.suggestions["priority"] == before["priority"]  # no rule for it: the vote stands
    assert routed.applied == {"group": "rule 1: keyword 'VPN'"}
    assert before["group"].label == "VIP Desk"  # the input is not changed


def test_a_rule_naming_what_sdp_does_not_know_is_skipped_with_its_reason():
    rules = parse_rules({"rules": [
        {"name": "typo", "when": {"keywords": "VPN"}, "then": {"group": "Netwrok Team", "priority": "P1"}},
        {"when": {"keywords": "VPN"}, "then": {"group": "Field Services"}},   # on two sites, ticket on Berlin
        {"when": {"keywords": "VPN"}, "then": {"group": "Network Team"}}]})
    routed = apply_rules(rules, ticket("VPN down", site="Berlin"), learned(group=("VIP Desk", 0.9)), TAXONOMY)
    assert routed.suggestions["group"].label == "Network Team"  # the next matching rule SDP knows
    assert routed.suggestions["group"].reason == "rule 3: keyword 'VPN'"
    assert routed.suggestions["priority"].label is None
    assert routed.skipped == [
        "rule 'typo': priority 'P1' is not in the tenant's SDP; not applied",
        "rule 'typo': support group 'Netwrok Team' is not in the tenant's SDP; not applied",
        "rule 2: support group 'Field Services' is not on site 'Berlin'; not applied"]
    # Without a site, a group name held on two sites is ambiguous: skipped too.
    only = parse_rules({"rules": [{"when": {"keywords": "VPN"}, "then": {"group": "Field Services"}}]})
    routed = apply_rules(only, ticket("VPN down"), learned(group=("VIP Desk", 0.9)), TAXONOMY)
    assert routed.suggestions["group"].label == "VIP Desk"
    assert "exists on several sites" in routed.skipped[0]
    # SDP did not tell its groups (some cloud tenants): no group can be checked, none is set.
    blind = TAXONOMY.model_copy(update={"support_groups": None})
    routed = apply_rules(only, ticket("VPN down"), learned(), blind)
    assert routed.suggestions["group"].label is None
    assert routed.skipped == ["rule 1: SDP did not tell its support groups, so support group 'Field Services' "
                              "cannot be checked; not applied"]


def test_without_a_stored_taxonomy_rules_apply_as_written():
    rules = parse_rules({"rules": [{"when": {"keywords": "VPN"}, "then": {"group": "Anything"}}]})
    assert apply_rules(rules, ticket("VPN"), learned(), None).suggestions["group"].label == "Anything"


def test_routing_on_category_sees_the_category_a_rule_set_and_drops_the_other_categorys_children():
    rules = parse_rules({"rules": [
        {"when": {"category": "Security"}, "then": {"group": "VIP Desk"}},   # listed first, decided after
        {"when": {"keywords": "phishing"}, "then": {"category": "security"}}]})
    before = learned(category=("Hardware", 0.9), subcategory=("Printer", 0.8), group=("Network Team", 0.9))
    routed = apply_rules(rules, ticket("Phishing mail"), before, TAXONOMY)
    got = routed.suggestions
    assert (got["category"].label, got["group"].label) == ("Security", "VIP Desk")
    assert got["group"].reason == "rule 1: category Security"
    assert (got["subcategory"].label, got["subcategory"].reason) == (None, "category set by rule 2")
    # A person's category counts before any suggestion.
    routed = apply_rules(rules, ticket("Printer jams", category="Security"), before, TAXONOMY)
    assert routed.suggestions["group"].reason == "rule 1: category Security"
    # The learned category counts when nothing else does; its children stay when a rule agrees with it.
    agree = parse_rules({"rules": [{"when": {"category": "hardware"}, "then": {"category": "Hardware"}}]})
    got = apply_rules(agree, ticket(), before, TAXONOMY).suggestions
    assert got["category"].source == "rules" and got["subcategory"].label == "Printer"


def test_no_rules_change_nothing():
    before = learned(group=("VIP Desk", 0.9))
    assert apply_rules(None, ticket(), before, TAXONOMY).suggestions == before
    assert apply_rules(parse_rules(None), ticket(), before, TAXONOMY).suggestions == before


def test_escalation_lookup_ignores_case():
    rules = parse_rules({"escalation": {"Urgent": ["Tier 2", "call  the on-call engineer"], "Low": ["Tier 1"]}})
    assert escalation_for(rules, "urgent") == ["Tier 2", "call the on-call engineer"]
    assert escalation_for(rules, "High") == []
    assert escalation_for(rules, None) == escalation_for(None, "Urgent") == []


def test_the_file_is_read_again_only_when_it_changes(tmp_path, monkeypatch):
    path = write(tmp_path, "escalation: {High: [Tier 2]}\n")
    first = load_rules_cached(path)
    reads = []
    monkeypatch.setattr(rules_mod, "load_rules", lambda p: reads.append(p) or rules_mod.parse_rules({}))
    assert load_rules_cached(path) is first and reads == []
    path.write_text("escalation: {High: [Tier 3]}\n")
    os.utime(path, ns=(1, 1))  # a new version of the file, whatever the clock's resolution
    load_rules_cached(path)
    assert reads == [path]


# -- the note line ----------------------------------------------------------------------------------------


def test_the_line_gives_a_rules_reason_and_the_escalation_path():
    triage = TriageSuggestions(fields=[
        FieldSuggestion(field="category", label="Network", confidence=0.91, reason="4 of 5 similar resolved "
                        "tickets", source="history"),
        FieldSuggestion(field="priority", label="Urgent", confidence=1.0, reason="rule 'VIP requesters': VIP "
                        "requester", source="rules"),
        FieldSuggestion(field="group", label="Network Team", confidence=1.0, reason="rule 3: keyword 'VPN'",
                        source="rules")], escalation=["Tier 2", "call the on-call engineer"],
        escalation_priority="Urgent")
    assert suggestion_line(triage) == (
        "**Suggested triage:** Category Network (91%: 4 of 5 similar resolved tickets) · Priority Urgent (rule "
        "'VIP requesters': VIP requester) · Group Network Team (rule 3: keyword 'VPN') · Escalation (Urgent): "
        "Tier 2 → call the on-call engineer")


# -- the op -----------------------------------------------------------------------------------------------


def run_op(db, resources, rules_file: Path | None, t: Ticket):
    """``suggest_triage`` on the real Postgres (the tenant's taxonomy stored as the asset stores it), with the
    tenant's rules file."""
    from enhancement_pipeline.enhancement.policy import TenantNotePolicy
    from enhancement_pipeline.triage import ops
    from enhancement_pipeline.triage.taxonomy_store import save_taxonomy
    from enhancement_pipeline_tests.conftest import replace_resource

    save_taxonomy(db, "acme", TAXONOMY)
    notes = replace_resource(resources["notes"], policies=[TenantNotePolicy(
        tenant_id="acme", triage_rules_file=str(rules_file) if rules_file else None)])
    similar = SimilarTicketsContext(neighbours=[
        Neighbour(str(i), 0.95, {"category": "Hardware", "priority": "Low", "group": "Network Team"})
        for i in range(5)])
    context = dg.build_op_context()
    output = ops.suggest_triage(context, ticket=t, similar=similar, postgres=resources["postgres"], notes=notes)
    return output, context.get_output_metadata("result")


def test_the_op_applies_the_tenants_rules_and_shows_the_escalation(tmp_path, db, resources):
    path = write(tmp_path, """
vip_requesters: [ceo@acme.example]
rules:
  - {name: VIP, when: {vip_requester: true}, then: {priority: Urgent, group: VIP Desk}}
  - {when: {keywords: VPN}, then: {group: Nowhere}}
escalation: {Urgent: [Tier 2, call the on-call engineer]}
""")
    triage, metadata = run_op(db, resources, path, ticket("VPN down", requester_email="CEO@acme.example"))
    assert (triage.get("priority").label, triage.get("priority").source) == ("Urgent", "rules")
    assert triage.get("group").label == "VIP Desk"
    assert triage.get("category").source == "history"
    assert (triage.escalation, triage.escalation_priority) == (["Tier 2", "call the on-call engineer"], "Urgent")
    assert "Escalation (Urgent): Tier 2 → call the on-call engineer" in suggestion_line(triage)
    assert metadata["rules_applied"] == "priority: rule 'VIP': VIP requester; group: rule 'VIP': VIP requester"
    assert metadata["rules_skipped"] == "none"  # the VIP rule set the group first: rule 2 was not needed

    triage, metadata = run_op(db, resources, path, ticket("VPN down", requester="Bob"))
    assert (triage.get("group").label, triage.get("group").source) == ("Network Team", "history")
    assert metadata["rules_skipped"] == "rule 2: support group 'Nowhere' is not in the tenant's SDP; not applied"
    assert (triage.escalation, metadata["escalation"]) == ([], "none")  # no path for the learned "Low"


def test_a_bad_rules_file_leaves_the_learned_suggestions_and_says_why(tmp_path, db, resources):
    path = write(tmp_path, "rules:\n  - when: {keywords: VPN}\n    then: {team: Network}\n")
    triage, metadata = run_op(db, resources, path, ticket("VPN down"))
    assert triage.error is None
    assert (triage.get("group").label, triage.get("group").source) == ("Network Team", "history")
    assert triage.escalation == []
    assert str(path) in metadata["rules_error"] and "rules.0.then.team" in metadata["rules_error"]
    _, metadata = run_op(db, resources, None, ticket("VPN down"))
    assert metadata["rules"] == "none"
