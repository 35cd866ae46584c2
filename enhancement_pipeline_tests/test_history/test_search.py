"""Similar-ticket search against the real Postgres: term weighting, fields, tenancy, the floor, embeddings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from enhancement_pipeline.history import ranking
from enhancement_pipeline.history.search import (
    embed_missing,
    find_similar,
    find_similar_and_neighbours,
    lexical_search,
    rank_similar,
    refresh_lexeme_stats,
)
from enhancement_pipeline.history.store import merge_tickets
from enhancement_pipeline.models import Ticket

TENANT = "acme"
RESOLVED = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)

def _history(db, rows, tenant=TENANT):
    """rows: (ticket_id, subject, description, resolution or None)."""
    merge_tickets(db, tenant, [Ticket(tenant_id=tenant, ticket_id=i, subject=s, description=d, resolution=r,
                                      resolved_at=RESOLVED) for i, s, d, r in rows], "bulk_import")
    refresh_lexeme_stats(db, tenant)


# Tickets as people write them: greetings and filler words are common, so they weigh little.
FILLER = [(f"f{i}", f"Printer queue stuck on floor {i}",
           "Hi team, good morning. Since yesterday afternoon the jobs on my laptop stay in the queue again and "
           "nothing prints today, which is very annoying. Thanks", "Restarted the print spooler service.")
          for i in range(30)]


def test_a_long_description_finds_the_ticket_that_shares_its_rare_words(db):
    # The seed query ANDed every word, so a long description with words no old ticket has found nothing.
    _history(db, [*FILLER,
                  ("t1", "Outlook keeps asking for the password",
                   "Since the mailbox moved to Exchange Online, Outlook prompts for credentials every few minutes.",
                   "Enabled modern authentication for the tenant and cleared the cached credentials."),
                  ("t2", "Teams meeting has no audio", "Nobody hears the presenter in Teams meetings.",
                   "Reset the audio device in Teams settings.")])
    # Every word but three is common in this history (the filler tickets say them all).
    found = find_similar(db, TENANT, "Hi team, good morning. Since yesterday afternoon Outlook on my laptop keeps "
                                     "prompting me for my password again and again, which is very annoying. Thanks")
    assert found[0].ticket_id == "t1"
    assert "t2" not in [t.ticket_id for t in found]


def test_rare_terms_outweigh_common_ones(db):
    # "printer" is in 31 tickets, "toner" in one: the ticket sharing the rare word wins even though the other
    # shares the common word in its subject too.
    _history(db, [*FILLER, ("rare", "Paper jam", "Toner smudges on every page.", "Replaced the toner cartridge.")])
    found = lexical_search(db, TENANT, "printer toner smudges", 5)
    assert found[0][0] == "rare"


def test_subject_weighs_more_than_description_and_resolution(db):
    _history(db, [*FILLER,
                  ("in_subject", "VPN drops every hour", "The connection resets.", "Updated the client."),
                  ("in_description", "Connection resets", "The VPN drops every hour.", "Updated the client."),
                  ("in_resolution", "Connection resets", "It drops every hour.", "Reinstalled the VPN client.")])
    ranked = [t for t, _ in lexical_search(db, TENANT, "VPN", 5)]
    assert ranked == ["in_subject", "in_description", "in_resolution"]


def test_only_the_tenants_resolved_tickets_are_searched(db):
    _history(db, [*FILLER, ("open", "Scanner offline in the warehouse", "The scanner shows offline.", None)])
    _history(db, [("other", "Scanner offline in the warehouse", "The scanner shows offline.", "Rebooted it.")],
             tenant="globex")
    assert find_similar(db, TENANT, "scanner offline warehouse") == []
    assert [t.ticket_id for t in find_similar(db, "globex", "scanner offline warehouse")] == ["other"]


def test_the_floor_says_nothing_rather_than_something_unrelated(db):
    _history(db, FILLER)
    # Shares one word ("today") with every filler ticket: below the floor, so nothing is shown...
    assert find_similar(db, TENANT, "The CEO's iPhone cannot sync contacts today after the iOS update") == []
    # ...but the ranking without the floor would have offered one.
    assert find_similar(db, TENANT, "The CEO's iPhone cannot sync contacts today after the iOS update", floor=False)


def test_neighbours_for_triage_come_from_the_same_search_without_the_floor_and_carry_labels(db):
    merge_tickets(db, TENANT, [
        Ticket(tenant_id=TENANT, ticket_id=f"f{i}", subject=s, description=d, resolution=r, resolved_at=RESOLVED,
               category="Hardware", subcategory="Printer", priority="Low", support_group="Desktop")
        for i, (_, s, d, r) in enumerate(FILLER)], "bulk_import")
    refresh_lexeme_stats(db, TENANT)
    query = "The CEO's iPhone cannot sync contacts today after the iOS update"
    similar, near = find_similar_and_neighbours(db, TENANT, query, neighbours=7)
    assert similar == []  # below the floor for the note...
    assert len(near) == 7  # ...but the vote still hears the nearest, weak as they are
    assert dict(near[0].labels) == {"category": "Hardware", "subcategory": "Printer", "item": None,
                                    "priority": "Low", "group": "Desktop"}
    assert [n.similarity for n in near] == sorted((n.similarity for n in near), reverse=True)
    found, near = find_similar_and_neighbours(db, TENANT, "Printer queue stuck on floor 3", limit=2, neighbours=5)
    # The note's tickets are the neighbours that clear the floor, in the same order.
    assert found and [t.ticket_id for t in found] == [n.ticket_id for n in near][:len(found)]


def test_scores_are_shares_in_0_1_best_first(db):
    _history(db, [*FILLER, ("exact", "Spooler crashes on print server", "Spooler service stops.", "Patched.")])
    found = find_similar(db, TENANT, "Spooler crashes on print server")
    assert found[0].ticket_id == "exact" and found[0].score == pytest.approx(1.0)
    assert all(0 < t.score <= 1 for t in found)
    assert [t.score for t in found] == sorted((t.score for t in found), reverse=True)


def test_lexemes_with_quotes_and_backslashes_are_literal(db):
    _history(db, [*FILLER, ("odd", r"Share \\fs01\it's broken", r"Path \\fs01\it's denies access.", "Fixed ACL.")])
    assert find_similar(db, TENANT, r"\\fs01\it's denies access")[0].ticket_id == "odd"


def test_select_terms_keeps_the_rarest_within_the_candidate_budget():
    terms = [ranking.QueryTerm("common", 900), ranking.QueryTerm("absent", 0), ranking.QueryTerm("rare", 3),
             ranking.QueryTerm("mid", 400)]
    scoring, candidates = ranking.select_terms(terms, n_docs=1000, candidate_postings=500)
    assert [t for t, _ in scoring] == ["rare", "mid", "common"]  # "absent" can match nothing
    assert scoring[0][1] > scoring[1][1] > scoring[2][1] > 0
    assert candidates == ["rare", "mid"]
    assert ranking.select_terms([ranking.QueryTerm("huge", 5000)], 6000, candidate_postings=10)[1] == ["huge"]


def test_fusions():
    assert ranking.reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1) == {"a": 0.5, "b": 1 / 3 + 0.5,
                                                                           "c": 1 / 3}
    fused = ranking.convex_fusion({"a": 0.9, "b": 0.3}, {"b": 0.8, "c": 0.4}, alpha=0.5)
    assert fused == {"a": 0.5, "b": 0.5, "c": 0.0}
    # The floor keeps a ticket when either signal clears it; the score shown is the stronger one.
    # The floor holds a ticket's cosine where it has an embedding, else its term share.
    ranked = rank_similar([("a", 0.05), ("b", 0.5)], [("a", 0.9), ("c", 0.1)], limit=5)
    assert dict(ranked) == {"a": 0.9, "b": 0.5}
    assert dict(rank_similar([("a", 0.05), ("b", 0.5)], [("a", 0.9)], limit=5, cosines={"b": 0.2})) == {"a": 0.9}


@pytest.fixture(scope="module")
def encoder():
    from enhancement_pipeline.history.embeddings import load_encoder

    found = load_encoder()  # the default install's ONNX model: never None here
    assert found is not None
    return found


def test_hybrid_finds_a_paraphrase_that_shares_no_word(db, encoder):
    _history(db, [*FILLER,
                  ("laptop", "Notebook will not power on", "Pressing the button does nothing, no lights.",
                   "Drained the battery and reseated the charger.")])
    assert embed_missing(db, TENANT, encoder) == 31
    query = "Laptop dead, cannot turn it on"
    assert [t.ticket_id for t in find_similar(db, TENANT, query, method="lexical")] == []
    found = find_similar(db, TENANT, query, encoder=encoder)
    assert found[0].ticket_id == "laptop" and found[0].score >= 0.5


def test_embeddings_are_computed_once_and_again_only_when_the_text_changes(db, encoder):
    _history(db, FILLER[:5])
    assert embed_missing(db, TENANT, encoder) == 5
    assert embed_missing(db, TENANT, encoder) == 0
    merge_tickets(db, TENANT, [Ticket(tenant_id=TENANT, ticket_id="f1", subject="Printer queue stuck on floor 1",
                                      description="Now the jobs vanish.", resolution="x", resolved_at=RESOLVED)],
                  "sensor_resolved")
    assert embed_missing(db, TENANT, encoder) == 1
    # A deleted ticket takes its embedding with it.
    db.execute("DELETE FROM ticket_history WHERE tenant_id = %s AND ticket_id = 'f2'", (TENANT,))
    assert db.execute("SELECT count(*) FROM ticket_embeddings").fetchone()[0] == 4

