"""Replace personal data and secrets by stable placeholders before any text reaches a model provider.

One ``Redactor`` serves one note: every text that goes into the prompt (the ticket, the similar tickets'
resolutions, the articles, the inventory) passes through ``redact``; the same value always gets the same
placeholder (``[EMAIL_1]``, ``[PHONE_2]``, ``[PERSON_1]``, ``[SECRET_3]``, and ``[IP_1]``/``[HOST_1]`` for a
tenant that does not keep addresses), so the model can still say "reply to [EMAIL_1]". ``restore`` puts
the values back into the note that goes to SDP, where technicians already see the ticket; secrets are
never put back (a password copied into a note is a second copy of the password).

What is found, and by what:
- secrets: the token formats of Yelp's ``detect-secrets`` (AWS, GitHub, GitLab, Slack, Stripe, JWT, Azure
  storage keys, ...), plus our own rules for what that library looks for only in source code: PEM private
  key blocks, passwords in URLs, ``Bearer`` tokens, and ``password: X`` / ``pwd=X`` / "the password is X"
  written in prose or connection strings (the value must look like a credential: a digit, a symbol or
  mixed case, so "the password is expired" stays);
- e-mail addresses: a regex (no library finds addresses in running text; validators check whole strings);
- phone numbers: Google's libphonenumber (``phonenumbers``) in the tenant's region, which knows national
  formats; dotted runs of digits (versions, addresses) and the ticket ids the note cites are left alone;
- people: the requester's and technician's names from SDP (whole name and each part of three letters or
  more), and names written after a greeting or before a sign-off ("Hi Dana,", "Regards,\\nDana Scully").
  Names that appear nowhere near such a cue are not found: there is no named-entity model here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import phonenumbers
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from enhancement_pipeline.inventory.ip_addresses import extract_ips, is_ip_address
from enhancement_pipeline.models import Ticket

KINDS = ("SECRET", "EMAIL", "PHONE", "PERSON", "IP", "HOST")
RESTORED_KINDS = frozenset({"EMAIL", "PHONE", "PERSON", "IP", "HOST"})
"""Kinds put back into the posted note. ``SECRET`` is not: the note shows ``[secret withheld]``."""

PLACEHOLDER = re.compile(r"\[(SECRET|EMAIL|PHONE|PERSON|IP|HOST)_(\d+)\]")

_TOKEN_HINTS = ("_authToken", "T3BlbkFJ")
"""Literals without which some formats cannot match: npm's ``//.+/:_authToken=`` and OpenAI's
``sk-[...]*[...]{20}T3BlbkFJ`` backtrack over the whole line from every ``//`` / ``sk-`` (2.8 s and 3.3 s on a
20 000-character line of them), so they run only on a text that holds their literal."""
_TOKEN_FORMATS = [(pattern, next((hint for hint in _TOKEN_HINTS if hint in pattern.pattern), None))
                  for detector in (
    AWSKeyDetector, AzureStorageKeyDetector, DiscordBotTokenDetector, GitHubTokenDetector, GitLabTokenDetector,
    JwtTokenDetector, MailchimpDetector, NpmDetector, OpenAIDetector, PypiTokenDetector, SendGridDetector,
    SlackDetector, SquareOAuthDetector, StripeDetector, TelegramBotTokenDetector, TwilioKeyDetector,
) for pattern in detector.denylist]
"""(pattern, a literal it needs or None) for each token format."""
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-.+/=]*")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END [A-Z ]*PRIVATE KEY[A-Z ]*-----|\Z)", re.S)
_URL_PASSWORD = re.compile(r"(?<=://)[^:/?#@\s]+:([^@/\s]+)(?=@)")
_BEARER = re.compile(r"\b(?:Bearer|Basic)\s+([A-Za-z0-9_\-.+/=~]{12,})")
_KEYWORD = re.compile(
    r"(?i)(?<![\[\w])(?:password|passwd|passphrase|pwd|pass|passcode|pin|secret|client[_ -]?secret|api[_ -]?key|"
    r"apikey|access[_ -]?key|secret[_ -]?key|auth[_ -]?token|access[_ -]?token|token|shared[_ -]?key|sig|"
    r"passwort|kennwort|mot de passe|contrase[ñn]a|wachtwoord|senha|l[öo]senord|salasana|has[łl]o)(?!\w)"
    r"(?:\s+(?:is|was|to|set to|reset to|changed to|of|ist|est|es))?\s*[:=]?\s*[\"'`]?(?![\[-])"
    r"([^\s\"'`;,&]{3,}[^\s\"'`;,&.])")
# Unicode-aware (\w): "jürgen.müller@contoso.de" is an address too.
_EMAIL = re.compile(r"(?<![\w.+-])\w[\w.%+-]*@\w(?:[\w-]*\w)?(?:\.\w(?:[\w-]*\w)?)+")
_DOTTED_DIGITS = re.compile(r"^\d+(?:\.\d+){2,}$")
_FQDN = re.compile(r"(?<![\w@.-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                   r"(?:[A-Za-z]{2,24}|local|lan|corp|internal)(?![\w-])")
_NAME = r"[A-Z][a-z'’\-]+(?:\s+[A-Z][a-z'’\-]+){0,2}"
_GREETING = re.compile(rf"(?m)(?:^|(?<=[\s>]))(?:Hi|Hello|Dear|Hey|Thanks|Thank you|Cheers)[ \t]+({_NAME})\s*[,!:]")
_SIGN_OFF = re.compile(rf"(?mi)^[ \t]*(?:regards|kind regards|best regards|best|thanks|thank you|cheers|sincerely)"
                       rf"[ \t]*,?[ \t]*\r?\n[ \t]*(?-i:({_NAME}))[ \t]*$")
_MY_NAME = re.compile(rf"\b(?:[Mm]y name is|[Tt]his is|[Cc]ontact)[ \t]+({_NAME})\b")
_NOT_NAMES = frozenset({"Team", "Support", "All", "There", "Everyone", "Helpdesk", "Service", "Desk", "IT",
                        "Sir", "Madam", "Again", "In", "Advance", "The", "For", "You"})


@dataclass(frozen=True)
class Privacy:
    """A tenant's choices: whether IP addresses and hostnames may reach the model as they are, and the
    region whose national phone formats are found."""

    keep_ip_addresses: bool = True
    keep_hostnames: bool = True
    phone_region: str | None = "US"

    def redactor(self, ticket: Ticket, **options) -> Redactor:
        """A redactor for ``ticket`` under these choices (``options``: ``hosts``, ``keep``)."""
        return Redactor.for_ticket(ticket, phone_region=self.phone_region, keep_ip_addresses=self.keep_ip_addresses,
                                   keep_hostnames=self.keep_hostnames, **options)


def _looks_like_credential(value: str) -> bool:
    """True for values a person would choose as a secret, false for English words ("expired", "reset")."""
    return (any(c.isdigit() for c in value) or any(not c.isalnum() for c in value)
            or any(c.isupper() for c in value[1:]))


@dataclass
class Redactor:
    """Placeholders for one note's texts; ``redact`` every prompt text, ``restore`` the model's answer.

    ``people``: names known to be people (SDP requester and technician). ``hosts``: hostnames to hide when
    ``keep_hostnames`` is False (the inventory's, besides any fully qualified name). ``keep``: strings that
    must survive as they are (the ticket ids the note cites). ``phone_region``: ISO 3166 code for national
    phone formats (``None``: only ``+``-prefixed international numbers are found).
    """

    people: Iterable[str] = ()
    hosts: Iterable[str] = ()
    keep: Iterable[str] = ()
    phone_region: str | None = "US"
    keep_ip_addresses: bool = True
    keep_hostnames: bool = True
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict, init=False)
    _by_placeholder: dict[str, tuple[str, str]] = field(default_factory=dict, init=False)
    _counts: Counter = field(default_factory=Counter, init=False)

    @classmethod
    def for_ticket(cls, ticket: Ticket, **options) -> Redactor:
        """A redactor that knows the ticket's requester and technician by name."""
        return cls(people=[p for p in (ticket.requester, ticket.technician) if p], **options)

    def __post_init__(self) -> None:
        self.keep = frozenset(k for k in self.keep if k)
        self._people = _with_parts(p for p in self.people if p)
        self._hosts = sorted({h for h in self.hosts if h}, key=len, reverse=True)

    @property
    def counts(self) -> dict[str, int]:
        """Distinct values replaced, per kind (for run metadata: numbers only, never the values)."""
        return dict(self._counts)

    @property
    def placeholders(self) -> frozenset[str]:
        """Every placeholder handed out so far."""
        return frozenset(self._by_placeholder)

    def placeholder(self, kind: str, value: str) -> str:
        """The stable placeholder of ``value`` (the same value of the same kind gets the same one; a person is
        one person whatever the case the name was written in, restored as first seen)."""
        key = (kind, value.casefold() if kind == "PERSON" else value)
        if key not in self._by_value:
            self._counts[kind] += 1
            token = f"[{kind}_{self._counts[kind]}]"
            self._by_value[key] = token
            self._by_placeholder[token] = (kind, value)
        return self._by_value[key]

    def redact(self, text: str | None) -> str:
        """``text`` with every secret, e-mail address, phone number and known person replaced."""
        if not text:
            return text or ""
        text = self._secrets(text)
        text = _EMAIL.sub(lambda m: self.placeholder("EMAIL", m.group(0)), text)
        text = self._phones(text)
        text = self._people_in(text)
        if not self.keep_ip_addresses:
            for ip in sorted(set(extract_ips(text)), key=len, reverse=True):
                text = re.sub(rf"(?<![\w.:]){re.escape(ip)}(?![\w:]|\.\d)", lambda _, v=ip: self.placeholder("IP", v),
                              text)
        if not self.keep_hostnames:
            for host in self._hosts:
                text = re.sub(rf"(?i)(?<![\w.-]){re.escape(host)}(?![\w-])",
                              lambda _, v=host: self.placeholder("HOST", v), text)
            text = _FQDN.sub(lambda m: m.group(0) if is_ip_address(m.group(0))
                             else self.placeholder("HOST", m.group(0)), text)
        return text

    def scrub(self, text: str | None) -> str:
        """``text`` with every value ``redact`` finds removed outright (for searches, which gain nothing from
        a placeholder and must not carry personal data into another service's URLs and logs)."""
        return re.sub(r"[ \t]{2,}", " ", PLACEHOLDER.sub(" ", self.redact(text))).strip()

    def withheld(self, value: str) -> bool:
        """True when ``value`` is, holds or is part of a secret this redactor has replaced (for text taken
        from the raw ticket after redaction, which must not show what the placeholders withhold)."""
        value = value.strip()
        return bool(value) and any(kind == "SECRET" and (value in secret or secret in value)
                                   for kind, secret in self._by_placeholder.values())

    def restore(self, text: str, transform: Callable[[str], str] | None = None) -> str:
        """``text`` with placeholders of restorable kinds put back (through ``transform`` when given, e.g. to
        escape them as Markdown); secrets and placeholders this redactor never handed out become
        ``[secret withheld]`` / ``[unknown]``."""
        def back(match: re.Match) -> str:
            entry = self._by_placeholder.get(match.group(0))
            if entry is None:
                return "[unknown]"
            kind, value = entry
            if kind not in RESTORED_KINDS:
                return "[secret withheld]"
            return transform(value) if transform else value
        return PLACEHOLDER.sub(back, text)

    def _secrets(self, text: str) -> str:
        text = _PEM.sub(lambda m: self.placeholder("SECRET", m.group(0)), text)
        for pattern, hint in _TOKEN_FORMATS:
            if hint is not None and hint not in text:
                continue
            # detect-secrets matches some formats only by their start (it scans for presence): take the token.
            spans = [(m.start(), _TOKEN_TAIL.match(text, m.end()).end()) for m in pattern.finditer(text)]
            for start, end in reversed(spans):
                value = text[start:end].rstrip(".")
                text = text[:start] + self.placeholder("SECRET", value) + text[start + len(value):]
        text = _sub_group(_URL_PASSWORD, text, lambda v: self.placeholder("SECRET", v))
        text = _sub_group(_BEARER, text, lambda v: self.placeholder("SECRET", v))
        return _sub_group(_KEYWORD, text, lambda v: self.placeholder("SECRET", v)
                          if _looks_like_credential(v) and not is_ip_address(v) else v)

    def _phones(self, text: str) -> str:
        found = []
        for m in phonenumbers.PhoneNumberMatcher(text, self.phone_region or "ZZ"):
            raw = m.raw_string
            if _DOTTED_DIGITS.match(raw) or raw in self.keep or re.sub(r"\D", "", raw) in self.keep:
                continue
            before, after = text[max(0, m.start - 1):m.start], text[m.end:m.end + 2]
            if before in (".", "#") or re.match(r"\.\d", after):  # part of an address, version or id
                continue
            found.append((m.start, m.end, raw))
        for start, end, raw in reversed(found):
            text = text[:start] + self.placeholder("PHONE", raw) + text[end:]
        return text

    def _people_in(self, text: str) -> str:
        # Names found after a greeting or before a sign-off are people everywhere in the text, like the
        # requester's and technician's; longest first, so "Dana Scully" becomes one placeholder, not two.
        cued = {self._cue_name(m.group(1)) for pattern in (_GREETING, _SIGN_OFF, _MY_NAME)
                for m in pattern.finditer(text)} - {None}
        for name in sorted(self._people | _with_parts(cued), key=len, reverse=True):
            text = re.sub(_name_pattern(name), lambda _, n=name: self.placeholder("PERSON", n), text)
        return text

    @staticmethod
    def _cue_name(name: str) -> str | None:
        words = name.split()
        while words and words[-1] in _NOT_NAMES:
            words.pop()
        if not words or words[0] in _NOT_NAMES:
            return None
        return " ".join(words)


_NAME_WORDS = frozenset("""
    april art august autumn bill bob brook buck carol chase chip cliff crystal dale dawn dean don drew faith
    frank gene glen grace grant guy hope iris ivy jack jade jean joy june lance lee mark mason matt max may
    miles nick norm pat patch penny pierce ray reed rich rob robin rose rusty sage sandy shelby sky sterling
    sue summer tanner tom victor wade ward warren will win wood
""".split())
"""First names that are also ordinary English words: written in lower case they are the word ("grant
access", "it will", "mark as read"), so only the capitalised or all-capitals form stands for the person."""


def _name_pattern(name: str) -> str:
    """Where ``name`` stands for the person: a name in any case ("dana", "DANA SCULLY"), except a single word
    that is also an ordinary word (``_NAME_WORDS``), which only counts capitalised or in capitals, so the
    requester Grant does not turn the verb "grant" into a placeholder."""
    if name.strip().lower() not in _NAME_WORDS:
        return rf"(?i)(?<![\w\[]){re.escape(name)}(?!\w)"
    word = name[:1].upper() + name[1:].lower()
    return rf"(?<![\w\[])(?:{re.escape(word)}|{re.escape(name.upper())})(?!\w)"


def _with_parts(names: Iterable[str]) -> set[str]:
    """Each name, and each part of it of three letters or more ("Walter" of "Walter Skinner", "Scully" of
    "Scully, Dana"): a person is often named by one part."""
    found = set()
    for name in (n.strip() for n in names if n.strip()):
        found.add(name)
        found.update(w for w in re.split(r"[\s,]+", name) if len(w) >= 3)
    return found


def _sub_group(pattern: re.Pattern, text: str, replace) -> str:
    """``text`` with group 1 of every match of ``pattern`` replaced by ``replace(group)``."""
    def one(m: re.Match) -> str:
        start, end = m.span(1)
        return m.group(0)[: start - m.start()] + replace(m.group(1)) + m.group(0)[end - m.start():]
    return pattern.sub(one, text)
