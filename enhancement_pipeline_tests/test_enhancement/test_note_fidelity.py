"""The note's checks against realistic answers of four model families: ``note_corpus.py`` (written with the
checks in view) and ``note_corpus_heldout.py`` (written by someone who had not read them: 23 answers on
four other tickets). On the structured path every correct item stays, every planted invention goes and
every note has the spec's sections; the Markdown fallback is held to the same. Answers go through the LLM
simulator and the real openai SDK (``note_corpus.run_cases``)."""

from __future__ import annotations

import pytest

from enhancement_pipeline_tests import note_corpus, note_corpus_heldout


@pytest.fixture(scope="module")
def totals() -> dict[str, dict]:
    cases = [(c, corpus.CONTEXTS[c.context]) for corpus in (note_corpus, note_corpus_heldout) for c in corpus.CASES]
    return note_corpus.run_cases(cases)


@pytest.mark.parametrize("path", ["structured", "markdown"])
def test_correct_items_stay_inventions_go_sections_hold(totals, path):
    t = totals[path]
    assert t["notes"] >= 13 and t["bad"] >= 20
    assert not t["failures"], t["failures"]
    assert (t["kept"], t["removed"], t["sections"]) == (t["keep"], t["bad"], t["notes"])


def test_the_corpus_covers_four_families_on_both_paths():
    for corpus in (note_corpus, note_corpus_heldout):
        families = {(c.family.split("-instruct")[0].replace("claude-3-", "claude-"), c.path) for c in corpus.CASES}
        assert {f for f, _ in families} == {"gpt-4o-mini", "claude-haiku", "llama-3-8b", "qwen2.5-7b"}
        assert {p for _, p in families} == {"structured", "markdown"}
