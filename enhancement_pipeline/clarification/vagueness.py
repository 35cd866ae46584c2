"""Whether a ticket is too vague to act on, and what it leaves out. Pure.

A technician can start on a ticket that says **what** is affected (an application, device, system, page or item
it names), **what happens** (an error message, code or quoted text, a symptom with its object, or evidence:
"attached", a screenshot, logs), and ideally **who** (which users, accounts, machines) and **since when**.
``assess`` finds each of these facets with regexes over the subject and description (and the key details
``triage.key_details`` extracts: error codes, hostnames, e-mail addresses, IPs, URLs, versions, which name a
system or a symptom by themselves), counts the content words (without greetings, thanks, signatures and filler),
and calls a ticket vague when it has fewer than ``MIN_CONTENT_WORDS`` of them (unless it names both what is
affected and what happens: "my laptop won't turn on"), or when it names neither what happens nor any evidence and
is still short (fewer than ``SHORT_CONTENT_WORDS``), or when it names neither what is affected nor what
happens. A request that names what it is for ("please reset the VPN password of ...") is not vague: what to do
is the request. "An error", "failed", "not working" say that something is wrong, not what: alone they are no
symptom.

The thresholds were chosen on the first half of 100 hand-labelled real help-desk tickets and measured on the
other half (``benchmarks/vagueness_quality.py``, which prints both); the facet words are generic, not the
vocabulary of one product, so that a tenant's own systems count as named when the requester names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from enhancement_pipeline.triage.key_details import key_details

MIN_CONTENT_WORDS = 5
"""Below this many content words a ticket is vague whatever it names ("Outlook broken", "help pls")."""
SHORT_CONTENT_WORDS = 14
"""A ticket this short (in content words) that neither describes what happens nor points to evidence is vague."""

FACETS = ("system", "symptom", "scope", "time")

_WORD = re.compile(r"[^\W\d_][\w'’.-]*", re.UNICODE)
_FILLER = frozenset("""
a an the and or but if then so to of in on at for from by with as is are was were be been being am do does did
i we you he she it they me us him her them my our your his its their this that these those there here
please pls plz kindly kind dear dears hi hello hey greetings good morning afternoon evening day team sir madam
regards best thanks thank thx cheers appreciated appreciate help assist assistance support urgent urgently asap
need needs want would could can will shall should may might must also just still again very much many any some
all not no yes ok okay soon possible note noted informed know let us advise your highly respected
""".split())
_PLACEHOLDER = re.compile(r"\bph_[a-z]+\b")
_EVIDENCE = re.compile(r"(?i)\b(?:attach(?:ed|ment|ments)?|screen\s?shots?|print\s?screens?|snapshots?|"
                       r"(?:logs?|traces?|stack\s?traces?)\s+(?:attached|below|file|here)|as\s+shown|see\s+below|"
                       r"(?:the|as)\s+below|below\s*[:\-]|sample)\b")
# Quoted text: double quotes or typographic single quotes; a plain apostrophe is a contraction ("it's", "I'm").
_QUOTED = re.compile(r"[\"“][^\"”]{6,}[\"”]|‘[^’]{6,}’|(?i:\b(?:message|error|says|saying|reads)\s*[:=])")
_SYMPTOM = re.compile(
    r"(?i)\b(?:error\w*|exception\w*|fail\w*|crash\w*|freez\w*|hang\w*|stuck|slow\w*|timeout|timed?\s*out|"
    r"denied|locked|reject\w*|bounce\w*|disconnect\w*|drop\w*|missing|empty|blank|wrong|incorrect|invalid|"
    r"duplicat\w*|delay\w*|pending|expired?|corrupt\w*|unreachable|keeps?\s+\w+ing|prompt\w*|loops?|"
    r"no\s+(?:sound|signal|power|internet|connection|access|network|display|picture)|"
    r"(?:won'?t|can'?t|cannot|unable\s+to|"
    r"doesn'?t|does\s+not|didn'?t|did\s+not|isn'?t|is\s+not|not)\s+(?!working\b|work\b)\w+)")
_GENERIC_SYMPTOM = re.compile(r"(?i)\b(?:not\s+working|doesn'?t\s+work|does\s+not\s+work|isn'?t\s+working|broken|"
                              r"(?:a|an|some|the)\s+(?:problem|issue)s?|problems?|issues?|error\s+has\s+occurred)\b")
_SYSTEM = re.compile(
    r"(?i)\b(?:outlook|teams|excel|word|powerpoint|onenote|sharepoint|onedrive|exchange|office|windows|mac|macos|"
    r"linux|ubuntu|android|ios|iphone|ipad|laptop|desktop|pc|computer|monitor|screen|keyboard|mouse|printer|"
    r"scanner|phone|headset|dock\w*|vpn|wi-?fi|wireless|network|internet|router|switch|firewall|server|database|"
    r"sql|oracle|sap|erp|crm|portal|website|site|browser|chrome|edge|firefox|ie|app|application|module|report|"
    r"page|screen|menu|button|field|form|dashboard|mailbox|e-?mail|calendar|folder|drive|share|file|account|"
    r"password|certificate|license|licence|backup|archive|service|queue|batch|job|api|url|link|interface|"
    r"system\s+\w+)\b")
_REQUEST = re.compile(
    r"(?i)\b(?:please|kindly|pls|plz|we\s+need\s+to|i\s+need\s+to|need\s+to|request(?:ing)?\s+to|want\s+to|"
    r"would\s+like\s+to|grateful\s+for\s+your\s+assistance\s+to|your\s+support\s+to)\s+(?:\w+\s+){0,2}?"
    r"(?:add|create|set|setup|set\s+up|update|change|amend|modify|reset|delete|remove|enable|disable|install|"
    r"uninstall|extend|unlock|reactivate|activate|deactivate|grant|give|provide|order|purchase|move|rename|"
    r"restore|implement|upgrade|allow|block|confirm|approve|schedule|register|book|assign|transfer)\b")
_GENERIC_ONLY = re.compile(r"(?i)^(?:errors?|exceptions?|fail\w*|invalid|wrong|problems?|issues?)$")
_SCOPE = re.compile(r"(?i)\b(?:users?|customers?|colleagues?|everyone|everybody|nobody|all\s+of\s+us|whole\s+team|"
                    r"only\s+(?:me|one)|branch\w*|department|office|floor|site|accounts?|tellers?|manager|staff|"
                    r"employees?|members?|clients?)\b")
_TIME = re.compile(r"(?i)\b(?:since|yesterday|today|tonight|this\s+(?:morning|afternoon|week)|last\s+\w+|ago|"
                   r"after\s+(?:the\s+)?(?:update|upgrade|restart|reboot|change|migration|install\w*)|"
                   r"every\s+(?:time|day|morning)|sometimes|intermittent\w*|always|monday|tuesday|wednesday|thursday|"
                   r"friday|saturday|sunday|january|february|march|april|june|july|august|september|october|"
                   r"november|december|\d{1,2}:\d{2}(?:\s*(?:am|pm))?|\d{1,2}\s*(?:am|pm))\b")


@dataclass(frozen=True)
class Assessment:
    """A ticket's facets (``present``: which of ``FACETS`` it states), its ``content_words``, whether it points
    to ``evidence`` (an attachment, a screenshot, logs, a quoted message), and the verdict ``vague`` with
    ``reason`` (a few words, for the run's metadata)."""

    vague: bool
    reason: str
    content_words: int
    present: frozenset[str] = field(default_factory=frozenset)
    evidence: bool = False

    @property
    def missing(self) -> tuple[str, ...]:
        """The facets the ticket does not state, in ``FACETS`` order."""
        return tuple(f for f in FACETS if f not in self.present)


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry content: not greetings, thanks, politeness or function words."""
    return [w for w in _WORD.findall(text) if w.lower().strip(".'’-") not in _FILLER]


def assess(subject: str, description: str) -> Assessment:
    """Whether the ticket (its subject and plain-text description) is too vague to act on; see the module
    docstring for the rule."""
    text = f"{subject}\n{description}"
    details = key_details(text, phone_region=None)
    named = bool(details.hostnames or details.urls or details.emails or details.ip_addresses or details.versions)
    present = set()
    if named or _SYSTEM.search(text) or _PLACEHOLDER.search(text):
        present.add("system")
    evidence = bool(_EVIDENCE.search(text) or _QUOTED.search(text))
    request = bool(_REQUEST.search(text))
    # A symptom is stated when it is more than a generic word: "an error", "failed", "not working" say that
    # something is wrong, not what.
    symptoms = [m.group(0) for m in _SYMPTOM.finditer(_GENERIC_SYMPTOM.sub(" ", text))]
    specific = [m for m in symptoms if not _GENERIC_ONLY.match(m.strip())]
    if details.error_codes or specific or _QUOTED.search(text):
        present.add("symptom")
    if _SCOPE.search(text) or details.emails or details.hostnames or details.ip_addresses:
        present.add("scope")
    if _TIME.search(text):
        present.add("time")
    words = len(content_words(text))
    if words < MIN_CONTENT_WORDS and not ({"system", "symptom"} <= present or (request and "system" in present)):
        vague, reason = True, f"{words} content words"
    elif request and "system" in present:
        vague, reason = False, "a request naming what it is for"
    elif "symptom" not in present and not evidence and words < SHORT_CONTENT_WORDS:
        vague, reason = True, f"says neither what happens nor shows it, in {words} content words"
    elif not present & {"system", "symptom"} and not evidence:
        vague, reason = True, "names neither what is affected nor what happens"
    else:
        vague, reason = False, "states " + (", ".join(f for f in FACETS if f in present) or "evidence")
    return Assessment(vague, reason, words, frozenset(present), evidence)
