"""What a note quotes of a resolution: the first actionable sentences, never a marker or a heading."""

from __future__ import annotations

import re

import pytest

from enhancement_pipeline.enhancement.excerpts import MAX_EXCERPT_CHARS, _is_actionable, resolution_excerpt
from enhancement_pipeline.local.datasets import demo_split
from enhancement_pipeline.local.doc_cleanup import clean_article_markdown
from enhancement_pipeline.servicedesk.payloads import html_to_text


@pytest.mark.parametrize(("resolution", "expected"), [
    ("Resolution 1\n- Config\nTo resolve this issue, follow these steps:\n- Open the Exchange Management Shell.\n"
     "- Run Get-AuthConfig.", "Open the Exchange Management Shell. Run Get-AuthConfig."),
    ("This article contains information about how to modify the registry. Make sure that you back up the "
     "registry before you modify it.\nMethod 1\nRestart the Outlook client.",
     "Restart the Outlook client."),
    ("For more information, see Add a domain.\nTo resolve this behavior, add and verify the missing domains.",
     "To resolve this behavior, add and verify the missing domains."),
    ("-\n-\nReset the user's password and cleared the cached credentials", "Reset the user's password and "
     "cleared the cached credentials."),
    ("This behavior is by design.", "This behavior is by design."),
    ("", ""),
])
def test_excerpt_starts_at_the_fix(resolution, expected):
    assert resolution_excerpt(resolution) == expected


def test_a_long_sentence_is_cut_between_words():
    text = "Run " + " ".join(f"step{i}" for i in range(200)) + "."
    excerpt = resolution_excerpt(text)
    assert len(excerpt) <= MAX_EXCERPT_CHARS and excerpt.endswith(" …") and excerpt.startswith("Run step0")


def test_every_shipped_resolution_is_quoted_from_a_sentence():
    """Over every resolution the demo seeds (real Microsoft articles as SDP stores them): no excerpt holds a
    docs marker or starts with a heading line, and most start with something to do."""
    history, _ = demo_split()
    excerpts = [resolution_excerpt(html_to_text(t.resolution_html)) for t in history if t.resolution_html]
    assert len(excerpts) > 1500
    assert not [e for e in excerpts if "[!" in e or e.startswith(("-", "#", "Method ", "Resolution "))]
    assert all(len(e) <= MAX_EXCERPT_CHARS for e in excerpts)
    empty = sum(1 for e in excerpts if not e)
    actionable = sum(1 for e in excerpts if e and _is_actionable(re.split(r"(?<=[.!?]) ", e)[0]))
    assert empty <= 0.01 * len(excerpts)
    assert actionable >= 0.8 * len(excerpts), f"{actionable}/{len(excerpts)} excerpts start with an action"


def test_docs_boilerplate_is_stripped_and_instructions_kept():
    markdown = ("To resolve this issue:\n\n### Method 1: Reinstall\n\n> [!NOTE]\n> Back up your IIS configuration."
                "\n\n1. Type the command:\n\n ServiceModelReg.exe -r\n\n > [!IMPORTANT]\n > Restart IIS.\n\n"
                "![screenshot](media/x.png)\nForms![Customers]![cboCountry]\n\n>[!div class=\"nextstepaction\"]\n"
                ">[Run Tests](https://aka.ms/x)\n\n### More information\n\nSee these:\n- X\n#### Sub\nmore\n\n"
                "## Next\nkept\nIf x [!NOTE]\n> Check all dates.")
    cleaned = clean_article_markdown(markdown)
    assert "[!" not in cleaned and "screenshot" not in cleaned and "Run Tests" not in cleaned
    assert "More information" not in cleaned and "See these" not in cleaned and "more" not in cleaned.split()
    for kept in ("Back up your IIS configuration.", " Restart IIS.", "ServiceModelReg.exe -r", "Forms![Customers]",
                 "### Method 1: Reinstall", "## Next\nkept", "Check all dates."):
        assert kept in cleaned
    assert clean_article_markdown(None) is None
