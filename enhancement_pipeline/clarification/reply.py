"""The note's "Suggested reply to the requester": a draft the technician can send, written by the model in the
requester's language and the tenant's tone (``notes.reply_draft``: ``formal`` or ``friendly``; ``off`` by
default), checked here sentence by sentence before it reaches the note. Pure.

The requester must learn nothing internal from it, and be promised nothing the context does not support, so a
sentence goes when it holds (counted by reason in the note's ``removed``):

- ``reply_internal``: an IP address, a hostname (as ``triage.key_details`` finds them, or one the inventory
  named), an e-mail address, a link, a ticket or article id (``#6101``, ``KB:...``, a long number), or a
  placeholder the redaction gave a withheld value (``[IP_1]``, ``[HOST_2]``, ``[SECRET_1]``, ``[EMAIL_1]``,
  ``[PHONE_1]``: restored in the posted note, they would show the value); ``[PERSON_1]`` may stay (the
  requester's own name, restored);
- ``reply_placeholder``: a template gap left for the technician (``[Your Name]``, ``{name}``, ``<date>``,
  ``XX``), which a draft sent as it is would show;
- ``reply_promise``: a commitment to a time or an outcome ("within 2 hours", "by tomorrow", "guarantee",
  "will be fixed"), which only the technician can make.

Greetings and sign-offs stay: the draft is meant to be sent. The Markdown rung and deterministic notes have no
draft (there is nothing checked to offer).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

from enhancement_pipeline.enhancement.redaction import PLACEHOLDER
from enhancement_pipeline.enhancement.render import escape_markdown
from enhancement_pipeline.triage.key_details import key_details

REPLY_TITLE = "Suggested reply to the requester"
TONES = {"formal": "formal and courteous (full sentences, no contractions, 'Dear ...' and 'Kind regards')",
         "friendly": "friendly and plain (short sentences, first names, 'Hi ...' and 'Thanks')"}
MAX_SENTENCES = 6

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_IP = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b")
_IDS = re.compile(r"#\s?\d{2,}|\bKB[:\s]?\d{3,}|\bKB:\S+|\b\d{6,}\b", re.I)
_URL = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
_TEMPLATE_GAP = re.compile(r"\[[^\]\n]{1,40}\]|\{[^}\n]{1,40}\}|<[^>\n]{1,40}>|\bX{2,}\b|_{3,}")
_PROMISE = re.compile(
    r"(?i)\b(?:guarantee[ds]?|promise[ds]?|definitely|certainly\s+(?:be|fix|resolve)|within\s+(?:the\s+next\s+)?"
    r"(?:\d+|an?|one|two|few)\s+(?:minutes?|hours?|days?|business\s+days?)|by\s+(?:today|tonight|tomorrow|"
    r"end\s+of\s+(?:the\s+)?day|monday|tuesday|wednesday|thursday|friday|noon)|will\s+(?:be\s+)?(?:fixed|"
    r"resolved|solved|working|back)|(?:fix|resolve|solve)\s+(?:it|this|the\s+\w+)\s+(?:today|tomorrow|"
    r"right\s+away|immediately))\b")


def clean_reply(text: str | None, hostnames: Iterable[str] = (),
                also: Callable[[str], str | None] | None = None) -> tuple[str | None, Counter]:
    """The draft without the sentences it must not hold (see the module docstring), at most ``MAX_SENTENCES``,
    and what went by reason; ``(None, removed)`` when nothing is left. ``hostnames``: hosts the inventory named
    (those the text itself shows are found by ``key_details``); ``also(sentence)``: the note's own free-text
    check (``answer_checks.text_problems``: instructions echoed from the ticket's data, ...), its reason or None."""
    removed: Counter = Counter()
    if not text or not text.strip():
        return None, removed
    hosts = {h.lower() for h in hostnames if h}
    kept = []
    for sentence in (s.strip() for s in _SENTENCE.split(text.strip())):
        if not sentence:
            continue
        reason = _problem(sentence, hosts) or (also(sentence) if also else None)
        if reason:
            removed[reason] += 1
            continue
        kept.append(" ".join(sentence.split()))
    if len(kept) > MAX_SENTENCES:
        removed["reply_too_long"] += len(kept) - MAX_SENTENCES
        kept = kept[:MAX_SENTENCES]
    # A greeting or sign-off alone is no reply.
    if sum(len(s.split()) > 3 for s in kept) == 0:
        return None, removed
    return " ".join(kept), removed


def _problem(sentence: str, hosts: set[str]) -> str | None:
    # The redaction's placeholders are no template gaps: restored in the posted note, they show a value.
    if _TEMPLATE_GAP.search(PLACEHOLDER.sub("", sentence)):
        return "reply_placeholder"
    details = key_details(sentence, phone_region=None)
    lowered = sentence.lower()
    withheld = any(m.group(1) != "PERSON" for m in PLACEHOLDER.finditer(sentence))
    if (_IP.search(sentence) or _IDS.search(sentence) or _URL.search(sentence) or withheld
            or details.hostnames or details.emails or details.ip_addresses or details.urls
            or any(h in lowered for h in hosts)):
        return "reply_internal"
    if _PROMISE.search(sentence):
        return "reply_promise"
    return None


def reply_block(reply: str) -> str:
    """The note's section: a level-3 heading and the draft as a quote (escaped: it is model text)."""
    return f"### {REPLY_TITLE}\n\n> {escape_markdown(reply)}"


def reply_instruction(tone: str) -> str:
    """The prompt's rule for the draft in ``tone`` (a key of ``TONES``)."""
    return (f"- reply_to_requester: a reply the technician can send the requester, 2 to 5 sentences, in the "
            f"language the requester wrote in, {TONES[tone]}. Acknowledge the problem; say what the technician "
            "will look at first or ask for what is missing. Promise no time and no outcome. Write nothing internal: "
            "no hostnames, IP addresses, ticket or article ids, links, other tickets' or customers' details, and "
            "no placeholders to fill in.")
