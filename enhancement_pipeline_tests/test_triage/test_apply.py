"""Apply mode (issue 14, items 7 and 9): confident suggestions written into empty fields of the request through
``PUT /requests/{id}``, never over a value already there, and SDP's refusals survived field by field.

The SDP simulator validates the PUT as docs/sdp-api-taxonomy.md section 5 describes (unknown, deleted or
misplaced entries 4001, a locked priority 4002, a mandatory subcategory 4012, all refused as a whole), driven
through the real client."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from enhancement_pipeline.enhancement.policy import TenantNotePolicy
from enhancement_pipeline.models import Ticket
from enhancement_pipeline.servicedesk.client import SdpAuthError, SdpRequestError, ServiceDeskClient
from enhancement_pipeline.triage import apply, ops
from enhancement_pipeline.triage.assets import build_sdp_taxonomy
from enhancement_pipeline.triage.suggestions import FieldSuggestion, TriageSuggestions, suggestion_line
from enhancement_pipeline.triage.taxonomy import (
    Category,
    Item,
    Priority,
    Ref,
    Subcategory,
    SupportGroup,
    Taxonomy,
)
from enhancement_pipeline_tests.conftest import SDP_KEY, TENANT, replace_resource

TAXONOMY = Taxonomy(
    fetched_at=datetime(2026, 12, 1, tzinfo=UTC),
    categories=[Category(id="1", name="Hardware", subcategories=[
        Subcategory(id="11", name="Printer", items=[Item(id="111", name="Laser printer")])]),
        Category(id="2", name="Network", subcategories=[Subcategory(id="21", name="Connectivity"),
                                                        Subcategory(id="22", name="Printer")])],
    priorities=[Priority(id="5", name="High"), Priority(id="6", name="Low")],
    support_groups=[SupportGroup(id="81", name="Network", site=Ref(id="71", name="Leeds")),
                    SupportGroup(id="82", name="Network", site=Ref(id="72", name="Boston")),
                    SupportGroup(id="83", name="Desktop Support", site=Ref(id="72", name="Boston"))])


def suggestions(**labels: tuple[str, float] | tuple[str, float, str]) -> TriageSuggestions:
    fields = []
    for name in ("category", "subcategory", "item", "priority", "group"):
        label, confidence, *source = labels.get(name, (None, 0.0))
        fields.append(FieldSuggestion(field=name, label=label, confidence=confidence, reason="4 of 5 similar",
                                      source=(source or ["history" if label else "none"])[0]))
    return TriageSuggestions(fields=fields, min_confidence=0.6, mode="apply")


def request(**fields) -> Ticket:
    return Ticket(tenant_id=TENANT, ticket_id="9", subject="Printer jams", **fields)


CONFIDENT = {"category": ("Hardware", 0.93), "subcategory": ("Printer", 0.9), "item": ("Laser printer", 0.85),
             "priority": ("High", 0.88), "group": ("Desktop Support", 0.9)}


# -- the plan (pure) ------------------------------------------------------------------------------------------


def test_empty_fields_get_the_confident_suggestions_by_id():
    plan = apply.plan_writes(request(site="Boston"), suggestions(**CONFIDENT), TAXONOMY)
    assert plan.body() == {"category": {"id": "1", "name": "Hardware"}, "subcategory": {"id": "11", "name": "Printer"},
                           "item": {"id": "111", "name": "Laser printer"}, "priority": {"id": "5", "name": "High"},
                           "group": {"id": "83", "name": "Desktop Support"}}
    assert plan.skipped == {}


def test_a_value_already_set_is_never_overwritten_even_with_the_same_name():
    plan = apply.plan_writes(request(category="Network", priority="high", site="Boston"), suggestions(**CONFIDENT),
                             TAXONOMY)
    assert plan.fields == ["group"]
    assert plan.skipped["category"] == "already set to Network: never overwritten"
    assert plan.skipped["priority"] == "already set to high (the suggestion): never overwritten"
    # The subcategory was voted under Hardware: Network's "Printer" (it has one too) is another thing.
    assert plan.skipped["subcategory"] == "suggested under category Hardware, but the request's category is Network"
    assert plan.skipped["item"] == "no subcategory on the request to put it under"


def test_a_subcategory_goes_under_a_category_already_there():
    plan = apply.plan_writes(request(category="Hardware"), suggestions(**CONFIDENT), TAXONOMY)
    assert plan.fields == ["subcategory", "item", "priority", "group"]  # one group of that name: no site needed


def test_below_the_apply_threshold_a_suggestion_stays_in_the_note_only():
    labels = {**CONFIDENT, "priority": ("High", 0.7), "group": ("Desktop Support", 1.0, "rules")}
    plan = apply.plan_writes(request(site="Boston"), suggestions(**labels), TAXONOMY, min_confidence=0.8)
    assert "priority" not in plan.fields and plan.skipped["priority"].startswith("confidence 70% below")
    assert next(w for w in plan.writes if w.field == "group").source == "rules"


def test_a_group_name_on_two_sites_is_written_only_for_a_request_on_one_of_them():
    labels = {"group": ("Network", 0.95)}
    assert apply.plan_writes(request(site="Leeds"), suggestions(**labels), TAXONOMY).body() == {
        "group": {"id": "81", "name": "Network"}}
    plan = apply.plan_writes(request(), suggestions(**labels), TAXONOMY)
    assert plan.writes == [] and plan.skipped["group"].startswith("ambiguous: ")
    plan = apply.plan_writes(request(site="Dublin"), suggestions(**labels), TAXONOMY)
    assert plan.skipped["group"] == "no group Network on the request's site Dublin"


def test_without_a_taxonomy_or_after_a_triage_error_nothing_is_written():
    plan = apply.plan_writes(request(), suggestions(**CONFIDENT), None)
    assert plan.writes == [] and set(plan.skipped) == set(CONFIDENT)
    failed = suggestions(**CONFIDENT).model_copy(update={"error": "taxonomy unavailable"})
    assert apply.plan_writes(request(), failed, TAXONOMY) == apply.WritePlan()


def test_a_refused_category_takes_its_subcategory_and_item_along():
    plan = apply.plan_writes(request(site="Boston"), suggestions(**CONFIDENT), TAXONOMY)
    rest = plan.without("category", "SDP refused it: 4001")
    assert rest.fields == ["priority", "group"]
    assert rest.skipped["item"] == "SDP refused it: 4001 (on category, which it is under)"


def test_the_note_says_which_fields_the_run_set():
    triage = suggestions(**CONFIDENT)
    triage.fields[0].applied = True
    triage.fields[4].applied = True
    line = suggestion_line(triage)
    assert "Category Hardware (93%: 4 of 5 similar; set in SDP) › Printer (90%) › Laser printer (85%)" in line
    assert "Group Desktop Support (90%: 4 of 5 similar; set in SDP)" in line
    assert "Priority High (88%: 4 of 5 similar)" in line


# -- the simulator's PUT, as SDP validates it ---------------------------------------------------------------


@pytest.fixture
def client(db, sdp_server):
    with ServiceDeskClient(sdp_server.url, SDP_KEY, backoff_base_s=0.01) as c:
        yield c


def test_sdp_resolves_names_and_ids_and_stores_the_embedded_objects(client, sdp_state):
    rid = sdp_state.add_request(subject="Printer jams", site="Boston")["id"]
    tax = sdp_state.taxonomy
    hardware = tax.find("categories", "Hardware")
    answer = client.update_request(rid, {"category": {"id": hardware["id"]}, "subcategory": {"name": "printer"},
                                         "priority": {"name": "High"}, "group": {"name": "Network"}})
    assert answer["category"] == {"id": hardware["id"], "name": "Hardware"}
    assert answer["subcategory"]["name"] == "Printer"
    assert answer["priority"]["color"]  # as SDP embeds a priority
    assert answer["group"]["site"]["name"] == "Boston"  # "Network" is on two sites: the request's one
    assert client.get_request(rid)["group"] == answer["group"]


@pytest.mark.parametrize("changes, field, code", [
    ({"category": {"name": "Plumbing"}}, "category", 4001),
    ({"category": {"name": "Telephony (retired)"}}, "category", 4001),  # deleted
    ({"category": {"name": "Network"}, "subcategory": {"name": "Printer"}}, "subcategory", 4001),  # not under it
    ({"subcategory": {"name": "Printer"}}, "subcategory", 4001),  # no category on the request
    ({"group": {"name": "Network"}}, "group", 4001),  # two sites, and the request has none
    ({"category": "Hardware"}, "category", 4021),  # a string where SDP wants an object
])
def test_sdp_refuses_a_bad_value_as_a_whole(client, sdp_state, changes, field, code):
    rid = sdp_state.add_request(subject="Printer jams", priority="Low")["id"]
    before = client.get_request(rid)
    with pytest.raises(SdpRequestError) as refused:
        client.update_request(rid, {**changes, "priority": {"name": "High"}})
    assert (refused.value.http_status, refused.value.sdp_code) == (400, code)
    assert refused.value.messages[0]["field"] == field
    assert client.get_request(rid) == before  # nothing changed, not even the valid priority


def test_a_locked_priority_and_a_mandatory_subcategory_are_refused(client, sdp_state):
    rid = sdp_state.add_request(subject="Printer jams", category="Network", subcategory="Connectivity")["id"]
    sdp_state.taxonomy.priority_locked = True
    with pytest.raises(SdpAuthError) as locked:
        client.update_request(rid, {"priority": {"name": "High"}})
    assert (locked.value.http_status, locked.value.sdp_code, locked.value.messages[0]["field"]) == (
        403, 4002, "priority")
    # A new category drops the old subcategory, or is refused where the template wants one.
    assert client.update_request(rid, {"category": {"name": "Hardware"}})["subcategory"] is None
    sdp_state.taxonomy.subcategory_mandatory = True
    with pytest.raises(SdpRequestError) as mandatory:
        client.update_request(rid, {"category": {"name": "Email"}})
    assert (mandatory.value.sdp_code, mandatory.value.messages[0]["field"]) == (4012, "subcategory")


# -- the op against SDP ---------------------------------------------------------------------------------------


def _apply_op(resources, triage: TriageSuggestions, ticket: Ticket, *, min_confidence: float = 0.8,
              shadow: bool = False):
    notes = replace_resource(resources["notes"], policies=[TenantNotePolicy(
        tenant_id=TENANT, triage_mode="apply", triage_apply_min_confidence=min_confidence, shadow_mode=shadow)])
    context = dg.build_op_context()
    out = ops.apply_triage(context, ticket=ticket, triage=triage, sdp=resources["sdp"],
                           postgres=resources["postgres"], notes=notes)
    return out, context.get_output_metadata("result")


@pytest.fixture
def stored_taxonomy(db, resources, tenant):
    """The simulator's taxonomy read and stored by the ``<tenant>/sdp_taxonomy`` asset, as a deployment has it."""
    assert dg.materialize([build_sdp_taxonomy(tenant)], resources=resources).success


def _ticket(sdp_state, **fields) -> Ticket:
    record = sdp_state.add_request(subject="Printer jams on floor 2", **fields)
    return Ticket(tenant_id=TENANT, ticket_id=record["id"], subject=record["subject"], site=fields.get("site"))


def test_the_op_writes_empty_fields_and_records_every_write(stored_taxonomy, sdp_state, resources):
    t = _ticket(sdp_state, site="Boston")
    out, meta = _apply_op(resources, suggestions(**CONFIDENT), t)
    stored = sdp_state.requests[t.ticket_id]
    assert [stored[f]["name"] for f in ("category", "subcategory", "item", "priority", "group")] == [
        "Hardware", "Printer", "Laser printer", "High", "Desktop Support"]
    assert [f.field for f in out.fields if f.applied] == ["category", "subcategory", "item", "priority", "group"]
    assert meta["fields_set"] == 5 and meta["puts"] == 1 and meta["not_written"] == "none"
    assert meta["writes"].startswith("category Hardware (id ")

    # A retried run (or a second one) reads them as set and writes nothing more.
    puts = sdp_state.calls["PUT /requests/{id}"]
    again, meta = _apply_op(resources, suggestions(**CONFIDENT), t)
    assert sdp_state.calls["PUT /requests/{id}"] == puts and meta["fields_set"] == 0
    assert "category: already set to Hardware (the suggestion)" in meta["not_written"]
    assert not any(f.applied for f in again.fields)


def test_a_value_a_technician_set_after_the_ticket_was_loaded_is_kept(stored_taxonomy, sdp_state, resources):
    t = _ticket(sdp_state, site="Boston")  # loaded by the run with no category ...
    sdp_state.update_request(t.ticket_id, {"category": {"name": "Network"}})  # ... then a technician sets one
    out, meta = _apply_op(resources, suggestions(**CONFIDENT), t)
    stored = sdp_state.requests[t.ticket_id]
    assert stored["category"]["name"] == "Network" and stored["subcategory"] is None
    assert (stored["priority"]["name"], stored["group"]["name"]) == ("High", "Desktop Support")
    assert "category: already set to Network" in meta["not_written"]


def test_sdp_refusing_the_priority_costs_only_the_priority(stored_taxonomy, sdp_state, resources):
    sdp_state.taxonomy.priority_locked = True
    t = _ticket(sdp_state, site="Boston")
    out, meta = _apply_op(resources, suggestions(**CONFIDENT), t)
    stored = sdp_state.requests[t.ticket_id]
    assert stored["priority"] is None and stored["category"]["name"] == "Hardware"
    assert meta["puts"] == 2 and meta["fields_set"] == 4
    assert "priority: SDP refused it: HTTP 403, SDP 4002: Cannot give value for priority" in meta["not_written"]
    assert not out.get("priority").applied and out.get("group").applied


def test_a_mandatory_subcategory_refusal_costs_the_category_only(stored_taxonomy, sdp_state, resources):
    sdp_state.taxonomy.subcategory_mandatory = True  # SDP answers 4012 on "subcategory" for a bare category
    t = _ticket(sdp_state, site="Boston")
    labels = {k: v for k, v in CONFIDENT.items() if k not in ("subcategory", "item")}
    out, meta = _apply_op(resources, suggestions(**labels), t)
    stored = sdp_state.requests[t.ticket_id]
    assert stored["category"] is None
    assert (stored["priority"]["name"], stored["group"]["name"]) == ("High", "Desktop Support")
    assert meta["puts"] == 2 and "category: SDP refused it: HTTP 400, SDP 4012" in meta["not_written"]


def test_a_group_deleted_since_the_taxonomy_was_read_is_refused_and_the_rest_written(
        stored_taxonomy, sdp_state, resources):
    sdp_state.taxonomy.set_deleted("support_groups", "Desktop Support")  # after the daily read
    t = _ticket(sdp_state, site="Boston")
    out, meta = _apply_op(resources, suggestions(**CONFIDENT), t)
    assert sdp_state.requests[t.ticket_id]["group"] is None
    assert meta["fields_set"] == 4 and "group: SDP refused it: HTTP 400, SDP 4001" in meta["not_written"]


def test_a_deleted_request_or_a_down_sdp_never_fails_the_step(stored_taxonomy, sdp_state, resources):
    from enhancement_pipeline.local.sdp_simulator import Fault

    t = _ticket(sdp_state, site="Boston")
    sdp_state.delete_request(t.ticket_id)
    out, meta = _apply_op(resources, suggestions(**CONFIDENT), t)
    assert meta["fields_set"] == 0 and "SdpNotFound" in meta["error"]
    assert out.fields == suggestions(**CONFIDENT).fields  # the note still carries the suggestions

    t = _ticket(sdp_state, site="Boston")
    sdp_state.faults.append(Fault(match=r"^PUT /api/v3/requests/", status=503, sdp_code=None, times=10))
    out, meta = _apply_op(resources, suggestions(**CONFIDENT), t)
    assert meta["fields_set"] == 0 and meta["error"].startswith("outcome unknown")
    assert sdp_state.requests[t.ticket_id]["category"] is None


def test_shadow_mode_and_suggest_mode_write_nothing(stored_taxonomy, sdp_state, resources):
    t = _ticket(sdp_state, site="Boston")
    _, meta = _apply_op(resources, suggestions(**CONFIDENT), t, shadow=True)
    assert meta["would_write"].startswith("category Hardware") and sdp_state.calls["PUT /requests/{id}"] == 0
    context = dg.build_op_context()
    out = ops.apply_triage(context, ticket=t, triage=suggestions(**CONFIDENT), sdp=resources["sdp"],
                           postgres=resources["postgres"], notes=resources["notes"])  # the default: suggest
    assert context.get_output_metadata("result")["writes"] == "none (suggest mode)"
    assert sdp_state.requests[t.ticket_id]["category"] is None and not any(f.applied for f in out.fields)
