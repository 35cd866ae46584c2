"""The free-text checks and the note's assembly on the inputs a review found wrong: long whitespace runs
(polynomial backtracking), a secret shown as a key detail, escaped backticks pairing with code spans, a
ticket subject taken for an article title, numbers "seen" inside dates, steps taken for pleasantries, and
ids models write as lone strings."""

from __future__ import annotations

import pytest

from enhancement_pipeline.enhancement.answer import answer_model
from enhancement_pipeline.enhancement.answer_checks import Seen, is_pleasantry, strip_scores, text_problems
from enhancement_pipeline.enhancement.grounding import Grounds, ground
from enhancement_pipeline.enhancement.injection import addresses_a_model
from enhancement_pipeline.enhancement.redaction import Redactor
from enhancement_pipeline.enhancement.synthesis import restore_markdown
from enhancement_pipeline.models import (
    InventoryContext,
    KbArticle,
    KnowledgeContext,
    SimilarTicket,
    SimilarTicketsContext,
)
from enhancement_pipeline.triage.key_details import details_line, key_details

GROUNDS = Grounds(ticket_ids=frozenset({"6101"}), article_ids=frozenset({"42"}), urls=frozenset(), ips=frozenset(),
                  placeholders=frozenset(), article_titles={"42": "Outlook keeps asking for password"})
RUN = " " * 20_000


@pytest.mark.timeout(30)  # a bound against catastrophic backtracking, not a speed target
@pytest.mark.parametrize("text", [f"ticket{RUN}x", f"match{RUN}x", f"({RUN}", "A-" * 10_000, "a-" * 10_000,
                                  f"Hi{chr(10) * 20_000}printer jammed"])
def test_long_runs_are_checked_in_linear_time(text):
    text_problems(text, GROUNDS, Seen.of([], []))
    strip_scores(text)
    addresses_a_model(text)
    key_details(f"error{RUN}event{RUN}HTTP{RUN}version{RUN}{text}")


def test_a_secret_is_never_a_key_detail():
    redactor = Redactor()
    text = "Temporary password: WELCOME-2024 was set on SRV-FS01"
    assert "WELCOME-2024" not in redactor.redact(text)
    line = details_line(key_details(text), redact=redactor.redact, withheld=redactor.withheld)
    assert line == "**Key details:** `SRV-FS01`"


def test_an_escaped_backtick_opens_no_code_span_and_a_restored_value_cannot_close_one():
    redactor = Redactor(people=["Dana*Scully*"])
    redacted = redactor.redact("Dana*Scully*")
    markdown = f"- **Outlook \\`OST** (match 0.81): Fix: run `Set-Mailbox {redacted}` and tell {redacted}"
    restored = restore_markdown(redactor, markdown)
    assert "`Set-Mailbox Dana*Scully*`" in restored  # verbatim in code
    assert restored.endswith("tell Dana\\*Scully\\*")  # escaped in prose
    tricky = Redactor(people=["Bob `rm` Smith"])
    assert restore_markdown(tricky, f"`{tricky.redact('Bob `rm` Smith')}`") == "`Bob 'rm' Smith`"


def test_a_ticket_subject_that_is_also_an_article_title_stays_the_subject():
    md = "- [#6101] **Outlook keeps asking for password** (match 0.81): cleared the credentials."
    assert ground(md, GROUNDS).markdown == md
    cited = ground("- Read **Outlook keeps asking for password** first.", GROUNDS).markdown
    assert cited == "- Read [KB:42] first."


def test_a_number_inside_a_date_or_a_code_is_not_a_seen_ticket_id():
    seen = Seen.of(["since 2024-05-12, error 0x80070005, see #33881"], [])
    assert text_problems("Check ticket 12 for details.", GROUNDS, seen) == ["ticket_ids"]
    assert text_problems("Same as request no. 80 last week.", GROUNDS, seen) == ["ticket_ids"]
    assert text_problems("Like #3388.", GROUNDS, seen) == ["ticket_ids"]
    assert text_problems("The same as ticket 6101.", GROUNDS, seen) == []
    # An id the requester wrote is seen, and still not citable: the note cites what the history vouches for.
    assert text_problems("See #33881.", GROUNDS, seen) == ["ticket_ids"]


@pytest.mark.parametrize("line, courtesy", [
    ("I hope this helps! Let me know if you need anything else.", True),
    ("If you have any further questions, let me know.", True),
    ("Thanks for your patience!", True),
    ("Please reach out to Microsoft support with the CBS.log.", False),
    ("If you need more help, escalate to the network team.", False),
    ("Feel free to reboot the server after hours.", False),
    ("Let me know the results by calling the user back", False),
    ("Thanks to the new policy, clear the cache.", False),
])
def test_only_a_whole_line_of_courtesy_is_a_pleasantry(line, courtesy):
    assert is_pleasantry(line) is courtesy


def test_scores_are_cut_as_claims_not_as_settings():
    assert strip_scores("Set the relevance score of 0.5 in the search config.") == (
        "Set the relevance score of 0.5 in the search config.", 0)
    assert strip_scores("Printer offline, relevance score: 0.9.") == ("Printer offline.", 1)
    assert strip_scores("Score 0.9, almost the same issue") == ("Almost the same issue", 1)


def test_lone_ids_and_numbers_are_read_as_models_write_them():
    model = answer_model(SimilarTicketsContext(items=[SimilarTicket(ticket_id="6101", subject="s", resolution="r",
                                                                    score=0.5)]),
                         KnowledgeContext(items=[KbArticle(article_id="42", title="t")]), InventoryContext())
    answer = model.model_validate({"knowledge_articles": [{"article_id": 42, "why_it_applies": "x"}],
                                   "next_steps": [{"step": "a", "relies_on": "6101"}, {"step": "b", "relies_on": 42}]})
    assert answer.knowledge_articles[0].article_id == "42"
    assert [s.relies_on for s in answer.next_steps] == [["6101"], ["KB:42"]]
