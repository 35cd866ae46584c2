"""The tenant's own taxonomy (issue 14, item 1): the pure helpers, reading it from the SDP simulator over HTTP
through the real client (on-prem, and cloud with /statuses 404, /technicians 401, nested subcategories and the
items criterion refused), and the ``<tenant>/sdp_taxonomy`` asset storing and replacing it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest

from enhancement_pipeline.local import sdp_simulator
from enhancement_pipeline.local.datasets import demo_split
from enhancement_pipeline.local.http_server import BackgroundServer, serve_in_thread
from enhancement_pipeline.servicedesk.client import SdpAuthError, SdpNotFound, ServiceDeskClient
from enhancement_pipeline.triage.assets import LABELS_CHECK, build_sdp_taxonomy
from enhancement_pipeline.triage.taxonomy import (
    AmbiguousGroupError,
    Category,
    Entry,
    Item,
    Priority,
    Ref,
    Subcategory,
    SupportGroup,
    Taxonomy,
    UnknownFieldError,
)
from enhancement_pipeline.triage.taxonomy_reader import read_taxonomy
from enhancement_pipeline.triage.taxonomy_store import load_taxonomy, save_taxonomy
from enhancement_pipeline_tests.conftest import SDP_KEY, TENANT

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _small() -> Taxonomy:
    leeds, boston = Ref(id="71", name="Leeds"), Ref(id="72", name="Boston")
    return Taxonomy(
        fetched_at=NOW,
        categories=[
            Category(id="1", name="Email", subcategories=[
                Subcategory(id="11", name="Outlook", items=[Item(id="111", name="Password prompt")]),
                Subcategory(id="12", name="Other")]),
            Category(id="2", name="Network", subcategories=[
                Subcategory(id="21", name="Other", items=[Item(id="211", name="Cabling")])])],
        priorities=[Priority(id="5", name="High", color="#ff0000"), Priority(id="6", name="Low")],
        urgencies=[Entry(id="31", name="Urgent")], impacts=[Entry(id="41", name="Affects User")],
        sites=[Entry(id="71", name="Leeds"), Entry(id="72", name="Boston")],
        support_groups=[SupportGroup(id="81", name="Network", site=leeds, technicians=[Ref(id="9", name="Kwame")]),
                        SupportGroup(id="82", name="Network", site=boston, technicians=None),
                        SupportGroup(id="83", name="Messaging", site=leeds)],
        statuses=None, technicians=None, unknown={"statuses": "HTTP 404"})


def test_the_helpers_answer_from_the_allowed_set_only():
    tax = _small()
    assert tax.allowed("category") == ("Email", "Network")
    assert tax.allowed("subcategory") == ("Other", "Outlook")  # "Other" is under both categories, listed once
    assert tax.allowed("group") == ("Messaging", "Network")
    assert tax.allowed("status") == () and not tax.told("status") and tax.told("priority")
    assert tax.knows("priority", " high ") and tax.canonical("priority", "HIGH") == "High"
    assert not tax.knows("priority", "Critical") and not tax.knows("status", "Open") and not tax.knows("urgency", None)
    assert tax.subcategories_of("email") == ("Outlook", "Other") and tax.subcategories_of("Nope") == ()
    assert tax.items_of("Email", "Outlook") == ("Password prompt",)
    assert tax.items_of("Network", "Other") == ("Cabling",) and tax.items_of("Email", "Other") == ()
    assert tax.knows_path("Email", "Outlook", "Password prompt") and tax.knows_path("Network")
    assert not tax.knows_path("Email", "Other", "Cabling")  # Cabling is under Network/Other
    assert not tax.knows_path("Email", None, "Password prompt") and not tax.knows_path("Hardware")
    assert tax.counts() == {"category": 2, "subcategory": 3, "item": 2, "priority": 2, "group": 3, "urgency": 1,
                            "impact": 1, "level": 0, "site": 2, "status": None, "mode": None, "request_type": None,
                            "technician": None}
    with pytest.raises(UnknownFieldError):
        tax.allowed("colour")


def test_a_group_name_on_two_sites_resolves_only_with_the_site():
    tax = _small()
    with pytest.raises(AmbiguousGroupError) as raised:
        tax.resolve_group("network")
    assert {g.site.name for g in raised.value.candidates} == {"Leeds", "Boston"}
    assert tax.resolve_group("Network", site="Boston").id == "82"
    assert tax.resolve_group("Network", site="71").id == "81"  # a site id works as well as its name
    assert tax.resolve_group("Network", site="Dublin") is None  # no such group on that site
    assert tax.resolve_group("Messaging").id == "83" and tax.resolve_group("Messaging", site="Boston") is None
    assert tax.resolve_group("Ghosts") is None
    assert tax.resolve_group("Network", site="Leeds").technicians == [Ref(id="9", name="Kwame")]
    assert tax.resolve_group("Network", site="Boston").technicians is None  # unknown, not empty


def test_changes_since_lists_added_and_removed_names_by_path():
    before = _small()
    after = before.model_copy(update={
        "priorities": [Priority(id="5", name="High"), Priority(id="7", name="Urgent")],
        "categories": [before.categories[0]]})
    changes = after.changes_since(before)
    assert changes["priority"] == (["Urgent"], ["Low"])
    assert changes["category"] == ([], ["Network"])
    assert changes["subcategory"] == ([], ["Network/Other"]) and changes["item"] == ([], ["Network/Other/Cabling"])
    assert "group" not in changes


# -- reading from the simulator ----------------------------------------------------------------------------------

@pytest.fixture
def client(db, sdp_server: BackgroundServer) -> Iterator[ServiceDeskClient]:
    with ServiceDeskClient(sdp_server.url, SDP_KEY, backoff_base_s=0.01) as c:
        yield c


@pytest.fixture(scope="module")
def cloud_state() -> sdp_simulator.SdpState:
    return sdp_simulator.SdpState(api_key=SDP_KEY, edition="cloud")


@pytest.fixture(scope="module")
def cloud_server(cloud_state: sdp_simulator.SdpState) -> Iterator[BackgroundServer]:
    server = serve_in_thread(sdp_simulator.create_app(cloud_state), name="sdp-cloud-simulator")
    yield server
    server.stop()


def _tree(tax: Taxonomy) -> list:
    return [(c.name, [(s.name, [i.name for i in s.items]) for s in c.subcategories]) for c in tax.categories]


def test_reading_an_onprem_sdp_gives_the_whole_taxonomy_without_deleted_entries(client, sdp_state):
    tax = read_taxonomy(client, now=NOW)
    assert tax.fetched_at == NOW and tax.unknown == {} and tax.notes == []
    assert tax.subcategories_of("Email") == ("Outlook", "Mailbox", "Mail delivery")
    assert tax.items_of("Email", "Outlook") == ("Password prompt", "Profile", "Search")
    assert tax.allowed("priority") == ("High", "Low", "Medium", "Normal", "Urgent")
    assert tax.knows("status", "Resolved") and tax.knows("technician", "Priya Nair") and tax.knows("level", "Tier 2")
    assert tax.knows("urgency", "Urgent") and tax.knows("impact", "Affects Business")
    assert tax.priorities[0].color is not None
    # One deleted entry per table in SDP: none of them, nor anything under the deleted category, is allowed.
    for field, name in [("category", "Telephony (retired)"), ("subcategory", "PBX"), ("item", "Voicemail"),
                        ("subcategory", "Fax machine"), ("item", "Dot matrix printer"),
                        ("priority", "Critical (retired)"), ("urgency", "Immediate (retired)"),
                        ("impact", "Affects Site (retired)"), ("level", "Tier 0 (retired)"), ("mode", "Fax"),
                        ("request_type", "Problem (retired)"), ("status", "Awaiting Parts (retired)"),
                        ("site", "Dublin"), ("group", "Legacy Helpdesk"), ("technician", "Former Technician")]:
        assert not tax.knows(field, name), (field, name)
    # ... though SDP lists them when not told to leave them out.
    assert "Critical (retired)" in {r["name"] for r in client.list_entries("/priorities", exclude_deleted=False)}
    # Members come from each group's detail (the list rows do not carry them).
    assert [t.name for t in tax.resolve_group("Service Desk").technicians] == ["Priya Nair", "Tom Walsh"]
    calls = dict(sdp_state.calls)
    assert calls["GET /categories/{id}/subcategories"] == len(tax.categories)
    assert "GET /subcategories" not in calls  # the nested form worked
    assert calls["GET /items"] == tax.counts()["subcategory"]  # one filtered list per subcategory
    assert calls["GET /support_groups/{id}"] == len(tax.support_groups)


def test_every_label_the_demo_history_and_corpora_carry_is_known(client):
    tax = read_taxonomy(client)
    history, new = demo_split()
    categories = {t.category for t in history + new if t.category}
    assert len(categories) > 70 and {c for c in categories if not tax.knows("category", c)} == set()
    # The labels tests put on requests: category/subcategory/item paths, priorities, groups, sites.
    assert tax.knows_path("Email", "Outlook", "Password prompt") and tax.knows_path("Server", "Storage")
    assert tax.knows_path("Active Directory", "Account lockout") and tax.knows_path("Security", "MFA")
    assert tax.knows_path("Collaboration", "Microsoft Teams")
    assert all(tax.knows("priority", p) for p in ("Low", "Medium", "High", "Urgent"))
    assert tax.resolve_group("Messaging", site="Leeds") is not None


def test_a_request_embeds_the_taxonomy_entries_it_names(client, sdp_state):
    tax = read_taxonomy(client)
    record = sdp_state.add_request(subject="VPN down", category="Network", subcategory="Connectivity", item="VPN",
                                   priority="High", group="Network", site="Boston")
    boston_network = tax.resolve_group("Network", site="Boston")
    assert record["group"] == {"id": boston_network.id, "name": "Network", "site": {"id": boston_network.site.id,
                                                                                      "name": "Boston"},
                               "deleted": False}
    assert record["category"]["id"] == tax.category("Network").id
    assert record["item"]["id"] == tax.subcategory("Network", "Connectivity").items[0].id
    assert record["priority"] == {"id": next(p.id for p in tax.priorities if p.name == "High"), "name": "High",
                                  "color": "#ff6600"}
    assert record["status"]["id"] == next(s.id for s in tax.statuses if s.name == "Open")


def test_paths_sdp_is_not_known_to_have_answer_404(client):
    tax = read_taxonomy(client)
    sub = tax.subcategory("Email", "Outlook")
    with pytest.raises(SdpNotFound):
        client.list_entries(f"/subcategories/{sub.id}/items", "items")
    with pytest.raises(SdpNotFound):
        client.list_entries("/groups")
    with pytest.raises(SdpNotFound):
        client.get_entry("/categories/999999", "category")
    assert client.get_entry(f"/subcategories/{sub.id}", "subcategory")["category"]["name"] == "Email"


def test_lists_page_through_every_row_and_survive_transient_faults(client, sdp_state):
    rows = client.list_entries("/categories", row_count=7, sort_field="name")
    assert len(rows) == len(read_taxonomy(client).categories) > 90
    assert [r["name"].casefold() for r in rows] == sorted(r["name"].casefold() for r in rows)
    assert sdp_state.calls["GET /categories"] >= 14
    # The simulator's fault injection applies to the admin paths too; the client's read retries carry it through.
    sdp_state.faults.append(sdp_simulator.Fault(match=r"GET /api/v3/priorities$", status=503, sdp_code=None,
                                                times=2))
    sdp_state.faults.append(sdp_simulator.Fault(match=r"GET /api/v3/categories/\d+/subcategories", status=429,
                                                times=1, retry_after=0))
    assert read_taxonomy(client).allowed("priority") == ("High", "Low", "Medium", "Normal", "Urgent")
    assert sdp_state.faults == []


def test_an_sdp_that_refuses_the_deleted_criterion_is_asked_again_and_filtered(client, sdp_state):
    sdp_state.taxonomy.refused_criteria = {"priorities:deleted"}
    names = [r["name"] for r in client.list_entries("/priorities")]
    assert names == ["Low", "Normal", "Medium", "High", "Urgent"]


def test_reading_a_cloud_sdp_falls_back_and_records_what_it_does_not_tell(db, client, cloud_state, cloud_server):
    cloud_state.reset_taxonomy()
    cloud_state.calls.clear()
    tax_sim = cloud_state.taxonomy
    tax_sim.technicians_401 = True
    tax_sim.nested_subcategories = False  # an SDP with only the flat /subcategories
    tax_sim.refused_criteria = {"items:subcategory.id"}  # ... whose /items cannot filter by subcategory
    with ServiceDeskClient(f"{cloud_server.url}/app/itdesk", SDP_KEY, auth_scheme="zoho-oauthtoken",
                           backoff_base_s=0.01) as cloud:
        with pytest.raises(SdpAuthError):
            cloud.list_entries("/technicians")
        tax = read_taxonomy(cloud)
    assert tax.statuses is None and "404" in tax.unknown["statuses"] and not tax.told("status")
    assert tax.technicians is None and "401" in tax.unknown["technicians"]
    assert any(n.startswith("subcategories:") for n in tax.notes) and any(n.startswith("items:") for n in tax.notes)
    assert cloud_state.calls["GET /subcategories"] == len(tax.categories)
    # The filtered list refused (asked again without the deleted criterion, refused again), then every item once.
    assert cloud_state.calls["GET /items"] == 3
    # The same taxonomy as the on-prem read, with cloud ids (the shared default suffixes kept).
    onprem = read_taxonomy(client)
    assert _tree(tax) == _tree(onprem)
    assert tax.allowed("group") == onprem.allowed("group") and tax.allowed("priority") == onprem.allowed("priority")
    assert all(len(c.id) == 18 for c in tax.categories)
    assert next(p.id for p in tax.priorities if p.name == "High").endswith("6805")
    with pytest.raises(AmbiguousGroupError):
        tax.resolve_group("Network")
    assert [t.name for t in tax.resolve_group("Network", site="Boston").technicians] == ["Sofia Alvarez"]


# -- the asset -------------------------------------------------------------------------------------------------

def _materialize(tenant, resources, **kw):
    return dg.materialize([build_sdp_taxonomy(tenant)], resources=resources, **kw)


def _metadata(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(f"{TENANT}__sdp_taxonomy")[0]
            .metadata.items()}


def test_materializing_stores_the_taxonomy_and_the_next_run_replaces_it(db, sdp_state, resources, tenant):
    first = _materialize(tenant, resources)
    assert first.success
    meta = _metadata(first)
    stored = load_taxonomy(db, TENANT)
    assert stored is not None and stored.counts()["category"] == meta["categories"] > 90
    assert (meta["support_groups"], meta["technicians"], meta["statuses"]) == (6, 5, 5)
    assert meta["group_names_on_several_sites"] == "Network" and meta["changes"] == "first taxonomy stored"
    check = first.get_asset_check_evaluations()[0]
    assert check.check_name == LABELS_CHECK and check.passed  # no history yet: nothing unknown

    # SDP changes: a category added, one deleted, a priority renamed.
    sdp_state.taxonomy.add_path("Printing", "Toner")
    sdp_state.taxonomy.set_deleted("categories", "Security")
    sdp_state.taxonomy.rename("priorities", "Urgent", "Critical")
    second = _materialize(tenant, resources)
    assert second.success
    stored_again = load_taxonomy(db, TENANT)
    assert stored_again.fetched_at > stored.fetched_at
    assert stored_again.knows_path("Printing", "Toner") and not stored_again.knows("category", "Security")
    assert stored_again.knows("priority", "Critical") and not stored_again.knows("priority", "Urgent")
    assert db.execute("SELECT count(*) FROM sdp_taxonomy WHERE tenant_id = %s", (TENANT,)).fetchone()[0] == 1
    changes = _metadata(second)["changes"]
    assert "Printing" in changes and "Security" in changes and "Critical" in changes


def test_a_failed_read_fails_the_run_and_keeps_the_stored_taxonomy(db, sdp_state, resources, tenant):
    assert _materialize(tenant, resources).success
    before = load_taxonomy(db, TENANT)
    sdp_state.faults.append(sdp_simulator.Fault(match=r"GET /api/v3/categories$", status=401, sdp_code=4022, times=5))
    with pytest.raises(dg.Failure) as failed:
        _materialize(tenant, resources)
    message = str(failed.value)
    assert "could not read tenant acme's taxonomy" in message and "SdpAuthError" in message
    assert f"{before.fetched_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC stays" in message
    assert load_taxonomy(db, TENANT) == before


def test_the_check_warns_about_history_labels_the_taxonomy_does_not_hold(db, resources, tenant):
    rows = [("1", "Email", "Outlook", "Password prompt", "High", "Messaging"),
            ("2", "Email", "Calendar", None, "High", "Network"),  # no Calendar under Email
            ("3", "Old Category", None, None, "Critical (retired)", "Ghost Team"),
            ("4", "Old Category", None, None, None, None),
            ("5", "Email", "Outlook", "Printer jam", "Low", "Service Desk")]
    for ticket_id, category, subcategory, item, priority, group in rows:
        db.execute("INSERT INTO ticket_history (tenant_id, ticket_id, subject, source, category, subcategory, item, "
                   "priority, support_group) VALUES (%s, %s, 's', 'bulk_import', %s, %s, %s, %s, %s)",
                   (TENANT, ticket_id, category, subcategory, item, priority, group))
    result = _materialize(tenant, resources)
    assert result.success  # a warning does not fail the run
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in check.metadata.items()}
    assert (meta["unknown_categories"], meta["unknown_subcategories"], meta["unknown_items"],
            meta["unknown_priorities"], meta["unknown_support_groups"]) == (1, 1, 1, 1, 1)
    assert meta["tickets_with_unknown_labels"] == 2 + 1 + 1 + 1 + 1 and meta["history_tickets"] == 5
    assert "Old Category | 2" in meta["sample"] and "Email/Calendar" in meta["sample"]


def test_save_and_load_round_trip(db):
    assert load_taxonomy(db, TENANT) is None
    save_taxonomy(db, TENANT, _small())
    assert load_taxonomy(db, TENANT) == _small()
    assert load_taxonomy(db, "someone_else") is None
