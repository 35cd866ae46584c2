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
  | \b(?:dear|hey|hi|hello|attention)(?:\s*[,:]+)?\s+(?:the\s+|any\s+|an\s+)?(?:AI|LLM|chatbot|language\s+model)\b
  | \bto\s+(?:the|any|an|you)\s+(?:AI|LLM|chatbot|language\s+model)(?:\s+(?:assistant|model|bot|tool))?
        \s+(?:reading|processing|summari[sz]ing|writing|handling|that|who|which)\b
    """)
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_START = re.compile(r"[.!?]\s+(?=[A-Z(\[\"'])")


def addresses_a_model(text: str | None) -> bool:
    """True when ``text`` holds a phrase that speaks to a language model rather than about a fault."""
    return bool(text and _CUES.search(text))


def suspicious_spans(texts: Iterable[str | None]) -> list[str]:
    """From each text that addresses a model, every paragraph holding a cue, from the cue's sentence to the
    paragraph's end (the instruction and what it asks for): the note must not repeat these words."""
    spans = []
    for text in texts:
        for match in _CUES.finditer(text or ""):
            # From the sentence the cue is in (a requester's whole ticket can be one line), to the paragraph's end.
            start = max(text.rfind("\n", 0, match.start()) + 1,
                        max((m.end() for m in _SENTENCE_START.finditer(text, 0, match.start())), default=0))
            end = text.find("\n\n", match.end())
            span = text[start:end if end >= 0 else len(text)]
            if not spans or span not in spans[-1]:
                spans.append(span)
    return spans


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` as the echo check compares them."""
    return _WORD.findall(text.lower())


_DETERMINERS = frozenset("a an the this that these those my your his her its our their".split())


def shingles(text: str, size: int) -> set[tuple[str, ...]]:
    """The runs of ``size`` consecutive lower-cased words of ``text``, every article and possessive counted as
    one and the same word: "switch off MFA on the account" repeats "switch off MFA on my account"."""
    found = ["the" if w in _DETERMINERS else w for w in words(text)]
    return {tuple(found[i:i + size]) for i in range(len(found) - size + 1)}
