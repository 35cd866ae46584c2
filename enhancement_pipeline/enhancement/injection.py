"""Text in tickets, resolutions and articles that addresses a language model. Pure functions.

Prompt injection cannot be recognised reliably, so this is not the defence: the prompt delimits all data
(``prompts.py``) and the output checks (``grounding.py``) remove what is not grounded in the context. It
adds two things: the model is told which items carry such text, and the note may not repeat any of it
(``echoes``), so an instruction that slipped through as a "fix" is caught by its words.

Why our own patterns: the libraries that classify injections are models of their own (a second model call
per ticket, and a second provider seeing the data); these cues are the phrasings of the published attack
collections (instruction override, role-play, fake role tags, prompt extraction, exfiltration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CUES = re.compile(r"""(?imx)
    \b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}?
        \b(?:instructions?|rules?|prompt|guidelines|directions|context|above|everything)\b
  | \b(?:new|updated|real|actual|hidden|secret)\s+(?:instructions?|rules?|task|prompt)\b
  | \b(?:system|developer|initial|original)\s+(?:prompt|message|instructions?)\b
  | \byou\s+are\s+(?:now|no\s+longer|actually|DAN)\b | \bfrom\s+now\s+on\b | \bact\s+as\b | \bpretend\b
  | \brole-?play\b | \bjailbreak | \bdeveloper\s+mode\b | \bdo\s+anything\s+now\b
  | </?\s*(?:system|assistant|user|instructions?|im_start|im_end|context|ticket)\b | <\|[a-z_]+\|>
  | \[/?(?:INST|SYS|SYSTEM)\] | ^\s*(?:system|assistant)\s*: | \#\#\#\s*(?:system|instruction)
  | \b(?:reveal|print|repeat|output|show|leak|dump)\b[^.\n]{0,30}?\b(?:prompt|instructions|rules|system\s+message)\b
  | \b(?:post|send|forward|email|e-mail|publish|upload|copy)\b[^.\n]{0,40}?
        \b(?:this|the|your)\s+(?:note|reply|answer|response|output|ticket)\b[^.\n]{0,40}?\b(?:to|at|on)\b
  | \b(?:add|write|include|put|insert|append|say)\b[^.\n]{0,30}?\b(?:to|in|into)\s+(?:the|your)\s+
        (?:note|answer|reply|response|output)\b
  | \b(?:note|answer|reply|response|output)\s+(?:must|should|shall|has\s+to)\s+(?:say|read|contain|include|state|be)\b
  | \boverride\s*: | ```\s*(?:system|assistant|instructions?)\b | ^\s*(?:system|assistant)\s*$
  | \bshow_to_requester\b | \bAI\s+(?:assistant|model)\b[^.\n]{0,20}?\b(?:must|should|will)\b
    """)
_WORD = re.compile(r"[a-z0-9]+")


def addresses_a_model(text: str | None) -> bool:
    """True when ``text`` holds a phrase that speaks to a language model rather than about a fault."""
    return bool(text and _CUES.search(text))


def suspicious_spans(texts: Iterable[str | None]) -> list[str]:
    """From each text that addresses a model, the part from the first cue to its end (the instruction
    and what it asks for): the note must not repeat these words."""
    spans = []
    for text in texts:
        match = _CUES.search(text or "")
        if match:
            start = max(0, (text or "").rfind("\n", 0, match.start()) + 1)
            spans.append(text[start:])
    return spans


def shingles(text: str, size: int) -> set[tuple[str, ...]]:
    """The runs of ``size`` consecutive lower-cased words of ``text``."""
    found = words(text)
    return {tuple(found[i:i + size]) for i in range(len(found) - size + 1)}


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` as the echo check compares them."""
    return _WORD.findall(text.lower())
