"""HTML from SDP descriptions, resolutions and notes to clean text."""

from __future__ import annotations

import pytest

from enhancement_pipeline.servicedesk.html_text import html_to_text


@pytest.mark.parametrize(("html", "text"), [
    (None, ""),
    ("  plain text, no markup  ", "plain text, no markup"),
    ("<p>First line<br>second line</p><p>Next paragraph</p>", "First line\nsecond line\nNext paragraph"),
    ("<ul><li>one</li><li>two<li>three (unclosed)</ul>", "- one\n- two\n- three (unclosed)"),
    ("Restart the <b>Transport</b> service on <a href='x'>EX01</a>.", "Restart the Transport service on EX01."),
    ("<div><script>alert('x')</script><style>p {}</style>Visible</div>", "Visible"),
    ("<head><title>Mail</title></head><body><p>Body</p></body>", "Body"),
    ("AT&amp;T &lt;router&gt;&nbsp;&nbsp;down &#169; &#x41;", "AT&T <router> down © A"),
    ("<table><tr><td>host</td><td>10.0.0.5</td></tr><tr><td>db</td><td>10.0.0.6</td></tr></table>",
     "host 10.0.0.5\ndb 10.0.0.6"),
    ("<p>stray end tags</p></p></div>close nothing", "stray end tags\nclose nothing"),
    ("<p>unclosed <b>bold and <i>italic", "unclosed bold and italic"),
    ("before<hr>after", "before\nafter"),
    ("<P CLASS='x'>Upper-case tags</P>", "Upper-case tags"),
    ("<p>   lots \t of\u00a0 space   </p>", "lots of space"),
    ("<p>\n\n</p><p>  </p>", ""),
])
def test_visible_text_with_a_line_per_block(html, text):
    assert html_to_text(html) == text
