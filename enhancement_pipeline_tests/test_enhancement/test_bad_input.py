"""Bad input never stops the line: odd tickets next to normal ones, listed by the new-ticket sensor and enhanced
by ``enhance_ticket`` through the SDP, KB and LLM simulators over HTTP, real Postgres and Redis.

Every ticket gets a note, or a run that fails with a reason saying why; every other ticket still gets its note.
"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from enhancement_pipeline.enhancement.sensors import build_new_ticket_sensor
from enhancement_pipeline.knowledge.client import MAX_QUERY_BYTES, MAX_QUERY_CHARS, bounded_query
from enhancement_pipeline.servicedesk.html_text import html_to_text
from enhancement_pipeline.servicedesk.payloads import MAX_DESCRIPTION_CHARS
from enhancement_pipeline.servicedesk.polling import StreamCursor
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import (
    LOOKUPS,
    import_history,
    output_of,
    run_enhance,
    sensor_context,
    step_metadata,
)

CONTROL = "".join(map(chr, range(32))) + "\x7f"
BINARY = bytes(range(256)).decode("latin-1")  # every byte value, as a mail gateway may pass an attachment on


@pytest.fixture
def world(db, sdp_state, resources, tenant):
    """150 resolved real tickets imported through the ticket_history asset, the inventory loaded."""
    from enhancement_pipeline.local.datasets import demo_split

    history, new = demo_split()
    import_history(sdp_state, resources, tenant, history[:150])
    return new


def tick(resources, tenant, instance, cursor: str | None = None) -> dg.SensorResult:
    sensor = build_new_ticket_sensor(tenant)
    return sensor(sensor_context(resources, instance, cursor))


def failure_reason(result) -> str:
    """The description of the run's failed step (a ``dg.Failure``'s reason), else its error message."""
    event = next(e for e in result.all_events if e.is_step_failure)
    data = event.event_specific_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    return data.error.message


def sized(html: str, size: int) -> str:
    """``html`` repeated to ``size`` characters, cut after a closing tag."""
    text = html * (size // len(html) + 1)
    return text[:text.rfind(">", 0, size) + 1]


def test_bad_tickets_get_a_note_or_a_reason_and_the_rest_still_get_theirs(world, sdp_state, resources, tenant,
                                                                          instance):
    new = world
    now = int(time.time() * 1000) - 60_000
    article = new[3]

    def add(subject, description, offset, **kw):
        return sdp_state.add_request(subject=subject, description=description, requester="Dana Scully",
                                     created_millis=now + offset, **kw)["id"]

    normal = [add(t.subject, t.description_html, i) for i, t in enumerate(new[:3])]
    bad = {
        "empty subject": add("", new[4].description_html, 10),
        "1 MB description": add(new[5].subject, sized(new[5].description_html, 1_000_000), 11),
        "5 MB description": add(new[6].subject, sized(new[6].description_html, 5_000_000), 12),
        "control and binary": add(f"Outlook\x00 crashes{CONTROL}", f"<p>{article.subject}</p><p>{BINARY}</p>"
                                  f"<p>dump:\x00\x00\x01\x02 {CONTROL}</p>{article.description_html}", 13),
        "only HTML": add(new[7].subject, "<div><img src='cid:image001.png'><style>p {color: red}</style><br></div>",
                         14),
        "emoji and RTL": add("🔥 השרת לא עונה — Exchange 🔥", "<p dir='rtl'>שלום, השרת לא עונה. مرحبا، الخادم لا "
                             f"يستجيب 👋🏽</p>{new[8].description_html}", 15),
        "one giant line": add(new[9].subject, html_to_text(new[9].description_html).replace("\n", " ")
                              + " " + "ERROR 0x80070005 access denied at C:\\Windows\\System32 " * 10_000, 16),
        "null requester": add(new[10].subject, new[10].description_html, 17),
        "created_time a number": add(new[11].subject, new[11].description_html, 18),
        "subject a number": add("", new[12].description_html, 19),
        "status a string": add(new[13].subject, new[13].description_html, 20),
    }
    sdp_state.set_raw_fields(bad["null requester"], {"requester": None})
    sdp_state.set_raw_fields(bad["created_time a number"], {"created_time": now + 18})
    sdp_state.set_raw_fields(bad["subject a number"], {"subject": 4711})
    sdp_state.set_raw_fields(bad["status a string"], {"status": "Open"})
    unreadable = add(new[14].subject, new[14].description_html, 21)
    sdp_state.set_raw_fields(unreadable, {"created_time": {"display_value": "yesterday"}})  # no epoch value
    deleted = add(new[15].subject, new[15].description_html, 22)
    assert len(sdp_state.requests[bad["one giant line"]]["description"]) > 500_000

    first = tick(resources, tenant, instance)
    requested = [r.tags["ticket_id"] for r in first.run_requests]
    assert sorted(requested) == sorted([*normal, *bad.values(), unreadable, deleted])  # nobody dropped
    by_id = {r.tags["ticket_id"]: r for r in first.run_requests}
    assert by_id[unreadable].tags["list_row"] == "unreadable"
    sdp_state.delete_request(deleted)  # between the listing and the run

    results = {}
    for r in first.run_requests:
        config = r.run_config["ops"]["load_ticket"]["config"]
        assert config == {"tenant_id": TENANT, "ticket_id": r.tags["ticket_id"]}
        results[config["ticket_id"]] = run_enhance(resources, TENANT, config["ticket_id"])

    for name, rid in [*(("normal", rid) for rid in normal), *bad.items()]:
        result = results[rid]
        assert result.success, (name, failure_reason(result))
        notes = sdp_state.notes[rid]
        assert len(notes) == 1, name
        assert "\x00" not in notes[0]["description"]
        for op in LOOKUPS:
            assert output_of(result, op).error is None, (name, op, output_of(result, op).error)
        ticket = result.output_for_node("load_ticket")
        assert len(ticket.description) <= MAX_DESCRIPTION_CHARS
        assert not any(c in ticket.subject + ticket.description for c in CONTROL if c not in "\t\n")

    # Leniency where the meaning is clear.
    assert results[bad["subject a number"]].output_for_node("load_ticket").subject == "4711"
    assert results[bad["status a string"]].output_for_node("load_ticket").status == "Open"
    assert results[bad["created_time a number"]].output_for_node("load_ticket").created_at.timestamp() * 1000 \
        == now + 18
    assert results[bad["null requester"]].output_for_node("load_ticket").requester is None
    # Control characters gone, the words around them kept.
    assert results[bad["control and binary"]].output_for_node("load_ticket").subject == "Outlook crashes"
    emoji = results[bad["emoji and RTL"]].output_for_node("load_ticket")
    assert emoji.subject.startswith("🔥 השרת") and "مرحبا" in emoji.description

    # The long ones were cut, and say so; synthesis stays fast.
    for name, size in (("1 MB description", 1_000_000), ("5 MB description", 5_000_000)):
        loaded = step_metadata(results[bad[name]], "load_ticket")
        assert loaded["description_cut"].startswith("yes") and loaded["description_chars"] > size * 0.99
        assert loaded["description_text_chars"] <= MAX_DESCRIPTION_CHARS
    synthesis_ms = step_metadata(results[bad["5 MB description"]], "synthesize_note")["ms"]
    load_ms = step_metadata(results[bad["5 MB description"]], "load_ticket")["ms"]
    print(f"\n5 MB description: load_ticket {load_ms:.0f} ms, synthesize_note {synthesis_ms:.0f} ms")
    assert synthesis_ms < 3_000 and load_ms < 3_000
    assert step_metadata(results[bad["one giant line"]], "load_ticket")["description_cut"].startswith("yes")

    # The two that cannot be enhanced end with the reason, on the run.
    assert not results[unreadable].success and not sdp_state.notes[unreadable]
    reason = failure_reason(results[unreadable])
    assert unreadable in reason and "created_time" in reason
    assert not results[deleted].success
    assert deleted in failure_reason(results[deleted]) and "no longer exists" in failure_reason(results[deleted])

    # The next tick asks for nothing new: the cursor passed them all (the request whose time cannot be read is
    # asked for again each tick; its run key makes Dagster skip it).
    second = tick(resources, tenant, instance, first.cursor)
    assert {r.tags["ticket_id"] for r in second.run_requests or []} <= {unreadable}


def test_an_unreadable_list_row_still_gets_its_run_and_the_stream_moves_on(db, sdp_state, resources, tenant,
                                                                           instance):
    now = int(time.time() * 1000) - 60_000
    ids = [sdp_state.add_request(subject=f"t{i}", created_millis=now + i)["id"] for i in range(4)]
    # Readable time, unreadable status: its run reads the full record, and the cursor moves past it.
    sdp_state.set_raw_fields(ids[1], {"status": ["Open"]})
    # Finished, though unreadable: skipped like any finished request.
    sdp_state.set_raw_fields(ids[3], {"status": "Closed", "subject": {"odd": True}})
    first = tick(resources, tenant, instance)
    assert [r.tags["ticket_id"] for r in first.run_requests] == ids[:3]
    assert first.run_requests[1].tags["list_row"] == "unreadable"
    cursor = StreamCursor.model_validate_json(first.cursor)
    assert cursor.ms == now + 3 and cursor.ids_at_ms == [ids[3]]
    assert not (tick(resources, tenant, instance, first.cursor).run_requests or [])

    result = run_enhance(resources, TENANT, ids[1])
    assert not result.success and "status" in failure_reason(result) and ids[1] in failure_reason(result)


def test_the_kb_query_is_bounded_whatever_the_script(db, resources):
    assert bounded_query("a  b\n c") == "a b c"
    for unit in ("word ", "😀 ", "שלום ", "x"):
        query = bounded_query(unit * 100_000)
        assert len(query) <= MAX_QUERY_CHARS and len(query.encode()) <= MAX_QUERY_BYTES
        assert query and unit.strip()[:1] in query
    assert bounded_query("word " * 1_000).endswith("word")  # a word is not sent half
    kb = resources["kb"]
    articles, cached = kb.search(TENANT, "Outlook crashes when opening a shared calendar " * 50_000, limit=5)
    assert articles and not cached  # a 2.4 MB query used to be InvalidURL: URL component 'query' too long
    assert kb.search(TENANT, "Outlook crashes when opening a shared calendar " * 60_000, limit=5)[1]  # same query
