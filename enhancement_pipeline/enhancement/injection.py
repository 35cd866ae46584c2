"""Text in tickets, resolutions and articles that addresses a language model. Pure functions.

Prompt injection cannot be recognised reliably, so this is not the defence: the prompt delimits all data
(``prompts.py``) and the output checks (``grounding.py``) remove what is not grounded in the context. It
adds two things: the model is told which items carry such text, and the note may not repeat any of it
(``echoes``), so an instruction that slipped through as a "fix" is caught by its words.

The cues were tuned on ordinary help-desk prose (``benchmarks/echo_false_alarms.py``): "ignore the password
prompts", a PowerShell ``-User <user>``, "email the output to the vendor" or "enable developer mode" are
not addressed to a model.

Why our own patterns: the libraries that classify injections are models of their own (a second model call
per ticket, and a second provider seeing the data); these cues are the phrasings of the published attack
collections (instruction override, role-play, fake role tags, prompt extraction, exfiltration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CUES = re.compile(r"""(?imx)
    \b(?:ignore|disregard|forget|override|bypass)\b\W+(?:\w+\W+){0,3}?(?:instructions?|guidelines|directives
        |(?<!password\s)(?<!passcode\s)(?<!login\s)(?<!logon\s)(?<!uac\s)(?<!mfa\s)(?<!credential\s)(?<!security\s)
         (?<!sign-in\s)(?<!certificate\s)(?<!command\s)(?<!cmd\s)(?<!update\s)(?<!install\s)prompts?)\b
  | \b(?:ignore|disregard|forget)\s+(?:the|this|all|any)\s+(?:context|rules)\b
  | \b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:above|before|previous)\b
  | \b(?:new|updated|real|actual|hidden|secret)\s+(?:instructions|prompt)\b
  | \b(?:system|developer|initial|original|hidden)\s+(?:prompt|instructions)\b
  | \byou\s+are\s+(?:now|no\s+longer|actually|DAN)\b | \bfrom\s+now\s+on,?\s+you\b
  | \bact\s+as\b[^.\n]{0,30}?\b(?:AI|assistant|model|bot|chatbot|DAN|unrestricted|unfiltered|jailbroken)\b
  | \bpretend\s+(?:to\s+be|you|that\s+you)\b | \brole-?play\b | \bjailbreak
  | \b(?:you(?:'re|\s+are)\s+(?:now\s+)?in|enter|switch\s+to)\s+developer\s+mode\b
  | \bdo\s+anything\s+now\b
  | </?\s*(?:system|assistant|instructions?|im_start|im_end|context|ticket)\b | </\s*user\s*> | <\|[a-z_]+\|>
  | \bassistant\s*:\s*(?:include|add|write|say|print|reveal|ignore|post|send|output|append)\b
  | (?-i:\[/?(?:INST|SYS|SYSTEM)\]) | \#\#\#\s*(?:system|instructions?)\s*(?::|$)
  | ```\s*(?:system|assistant|instructions?)\b
  | \b(?:system|admin|developer)\s+override\b | \boverride\s*:
  | \b(?:reveal|print|repeat|output|show|leak|dump|tell\s+me)\b[^.\n]{0,30}?
        (?:\b(?:your|the\s+system|the\s+initial|the\s+hidden)\s+(?:prompt|instructions|rules)\b
           |\b(?:text|words|everything)\s+above\b)
  | \b(?:post|send|forward|email|e-mail|publish|upload|copy)\b[^.\n]{0,40}?
        (?:\b(?:this|the|your)\s+(?:note|answer)\b|\byour\s+(?:output|response)\b)[^.\n]{0,40}?\b(?:to|at|on)\b
  | \b(?:add|write|include|put|insert|append|say)\b[^\n]{0,60}?\b(?:to|in|into)\s+(?:the|your)\s+
        (?:note|answer|response|output)\s*(?:[.:;,!)]|$)
  | \b(?:note|answer|response|output)\s+(?:must|should|shall|has\s+to)\s+(?:say|read|contain|include|state)\b
  | \bshow_to_requester\b | \b(?:AI|LLM|language\s+model)\b[^.\n]{0,20}?\b(?:must|should|shall|will)\b
    """)
_WORD = re.compile(r"[a-z0-9]+")


def addresses_a_model(text: str | None) -> bool:
    """True when ``text`` holds a phrase that speaks to a language model rather than about a fault."""
    return bool(text and _CUES.search(text))


def suspicious_spans(texts: Iterable[str | None]) -> list[str]:
    """From each text that addresses a model, every paragraph holding a cue, from the cue's line to the
    paragraph's end (the instruction and what it asks for): the note must not repeat these words."""
    spans = []
    for text in texts:
        for match in _CUES.finditer(text or ""):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n\n", match.end())
            span = text[start:end if end >= 0 else len(text)]
            if not spans or span not in spans[-1]:
                spans.append(span)
    return spans


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` as the echo check compares them."""
    return _WORD.findall(text.lower())


def shingles(text: str, size: int) -> set[tuple[str, ...]]:
    """The runs of ``size`` consecutive lower-cased words of ``text``."""
    found = words(text)
    return {tuple(found[i:i + size]) for i in range(len(found) - size + 1)}
