"""The note's checks against realistic answers of four model families (``note_corpus.py``): on the
structured path every correct item stays, every planted invention goes and every note has the spec's
sections; the Markdown fallback is held to the same on its cases. Answers go through the LLM simulator and
the real openai SDK (``note_corpus.run_cases``)."""

from __future__ import annotations

import pytest

from enhancement_pipeline_tests import note_corpus


@pytest.fixture(scope="module")
def totals() -> dict[str, dict]:
    cases = [(c, note_corpus.CONTEXTS[c.context]) for c in note_corpus.CASES]
    return note_corpus.run_cases(cases)


@pytest.mark.parametrize("path", ["structured", "markdown"])
def test_correct_items_stay_inventions_go_sections_hold(totals, path):
    t = totals[path]
    assert t["notes"] >= 4 and t["bad"] >= 9
    assert not t["failures"], t["failures"]
    assert (t["kept"], t["removed"], t["sections"]) == (t["keep"], t["bad"], t["notes"])


def test_the_corpus_covers_four_families_on_both_paths():
    families = {(c.family, c.path) for c in note_corpus.CASES}
    assert {f for f, _ in families} == {"gpt-4o-mini", "claude-haiku", "llama-3-8b", "qwen2.5-7b"}
    assert {p for _, p in families} == {"structured", "markdown"}
