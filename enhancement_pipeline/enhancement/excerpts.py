"""What a note quotes of a resolution: its first actionable sentences. Pure functions.

A resolution as ``ticket_history`` stores it is the plain text of SDP's HTML: headings and list items are
lines of their own, and articles turned into tickets carry documentation habits ("To resolve this issue,
follow these steps:", "For more information, see ..."). A note that quotes the opening 320 characters
quotes a heading ("Method 1"), an empty bullet or a pointer to further reading as often as the fix. Here a
resolution is split into lines and sentences; headings, bare markers and boilerplate are passed over,
and the excerpt starts at the first sentence that tells the technician to do something (an imperative,
possibly after "To fix this issue,"; or "you can/must/should ..."), then takes what follows while it fits.
A resolution with no such sentence is quoted from its first sentence that is not a heading or boilerplate.

Why our own rules: sentence splitters and part-of-speech taggers (spaCy, NLTK) are large models for what is
here one question about the first word of a short line; the rules are measured on the shipped articles by
``enhancement_pipeline_tests/test_enhancement/test_excerpts.py``.
"""

from __future__ import annotations

import re

from enhancement_pipeline.enhancement.grounding import LIST_ITEM, SENTENCE_END

MAX_EXCERPT_CHARS = 320

# Verbs a fix starts with (lower case, as the imperative is written at the start of a sentence).
_ACTION_VERBS = frozenset("""
add adjust allow apply approve assign back block browse change check choose clean clear click close compact
configure confirm connect contact convert copy create deactivate decrease delete deploy detach disable
disconnect dismount download drag edit empty enable ensure enter exclude expand export extend find fix flush
follow force format go grant import increase install launch let locate log make map migrate modify mount move
navigate open point press prevent promote provision re-create re-enable re-register rebuild reboot recreate
reduce re-add refresh register reinstall reconfigure reconnect recover register re-run release remove rename
repair replace reset resize restart restore resubmit retry revert review revoke right-click run save scan search
select send set sign specify start stop switch sync synchronize tap temporarily type turn unblock uncheck
uninstall unlock update upgrade upload use verify wait
""".split())
# "To resolve this issue, ...", "To work around this problem, ...", "In Outlook, ...", "If X, ..." before the verb.
_LEAD_IN = re.compile(r"^(?:(?:to\s+(?:resolve|fix|work\s+around|correct|avoid|prevent|solve|address|do\s+this)"
                      r"|in|on|from|after|before|then|first|next|finally|if|when|alternatively|otherwise)\b"
                      r"[^.,;:]{0,120},\s*)", re.IGNORECASE)
_YOU_CAN = re.compile(r"\byou\s+(?:can|must|should|need\s+to|have\s+to|may\s+have\s+to)\s+(?:also\s+)?([a-z-]+)",
                      re.IGNORECASE)
# Sentences that point elsewhere or warn in general, never the fix itself.
_BOILERPLATE = re.compile(
    r"^(?:for\s+more\s+information\b|for\s+information\s+about\b|for\s+the\s+steps\b|for\s+details\b"
    r"|this\s+article\s+(?:contains|describes|applies)\b|this\s+section,\s+method,\s+or\s+task\b"
    r"|(?:make\s+sure|be\s+sure)\s+(?:that\s+)?you\s+(?:back\s+up|know\s+how\s+to)\b|serious\s+problems\s+might\s+occur\b"
    r"|go\s+to\s+(?:the\s+)?microsoft\s+(?:community|support)\b|(?:post|ask)\b[^.]{0,40}\bforums?\b"
    r"|if\s+this\s+(?:fix|resolution|solution)\s+doesn't\b|contact\s+(?:microsoft\s+)?support\b"
    r"|(?:the\s+)?following\s+articles?\s+may\s+help\b|see\s+also\b|note:?$|important:?$|warning:?$)",
    re.IGNORECASE)
# An intro that only announces a list ("follow these steps:", "do one of the following:").
_ANNOUNCES = re.compile(r"(?:follow(?:ing)?\s+(?:these\s+|the\s+following\s+)?(?:steps|methods)|one\s+of\s+the\s+"
                        r"following|the\s+following\s+(?:steps|methods|options|workarounds)|as\s+follows)\W*:?$",
                        re.IGNORECASE)
# "Method 2: Stay the correct size" names a part, then says something: the label goes, the sentence stays.
_PART_LABEL = re.compile(r"^(?:method|option|resolution|workaround|solution|step|fix|scenario|cause)\s*\d*\s*"
                         r"(?:[:–—]|-\s)\s*", re.IGNORECASE)
_TERMINAL = re.compile(r"[.!?:;]$")


def _is_heading(line: str) -> bool:
    """A line that names a part ("Method 1", "Resolution for Cause 2", "Workaround") rather than says
    something: no sentence punctuation at its end and at most eight words."""
    return not _TERMINAL.search(line) and len(line.split()) <= 8


def _is_actionable(sentence: str) -> bool:
    rest = _LEAD_IN.sub("", sentence, count=1)
    first = re.match(r"[\"'(]*([A-Za-z-]+)", rest)
    if first and first.group(1).lower() in _ACTION_VERBS:
        return True
    you = _YOU_CAN.search(sentence)
    return bool(you and you.group(1).lower() in _ACTION_VERBS)


def _units(text: str) -> list[str]:
    """The resolution's sentences in order, each list item's text a unit of its own; headings, bare
    markers and boilerplate left out."""
    units = []
    for raw in text.splitlines():
        line = LIST_ITEM.sub("", raw.strip()).strip()
        line = _PART_LABEL.sub("", re.sub(r"^[-*+•]\s*", "", line).strip())
        if not line or not re.search(r"[A-Za-z]{2}", line) or _is_heading(line):
            continue
        for sentence in SENTENCE_END.split(line):
            sentence = _PART_LABEL.sub("", sentence.strip())
            if sentence and not _BOILERPLATE.match(sentence):
                units.append(sentence)
    return units


def resolution_excerpt(text: str | None, max_chars: int = MAX_EXCERPT_CHARS) -> str:
    """The first actionable sentences of ``text`` (see the module docstring), whitespace flattened, at most
    ``max_chars`` characters (a single longer sentence is cut between words and ends with " …"); "" when
    the text holds no sentence at all."""
    units = _units(text or "")
    start = next((i for i, u in enumerate(units) if _is_actionable(u) and not _ANNOUNCES.search(u)), None)
    if start is None:
        start = next((i for i, u in enumerate(units) if not _ANNOUNCES.search(u)), 0)
    picked: list[str] = []
    used = 0
    for unit in units[start:]:
        unit = re.sub(r"\s+", " ", unit)
        if _ANNOUNCES.search(unit) and picked:
            break  # the next part is a list of its own: what was picked is one complete step
        if not unit.endswith((".", "!", "?", ":", ";")):
            unit += "."
        if used + len(unit) + (1 if picked else 0) > max_chars:
            if not picked:
                cut = unit[:max_chars - 2].rsplit(" ", 1)[0]
                picked.append(cut + " …")
            break
        picked.append(unit)
        used += len(unit) + (1 if len(picked) > 1 else 0)
    return " ".join(picked)
