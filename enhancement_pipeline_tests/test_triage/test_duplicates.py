"""Possible duplicates and incident storms (triage/duplicates.py): pure."""

from datetime import UTC, datetime, timedelta

from enhancement_pipeline.triage.duplicates import (
    DUPLICATE_FLOOR,
    RELATED_FLOOR,
    STORM_FLOOR,
    RecentTicket,
    ago,
    compare,
    duplicate_lines,
)

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def recent(ticket_id, minutes_before, cosine, **kw):
    return RecentTicket(ticket_id=ticket_id, created_at=NOW - timedelta(minutes=minutes_before), cosine=cosine, **kw)


def test_similar_text_alone_must_clear_the_high_floor_a_shared_requester_the_lower_one():
    between = (DUPLICATE_FLOOR + RELATED_FLOOR) / 2
    found = compare(created_at=NOW, requester_id="u1", requester="Ann", site=None, recent=[
        recent("stranger-close", 5, DUPLICATE_FLOOR + 0.01, requester_id="u2"),
        recent("stranger-between", 5, between, requester_id="u3"),
        recent("same-requester-between", 10, between, requester_id="u1"),
        recent("same-requester-far", 10, RELATED_FLOOR - 0.05, requester_id="u1"),
    ])
    assert [d.ticket_id for d in found.duplicates] == ["stranger-close", "same-requester-between"]
    assert found.duplicates[1].shared == ("same requester",)
    assert found.compared == 4


def test_without_ids_requesters_match_by_name_and_sites_count_too():
    between = (DUPLICATE_FLOOR + RELATED_FLOOR) / 2
    found = compare(created_at=NOW, requester_id=None, requester="Ann Lee", site="Leeds", recent=[
        recent("by-name", 3, between, requester=" ann lee"),
        recent("same-site", 4, between, site="leeds"),
        recent("no-embedding", 1, None, requester="Ann Lee"),
    ])
    assert {d.ticket_id: d.shared for d in found.duplicates} == {"by-name": ("same requester",),
                                                               "same-site": ("same site",)}


def test_a_storm_needs_enough_alike_tickets_within_the_window_before_this_one():
    alike = [recent(f"s{i}", 2 + i * 5, STORM_FLOOR + 0.02) for i in range(4)]  # 2..17 min before
    late = recent("old", 45, 0.95)  # alike but outside 30 minutes
    found = compare(created_at=NOW, requester_id=None, requester=None, site=None, recent=[*alike, late],
                    storm_min_tickets=5)
    assert found.storm == ("s3", "s2", "s1", "s0")  # oldest first; with this one, 5 tickets
    assert compare(created_at=NOW, requester_id=None, requester=None, site=None, recent=alike[:3],
                   storm_min_tickets=5).storm == ()
    lines = duplicate_lines(found)
    assert lines[-1] == ("**Possible major incident:** 5 open tickets in 30 min look like this one: "
                         "[#s3], [#s2], [#s1], [#s0].")


def test_the_duplicate_line_cites_ids_says_when_and_what_is_shared():
    found = compare(created_at=NOW, requester_id="u1", requester=None, site=None, recent=[
        recent("123", 10, 0.9, requester_id="u1"), recent("77", 60 * 5, 0.85)])
    assert duplicate_lines(found) == [
        "**Possible duplicate** of [#123] opened 10 min ago (same requester); [#77] opened 5 h ago."]
    assert duplicate_lines(compare(created_at=NOW, requester_id=None, requester=None, site=None, recent=[])) == []


def test_ago():
    assert ago(-5) == "later"
    assert ago(30) == "at the same time"
    assert ago(600) == "10 min ago"
    assert ago(3 * 3600) == "3 h ago"
    assert ago(3 * 86_400) == "3 days ago"
