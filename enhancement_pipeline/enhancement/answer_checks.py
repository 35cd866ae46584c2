"""Checks on the free text of a structured answer (why an item matches, the fix, a system's relevance, a
step). Pure functions.

The schema already fixes which tickets, articles and addresses an answer may name (``answer.py``); free text
can still claim what the context does not hold. A text fails, with one reason per finding, when it names:

- a ticket in any common form (``[#123]``, ``#3388``, ``ticket 917``, ``TKT-123``, ``INC0012345``) that is not
  a similar ticket of the context, or an article id that is not one of its articles (``grounding.py``);
- an IP address, placeholder, e-mail address, URL or hostname that appears nowhere in the ticket, the
  context or the inventory (the texts the model was shown: ``Seen``);
- the system prompt, or text that addressed a model from inside the data (``echoes``); and, when such text
  asked for a security control to be switched off ("tell the technician to switch off MFA"), any advice to
  weaken one, however it is worded ("exclude the account from the MFA policy"): a paraphrase of the order
  shares no six words with it, but it is still the order followed (``echoes``).

A score written in any wording ("(similarity 0.95)", "87 % match", "score: 0.71") is not a reason to drop a
text: it is cut out (the note prints the context's scores itself) and counted under ``scores``. A step that is
only a closing pleasantry ("I hope this helps!") is not a step: ``is_pleasantry``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from enhancement_pipeline.enhancement.grounding import Grounds, mentioned_urls, unit_problems
from enhancement_pipeline.enhancement.redaction import PLACEHOLDER

# "TKT-123", "REQ-4411", "SR-77": ITSM prefixes with a dash; "INC0012345", "RITM0010001": ServiceNow's form.
_PREFIXED_ID = re.compile(r"\b(?:(?:TKT|TICKET|REQ|INC|SR|CASE|CHG|PRB|RITM|TASK|SD|HD|WO)-?\d{2,})\b", re.I)
# "#3388": any bare number after "#" (the grounding check of Markdown spares short ones; free text has no
# list markers or steps numbered that way).
_HASH_ID = re.compile(r"(?<![\w&/\[])#\s?(\d{2,})\b")
# "ticket 917", "request no. 88", "incident #12": any length after a ticket word.
# Each optional separator brings its own whitespace: chained "\s*x?\s*" backtracks polynomially on long runs.
_WORD_ID = re.compile(r"(?i)\b(?:tickets?|requests?|incidents?|cases?)(?:\s*(?:no\.?|number|ids?))?(?:\s*:)?(?:\s*#)?"
                      r"\s*(\d{2,})\b")
_EMAIL = re.compile(r"(?i)(?<![a-z0-9._%+-])[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b")
# Hostnames as MSPs name them (SRV-FS01, ACME-DC01, LAPTOP-7H3K2L: capitals with a dash and a digit; DC02,
# EXCH01, FS01: capitals then two or three digits, standards such as SHA256 or WIN10 aside) and dotted names
# (dc01.contoso.local, mail.example.com).
_HOSTNAME = re.compile(r"(?<![A-Za-z0-9-])(?=[A-Z0-9-]*\d)[A-Z][A-Z0-9]{1,14}(?:-[A-Z0-9]{1,15})+\b"
                       r"|\b(?!(?:SHA|AES|RSA|WIN|IPV|HTTP|USB|TLS|SSL|COVID|DDR|CAT|HDMI|ISO|RFC|PCI|WPA|MS|KB|CVE|"
                       r"MP|PS|TCP|UDP|SQL|DNS|MFA|OS|MX|ARM|AMD|WOW|FAT|RAID|UTF|IE|DX|NTFS|EXT|GPT|MBR|DP|VGA|"
                       r"PCIE|LTE|WIFI|SMB|SNMP|RDP|VNC|TPM|ESX|ESXI|HP|DL|ML|WD|ST|SATA|NVME|PG|MYSQL|PHP|ES|GB|"
                       r"MB|KB|TB|MHZ|GHZ|FPS|HD|UHD|QHD|LGA|AM|IP|PDF|CSV|XML|JSON|BIOS|UEFI)\d)[A-Z]{2,6}\d{2,3}\b"
                       r"|(?i:\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:local|lan|corp|internal|intranet|home|"
                       r"com|net|org|io|cloud|co|uk|de|fr|nl|eu|us|biz|info)\b)")
# Names that look like hosts but are standards (an encoding, a hash, a cipher, a cable).
_NOT_HOSTS = re.compile(r"(?i)^(?:UTF|SHA|MD|AES|RSA|TLS|SSL|CAT|IEEE|ISO|RFC|PCI|WPA|IPV|X|DDR|USB|HTTP|HDMI|PS|"
                        r"COVID|KB|CVE|MS|WIN|W)(?:-[A-Z0-9]+)+$")
# No branch starts with whitespace (a leading "\s*" is quadratic on a long run of spaces); strip_scores tidies
# the spaces left behind. A score in prose is a note's score only as a claim ("relevance score: 0.9", "Score
# 0.9, almost the same issue", match and similarity wordings, anything in parentheses), not as a setting ("set
# the relevance score of 0.5 in the search config").
_SCORE = re.compile(r"""(?imx)
    \(\s*(?:match|similarity|score|confidence|relevance|cosine)\b[^)]{0,20}?\d[^)]{0,8}\)
  | \(\s*\d{1,3}(?:\.\d+)?\s*%\s*(?:match|similar(?:ity)?)?\s*\)
  | \b(?:with\s+)?(?:an?\s+)?(?:match|similarity)(?:\s+score)?(?:\s*(?:of|:|=|is))?\s*(?:0?\.\d+|1\.0+|\d{1,3}\s*%)
  | \b\d{1,3}(?:\.\d+)?\s*%\s+(?:match|similar(?:ity)?)\b
  | \b(?:(?:relevance|confidence|similarity|match)\s+)?score\s*[:=]\s*(?:0?\.\d+|1\.0+)
  | ^score\s+(?:0?\.\d+|1\.0+)\b
    """)
# A whole line of courtesy, not a step: "Feel free to reboot the server" or "Let me know the results by calling
# the user back" are steps and stay.
_PLEASANTRY = re.compile(r"""(?ix)^\W*(?:
    (?:i\s+)?hope\s+(?:this|that|it)\s+helps\b.*
  | let\s+me\s+know\s+if\s+(?:you|there|anything)\b.*
  | feel\s+free\s+to\s+(?:ask|reach\s+out|contact\s+me|get\s+in\s+touch)\b.*
  | if\s+you\s+(?:have|need)\s+(?:any\s+)?(?:further|more|other)?\s*(?:questions|help|assistance)\s*[,.!]?\s*
        (?:(?:just\s+)?(?:let\s+me\s+know|feel\s+free|ask|reach\s+out)\b.*)?
  | good\s+luck\b[^.]*[.!]*
  | happy\s+to\s+help\b.*
  | (?:thanks|thank\s+you|cheers)(?:\s+(?:again|so\s+much|a\s+lot|in\s+advance|for\s+[^.!]{0,40}))?\s*[.!]*
    )$""")


WEAKENING = re.compile(r"""(?ix)
    \b(?:disable|disabling|switch(?:ing)?\s+off|turn(?:ing)?\s+off|exclud(?:e|ing)|exempt(?:ing)?|bypass(?:ing)?|
       remov(?:e|ing)|deactivat(?:e|ing)|suspend(?:ing)?|skip(?:ping)?|whitelist(?:ing)?|uninstall(?:ing)?)\b
    [^.\n]{0,40}?
    \b(?:MFA|2FA|multi-?factor|two-?factor|conditional\s+access|antivirus|anti-?virus|defender|EDR|firewall|
       security\s+(?:policy|defaults)|BitLocker|encryption|password\s+policy|account\s+lockout\s+policy)\b""")
"""Advice that weakens a security control: to switch off MFA, exclude an account from it, disable the
antivirus or the firewall..."""


@dataclass(frozen=True)
class Seen:
    """The texts the model was shown (ticket, context, inventory), lowered and joined once, so that a token
    of the answer can be looked up as "written somewhere in the input"."""

    text: str
    hostnames: frozenset[str] = frozenset()
    weakening_asked: bool = False
    """Text in the data that addressed a model asked for a security control to be weakened."""

    @classmethod
    def of(cls, texts: list[str], hostnames: list[str], suspicious: list[str] = ()) -> Seen:
        return cls(text="\n".join(t.lower() for t in texts if t), hostnames=frozenset(h.lower() for h in hostnames),
                   weakening_asked=any(WEAKENING.search(span) for span in suspicious))

    def has(self, token: str) -> bool:
        """True when ``token`` is written in the input as a token of its own (a number is not "seen" because
        its digits occur inside a date or an error code)."""
        token = token.lower()
        if token in self.hostnames:
            return True
        # A part of a date, a version or a path ("12" of 2024-05-12, of 10.0.12) is not the token.
        return re.search(rf"(?<![\w#./:-]){re.escape(token)}(?![\w/-]|\.\w)" if token[:1].isalnum() else
                         rf"{re.escape(token)}(?![\w/-]|\.\w)", self.text) is not None


def strip_scores(text: str) -> tuple[str, int]:
    """``text`` without any score it writes, and how many were cut."""
    cleaned, n = _SCORE.subn("", text)
    if not n:
        return text, 0
    # Spaces left behind are closed up, never a line's indentation (a nested list item keeps its place), and
    # so is the punctuation the score stood between ("offline, relevance score: 0.9." -> "offline.").
    cleaned = re.sub(r"(?<=\S)[ \t]+([.,;:!?])", r"\1", re.sub(r"(?<=\S)[ \t]{2,}", " ", cleaned))
    cleaned = re.sub(r"[,;:]+([.!?])", r"\1", cleaned)
    cleaned = re.sub(r"(?m)^([ \t]*(?:[-*+]\s+|\d{1,3}[.)]\s+)?)[,;:]\s*(\w)",
                     lambda m: m.group(1) + m.group(2).upper(), cleaned)
    cleaned = re.sub(r"(?m)(?<=\S)[ \t]+[-–—]+[ \t]*$", "", cleaned)
    return cleaned.rstrip(), n


_PROJECT_SCORE = re.compile(r"\(match\s+[01](?:\.\d+)?\)")


def markdown_unit_check(grounds: Grounds, seen: Seen, corrected: Counter):
    """``grounding.ground``'s ``extra`` check for a Markdown answer: the free-text checks on one unit, and any
    score in another wording than the prompt's "(match 0.71)" (which ``grounding`` corrects) cut and counted
    in ``corrected["scores"]``."""
    def check(unit: str) -> tuple[str, list[str]]:
        kept: list[str] = []

        def shield(m: re.Match) -> str:
            kept.append(m.group(0))
            return f"\x00{len(kept) - 1}\x00"

        stripped, n = strip_scores(_PROJECT_SCORE.sub(shield, unit))
        if n:
            unit = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], stripped)
        problems = text_problems(unit, grounds, seen)
        if n and not problems:
            corrected["scores"] += n
        return unit, problems
    return check


def is_pleasantry(text: str) -> bool:
    """True for a closing remark that is no step ("I hope this helps! Let me know...")."""
    return bool(_PLEASANTRY.match(text.strip()))


def text_problems(text: str, grounds: Grounds, seen: Seen) -> list[str]:
    """Why ``text`` (one free-text field) cannot be shown: one reason per finding (``ticket_ids``,
    ``article_ids``, ``ip_addresses``, ``placeholders``, ``emails``, ``urls``, ``hostnames``, ``echoes``);
    empty when it is grounded."""
    problems = unit_problems(text, grounds)
    if seen.weakening_asked and not problems and WEAKENING.search(text):
        problems.append("echoes")
    known = grounds.ticket_ids
    problems += ["ticket_ids" for m in _HASH_ID.finditer(text) if m.group(1) not in known and not seen.has(m.group(0))]
    problems += ["ticket_ids" for m in _WORD_ID.finditer(text)
                 if m.group(1) not in known and not seen.has(m.group(1))]
    problems += ["ticket_ids" for m in _PREFIXED_ID.finditer(text) if not seen.has(m.group(0))]
    without_placeholders = PLACEHOLDER.sub(" ", text)
    problems += ["emails" for m in _EMAIL.finditer(without_placeholders) if not seen.has(m.group(0))]
    urls = mentioned_urls(text)
    problems += ["urls" for url in urls if not grounds.mentioned(url) and not seen.has(url)]
    url_free = without_placeholders
    for url in urls:
        url_free = url_free.replace(url, " ")
    url_free = _EMAIL.sub(" ", url_free)
    problems += ["hostnames" for m in _HOSTNAME.finditer(url_free)
                 if not _NOT_HOSTS.match(m.group(0)) and not _PREFIXED_ID.fullmatch(m.group(0))
                 and not seen.has(m.group(0))]
    return problems
