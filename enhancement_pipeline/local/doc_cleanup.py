"""Documentation boilerplate out of Microsoft Learn Markdown, as the shipped data is built. Pure functions.

The Microsoft support articles (``../shared/data/kb-ms-office-support``) are docs-site Markdown: admonitions
(``> [!NOTE]`` and the ``> [!div class="nextstepaction"]`` button), "More information" and "Did this fix the
problem?" sections, image references and include directives. A technician's resolution has none of these, and
a note that quotes them ("resolved by: [!NOTE]") reads as noise. ``clean_article_markdown`` keeps every
instruction and drops the markup around it: an admonition's text stays as a plain paragraph, a
next-step button, an image or a boilerplate section goes.

Why our own code: these are DocFX extensions of Markdown that CommonMark parsers (markdown-it-py included)
read as ordinary block quotes and links, and the cleanup must keep the rest of the Markdown byte for byte.
"""

from __future__ import annotations

import re

# Sections that carry no fix: pointers to further reading, support-contact boilerplate, feedback prompts.
_BOILERPLATE_SECTIONS = re.compile(
    r"^(?:more\s+information(?:\s+about\b.*)?|did\s+this\s+fix\s+the\s+problem\??|references?|see\s+also"
    r"|need\s+more\s+help\??|contact\s+us\s+for\s+help|third[-\s]party\s+(?:information|contact)\s+disclaimer"
    r"|still\s+need\s+help\??)\s*$", re.IGNORECASE)
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# "> [!NOTE]", ">[!div class=...]", "> [!IMPORTANT] text" (DocFX alerts and div blocks).
_ALERT = re.compile(r"^(?P<indent>\s*)>\s*\[!(?P<kind>[A-Za-z]+)(?P<attrs>[^\]]*)\]\s*(?P<rest>.*)$")
_INLINE_ALERT = re.compile(r"(?<=\S)[ \t]*\\?[ \t]*(\[!(?:NOTE|TIP|IMPORTANT|WARNING|CAUTION)\])", re.IGNORECASE)
_QUOTED = re.compile(r"^(?P<indent>\s*)>\s?(?P<text>.*)$")
# ![alt](src "title") but not VBA's Forms![Name] (a bang right after a word character).
_IMAGE = re.compile(r"(?<![\w\]])!\[[^\]\n]*\]\([^)\n]*\)")
_DIRECTIVE = re.compile(r"^\s*(?::::\s*(?:image|moniker|zone|row|column)\b.*|:::\s*$|\[!INCLUDE\b[^\]]*\]\s*)$",
                        re.IGNORECASE)


def clean_article_markdown(markdown: str | None) -> str | None:
    """``markdown`` without docs-site boilerplate (see the module docstring); None stays None.

    Admonitions keep their text, unquoted, as their own paragraph; ``[!div]`` blocks (buttons) are dropped
    with their content; a boilerplate heading is dropped with everything under it up to the next heading of
    the same or a higher level. Runs of blank lines left behind are squeezed to one.
    """
    if markdown is None:
        return None
    # Some articles lost the line break before an alert when their HTML was flattened ("If x [!NOTE]").
    markdown = _INLINE_ALERT.sub(lambda m: "\n> " + m.group(1), markdown)
    out: list[str] = []
    skip_level = 0  # inside a boilerplate section of this heading level
    block: str | None = None  # "alert" or "div" while inside a quoted admonition
    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            if skip_level and level > skip_level:
                continue
            skip_level = level if _BOILERPLATE_SECTIONS.match(heading.group(2)) else 0
            if skip_level:
                continue
        elif skip_level:
            continue
        alert = _ALERT.match(line)
        if alert:
            block = "div" if alert.group("kind").lower() == "div" else "alert"
            if out and out[-1].strip():
                out.append("")  # the text becomes a paragraph of its own, not the end of the one before
            if block == "alert" and alert.group("rest"):
                out.append(alert.group("indent") + alert.group("rest"))
            continue
        quoted = _QUOTED.match(line)
        if block and quoted:
            if block == "alert":  # same indentation, so an admonition inside a list item stays in it
                out.append(quoted.group("indent") + quoted.group("text"))
            continue
        block = None
        if _DIRECTIVE.match(line):
            continue
        out.append(_IMAGE.sub("", line))
    text = "\n".join(out)
    text = re.sub(r"\n[ \t]*(?:\n[ \t]*)+\n", "\n\n", text)
    return text.strip("\n")
