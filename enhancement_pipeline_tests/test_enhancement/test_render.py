"""Note rendering: the word cap and the HTML allow-list."""

from __future__ import annotations

from enhancement_pipeline.enhancement.render import markdown_to_safe_html
from enhancement_pipeline.enhancement.sections import cap_words, word_count


def test_html_from_model_or_ticket_cannot_reach_sdp():
    html = markdown_to_safe_html(
        "### Title\n<script>alert(1)</script>\n\n[click](javascript:alert(1)) [ok](https://example.com/a)\n\n"
        '<img src=x onerror=alert(1)> **bold**')
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html  # shown as text, not run
    assert 'href="javascript' not in html and html.count("<a ") == 1  # the javascript: link stays plain text
    assert '<a href="https://example.com/a" rel="noopener noreferrer">ok</a>' in html
    assert "<strong>bold</strong>" in html and "<h3>Title</h3>" in html


def test_cap_keeps_whole_lines_within_the_limit():
    text = "\n".join(f"- bullet number {i} with five words" for i in range(200))
    capped = cap_words(text, 100)
    assert word_count(capped) <= 100 + 8  # the limit plus the one-line notice
    body = capped.split("\n\n*(shortened")[0]
    assert all(line.endswith("five words") for line in body.splitlines())
    assert cap_words("short note", 100) == "short note"
