"""What a ticket names, for the note's "Key details" line: error codes, hostnames, user principal names and
e-mail addresses, phone numbers, IP addresses, URLs, KB and CVE ids, product versions. Pure functions.

Regex finds candidates; where a library owns the grammar it decides: ``ipaddress`` (through
``inventory.ip_addresses``) for IPs, ``phonenumbers`` (libphonenumber's matcher, the one redaction uses)
for phone numbers, ``urllib.parse`` for URLs. Error codes are the kinds a technician searches for:

- HRESULTs and Win32/NTSTATUS codes written in hex (``0x80070005``, eight hex digits);
- Windows event ids ("Event ID 4625", "event 7031");
- HTTP status codes where the text says HTTP or gives the reason phrase ("HTTP 503", "502 Bad Gateway");
- SMTP enhanced status codes of a non-delivery report (``5.7.1``, ``4.4.7``) where the text is about mail
  delivery (a bare ``5.1.2`` is more often a version);
- application error numbers ("error 809", "error code 1603").

Each kind is distinct and in order of first appearance; nothing is reported twice under two kinds (an
e-mail address is not also a hostname, a URL's host is not also a hostname).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import phonenumbers
from pydantic import BaseModel, Field

from enhancement_pipeline.inventory.ip_addresses import extract_ips

MAX_SHOWN = 12
"""Details the note's line shows at most; the rest are counted ("and 3 more")."""

_HRESULT = re.compile(r"(?<![\w])0[xX]([0-9A-Fa-f]{8})(?![\w])")
# Each optional separator brings its own whitespace ("\s*x?\s*" chains backtrack polynomially on long runs).
_EVENT_ID = re.compile(r"(?i)\bevent(?:\s+id|\s*#)?(?:\s*[:=])?\s*(\d{1,5})\b")
_HTTP_STATUS = re.compile(r"(?i)\bHTTP(?:/\d(?:\.\d)?)?(?:\s*status)?(?:\s*code)?(?:\s*[:=])?\s*([1-5]\d\d)\b"
                          r"|\b([1-5]\d\d)\s+(?:Bad\s+Request|Unauthori[sz]ed|Forbidden|Not\s+Found|Method\s+Not\s+"
                          r"Allowed|Request\s+Timeout|Too\s+Many\s+Requests|Internal\s+Server\s+Error|Bad\s+Gateway|"
                          r"Service\s+Unavailable|Gateway\s+Time-?out)\b")
_NDR = re.compile(r"(?<![\w.])([45]\.\d{1,3}\.\d{1,3})(?![\w.]|\.\d)")
_MAIL_WORDS = re.compile(r"(?i)\b(?:NDR|non-?delivery|undeliverable|bounce[ds]?|delivery\s+(?:has\s+)?failed|"
                         r"smtp|mail\s+delivery|recipient|mailbox|relay|550|554|451|452|421)\b")
_ERROR_NUMBER = re.compile(r"(?i)\berror(?:\s+code)?(?:\s*[:#=])?\s*(\d{2,6})\b")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
                    r"(?![\w-])")
_URL = re.compile(r"(?i)\bhttps?://[^\s<>\"'()\[\]]+")
# Dotted names end in a top-level label hosts use: a two-letter country code, a common generic one, or an
# internal one; "System.Net.WebException" or "Exchange.asmx" (.NET names, file names) are not hosts.
_FQDN = re.compile(r"(?<![\w@.-])((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                   r"(?:local|lan|corp|internal|intranet|home|com|net|org|edu|gov|mil|int|io|biz|info|cloud|app|dev|"
                   r"online|site|tech|[A-Za-z]{2}))(?![\w-]|\.\w)", re.I)
# A name as MSPs give hosts: capitals with a dash and a digit (SRV-FS01, ACME-DC01, LAPTOP-7H3K2L) or capitals
# then two or three digits (DC02, EXCH01); standards with the same shape are not hosts.
_HOST = re.compile(r"(?<![\w.-])(?=[A-Z0-9-]*\d)[A-Z][A-Z0-9]{1,14}(?:-[A-Z0-9]{1,15})+(?![\w-]|\.\w)"
                   r"|(?<![\w.-])[A-Z]{2,6}\d{2,3}(?![\w-]|\.\w)")
_NOT_HOST = re.compile(r"^(?:UTF|SHA|MD|AES|RSA|TLS|SSL|CAT|IEEE|ISO|RFC|PCI|WPA|IPV|DDR|USB|HTTP|HDMI|PS|COVID|KB|"
                       r"CVE|MS|TCP|UDP|SQL|DNS|MFA|OS|MX|MP|X)(?:-?[A-Z0-9]+)*$|^WIN\d+$")
"""Standards shaped like hosts (SHA-256, UTF-8, USB30, WIN10); Windows' own default names (WIN-8F2K3L1) and
PC-0042 are hosts."""
# File names are not hosts ("report.pdf", "setup.exe", "Outlook.pst"): their "TLD" is an extension.
_FILE_EXTENSIONS = frozenset("""exe msi dll sys pst ost log txt csv pdf docx xlsx pptx doc xls ppt zip cab bat cmd ps1
    vbs js json xml ini cfg conf reg evtx dmp png jpg jpeg gif html htm msg eml iso vhd vhdx bak tmp""".split())
_KB = re.compile(r"(?<![\w-])KB\s?(\d{6,7})(?!\w)", re.I)
_CVE = re.compile(r"(?<![\w-])CVE-(\d{4})-(\d{4,7})(?!\w)", re.I)
_PRODUCT = re.compile(
    r"\b(Windows(?:\s+Server)?|Office|Microsoft\s+365|Outlook|Teams|Excel|Word|Exchange(?:\s+Server)?|SharePoint|"
    r"SQL\s+Server|iOS|iPadOS|Android|macOS|Chrome|Edge|Firefox|FortiClient|Citrix\s+Workspace|Ubuntu|Java|"
    r"Acrobat(?:\s+Reader)?|AnyConnect|Zoom)\s+(?:version\s+|v)?(\d+(?:\.\d+){0,3}|XP|Vista|R2|LTSC)(?:\s+R2)?(?![\w.])")
_VERSION = re.compile(r"(?i)\b(?:version|ver\.?|build)(?:\s*:)?\s*(\d+(?:\.\d+){1,3})\b")


class KeyDetails(BaseModel):
    """What a ticket names, by kind, each list distinct in order of first appearance (canonical forms:
    ``0x80070005`` lower-case hex, "event 4625", "HTTP 503", "error 809", addresses lower-case, phone numbers
    E.164, ``KB5034441``, ``CVE-2024-21413``)."""

    error_codes: list[str] = Field(default_factory=list)
    hostnames: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list, description="User principal names and e-mail addresses.")
    phone_numbers: list[str] = Field(default_factory=list)
    ip_addresses: list[str] = Field(default_factory=list)
    urls: list[str] = Field(default_factory=list)
    kb_ids: list[str] = Field(default_factory=list, description="Microsoft KB and CVE ids.")
    versions: list[str] = Field(default_factory=list, description="Products with their version, or bare versions.")

    def items(self) -> list[tuple[str, str]]:
        """(kind, value) pairs in display order: errors first, then systems, people, references."""
        order = ("error_codes", "hostnames", "ip_addresses", "emails", "phone_numbers", "kb_ids", "versions", "urls")
        return [(kind, value) for kind in order for value in getattr(self, kind)]

    @property
    def empty(self) -> bool:
        return not self.items()


def _distinct(values) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def error_codes(text: str) -> list[str]:
    """Error codes of the kinds in the module docstring, canonical, distinct, in order of appearance."""
    found: list[tuple[int, str]] = []
    found += [(m.start(), f"0x{m.group(1).lower()}") for m in _HRESULT.finditer(text)]
    found += [(m.start(), f"event {int(m.group(1))}") for m in _EVENT_ID.finditer(text)]
    found += [(m.start(), f"HTTP {m.group(1) or m.group(2)}") for m in _HTTP_STATUS.finditer(text)]
    if _MAIL_WORDS.search(text):
        found += [(m.start(), m.group(1)) for m in _NDR.finditer(text)]
    http = {v.split()[1] for _, v in found if v.startswith("HTTP ")}
    found += [(m.start(), f"error {int(m.group(1))}") for m in _ERROR_NUMBER.finditer(text)
              if m.group(1) not in http]
    return _distinct(v for _, v in sorted(found))


def urls(text: str) -> list[str]:
    """http(s) URLs with a host, trailing punctuation left to the prose."""
    out = []
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(".,;:!?")
        parts = urlsplit(url)
        if parts.scheme.lower() in ("http", "https") and parts.hostname:
            out.append(url)
    return _distinct(out)


def emails(text: str) -> list[str]:
    """E-mail addresses and user principal names (same form), lower-cased."""
    return _distinct(m.group(0).lower() for m in _EMAIL.finditer(text))


def phone_numbers(text: str, region: str | None = "US") -> list[str]:
    """Phone numbers libphonenumber finds and validates, as E.164 (``region``: how national numbers are read;
    None: only international ``+`` numbers)."""
    found = []
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        found.append(phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164))
    return _distinct(found)


def hostnames(text: str, exclude: set[str] = frozenset()) -> list[str]:
    """Host names: dotted names with an alphabetic top-level label (not file names, not IPs) and MSP-style
    names (SRV-FS01, DC02); ``exclude`` holds spans to skip (lower-case), e.g. the domains of e-mail
    addresses and URLs already reported."""
    found: list[tuple[int, str]] = []
    for m in _FQDN.finditer(text):
        name = m.group(1).rstrip(".")
        last = name.rsplit(".", 1)[-1].lower()
        if last in _FILE_EXTENSIONS or last.isdigit() or name.count(".") < 1:
            continue
        found.append((m.start(), name.lower()))
    for m in _HOST.finditer(text):
        if not _NOT_HOST.match(m.group(0)):
            found.append((m.start(), m.group(0)))
    return _distinct(v for _, v in sorted(found) if v.lower() not in exclude)


def reference_ids(text: str) -> list[str]:
    """Microsoft KB article ids and CVE ids, canonical (``KB5034441``, ``CVE-2024-21413``)."""
    found = [(m.start(), f"KB{m.group(1)}") for m in _KB.finditer(text)]
    found += [(m.start(), f"CVE-{m.group(1)}-{m.group(2)}") for m in _CVE.finditer(text)]
    return _distinct(v for _, v in sorted(found))


def versions(text: str) -> list[str]:
    """Products named with a version ("Windows 11", "Outlook 2016", "FortiClient 7.2") and bare versions
    ("version 16.0.17328")."""
    found = [(m.start(), f"{' '.join(m.group(1).split())} {m.group(2)}") for m in _PRODUCT.finditer(text)]
    named = {v.split()[-1] for _, v in found}
    found += [(m.start(), f"version {m.group(1)}") for m in _VERSION.finditer(text) if m.group(1) not in named]
    return _distinct(v for _, v in sorted(found))


def key_details(text: str, phone_region: str | None = "US") -> KeyDetails:
    """Every key detail ``text`` (a ticket's subject and description) names."""
    found_urls = urls(text)
    found_emails = emails(text)
    no_urls = text
    for url in found_urls:
        no_urls = no_urls.replace(url, " ")
    domains = {e.split("@", 1)[1] for e in found_emails} | {urlsplit(u).hostname or "" for u in found_urls}
    no_emails = _EMAIL.sub(" ", no_urls)
    ips = extract_ips(no_urls)
    return KeyDetails(
        error_codes=error_codes(no_urls),
        hostnames=[h for h in hostnames(no_emails, exclude={d.lower() for d in domains}) if h not in ips],
        emails=found_emails,
        phone_numbers=phone_numbers(no_urls, phone_region),
        ip_addresses=ips,
        urls=found_urls,
        kb_ids=reference_ids(no_urls),
        versions=versions(no_urls),
    )


def details_line(details: KeyDetails, redact: Callable[[str], str] = lambda v: v,
                 withheld: Callable[[str], bool] = lambda v: False) -> str | None:
    """The note's one line of key details (Markdown), each value in a code span so it copies exactly, at
    most ``MAX_SHOWN`` of them; None when the ticket names none. ``redact`` turns personal values into the
    note's placeholders (restored in the posted note, kept out of Dagster's event log); a value ``withheld``
    says is (part of) a secret is left out altogether ("password: WELCOME-2024" is no host to show)."""
    items = [(kind, value) for kind, value in details.items() if not withheld(value)]
    if not items:
        return None
    shown = []
    for _, value in items[:MAX_SHOWN]:
        shown.append(f"`{redact(value).replace('`', '')}`")  # a placeholder in code is restored verbatim
    more = f" and {len(items) - MAX_SHOWN} more" if len(items) > MAX_SHOWN else ""
    return "**Key details:** " + " · ".join(shown) + more
