"""ticket_history: monthly partitions imported from SDP, and the similar-ticket search on them."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from enhancement_pipeline.history.assets import ticket_history
from enhancement_pipeline.history.search import find_similar
from enhancement_pipeline.local.datasets import demo_split
from enhancement_pipeline.local.sdp_simulator import Fault, seed_resolved_tickets
from enhancement_pipeline.servicedesk.payloads import html_to_text
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import materialize_range

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_one_partition_imports_only_its_month(db, sdp_state, resources):
    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:400])
    sdp_state.add_request(subject="still open", created_millis=int(NOW.timestamp() * 1000) - 86_400_000 * 40)
    month = "2026-05-01"
    expected = {t.subject for t in history[:400] if t.resolved_at.strftime("%Y-%m-01") == month}
    result = dg.materialize([ticket_history], resources=resources, partition_key=month)
    assert result.success
    rows = db.execute("SELECT subject, resolved_at FROM ticket_history WHERE tenant_id = %s", (TENANT,)).fetchall()
    assert {r[0] for r in rows} == expected and expected
    assert all(r[1].strftime("%Y-%m-01") == month for r in rows)


def test_range_backfill_is_one_run_and_rerunning_changes_nothing(db, sdp_state, resources):
    history, _ = demo_split(now=NOW)
    seed_resolved_tickets(sdp_state, history[:300])
    instance = dg.DagsterInstance.ephemeral()
    first = materialize_range([ticket_history], resources, "2024-11-01", "2026-10-01", instance)
    snapshot = db.execute("SELECT ticket_id, subject, description, resolution, resolved_at FROM ticket_history "
                          "ORDER BY ticket_id").fetchall()
    second = materialize_range([ticket_history], resources, "2024-11-01", "2026-10-01", instance)
    assert first.success and second.success
    assert len(instance.get_runs()) == 2
    assert len(snapshot) == 300
    assert db.execute("SELECT ticket_id, subject, description, resolution, resolved_at FROM ticket_history "
                      "ORDER BY ticket_id").fetchall() == snapshot


def test_a_failing_ticket_does_not_stop_the_backfill(db, sdp_state, resources):
    history, _ = demo_split(now=NOW)
    ids = seed_resolved_tickets(sdp_state, history[:50])
    broken = ids[history[0].article_id]
    sdp_state.faults.append(Fault(match=f"GET /api/v3/requests/{broken}$", status=500, sdp_code=4004, times=100))
    result = materialize_range([ticket_history], resources, "2024-11-01", "2026-10-01")
    meta = result.asset_materializations_for_node("ticket_history")[0].metadata
    assert result.success and meta["failed"].value == 1 and meta["imported"].value == 49


def test_similar_search_finds_the_ticket_with_the_same_problem(db, sdp_state, resources):
    # A real pair: the held-out "405 Method Not Allowed in a hybrid deployment" ticket and the history ticket
    # "Exception has been thrown by the target" quote the same MRS proxy failure in their IIS logs.
    history, new = demo_split(now=NOW)
    twin = next(t for t in history if t.article_id.endswith("move-mailboxes/hybrid-deployment-errors"))
    seed_resolved_tickets(sdp_state, [*history[:300], twin])
    materialize_range([ticket_history], resources, "2024-11-01", "2026-10-01")
    ticket = next(t for t in new if t.article_id.endswith("endpoint-connection-405-error"))
    found = find_similar(db, TENANT, f"{ticket.subject}\n{html_to_text(ticket.description_html)}")
    assert twin.subject in [t.subject for t in found]
    assert all(0 < t.score <= 1 for t in found)
    assert [t.score for t in found] == sorted((t.score for t in found), reverse=True)
    assert find_similar(db, TENANT, "   ") == []
    assert find_similar(db, "someone-else", ticket.subject) == []
