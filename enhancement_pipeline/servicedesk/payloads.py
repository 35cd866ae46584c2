"""Pure parsing of ServiceDesk Plus v3 payloads into the pipeline's models. No I/O.

Wire rules (see ``shared/reference/servicedesk-plus-api-v3.md`` §3): ids are strings, datetimes are
``{"display_value": ..., "value": "<epoch millis>"}`` or null, lookups are ``{"id", "name", ...}`` or null,
``description`` and resolution ``content`` are HTML.

Lenient where the meaning is unambiguous, because one odd build or integration must not cost a ticket its note:
a datetime sent as a bare number (or digit string) is taken as its epoch milliseconds, a subject or id sent as
a number as its text, a lookup (``status``, ``requester``, ...) sent as a plain string as its ``name``, a null
subject or description as empty. Anything else that does not fit raises ``PayloadError`` naming the fields.

``to_ticket`` cleans the text at the edge: NUL and the other C0/C1 control characters (tab and newline kept,
carriage returns become newlines) and lone surrogates are removed, and the subject and description are cut
to ``MAX_SUBJECT_CHARS`` / ``MAX_DESCRIPTION_CHARS`` (the full length is kept on the ``Ticket``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from enhancement_pipeline.models import Ticket
from enhancement_pipeline.servicedesk.html_text import html_to_text

RESOLVED_STATUSES = frozenset({"Resolved", "Closed"})
"""Statuses whose requests count as resolved history."""

FINISHED_STATUSES = RESOLVED_STATUSES | {"Cancelled"}
"""Statuses that need no enhancement note."""


MAX_SUBJECT_CHARS = 1_000
"""A subject longer than this is cut here (a subject is a line, not a document)."""

MAX_DESCRIPTION_CHARS = 20_000
"""The description (as text) the pipeline works with: what the lookups search and the prompt quotes. A longer
one (a pasted 5 MB log) is cut here, at the last line or word break in its final 10 %; ``Ticket.description_chars``
keeps the length SDP sent and ``Ticket.description_cut`` (and ``load_ticket``'s metadata) says it was cut.
20 000 characters is about 5 000 tokens: room for the problem and its log excerpt, not for the whole log. Only
as much of the HTML is turned into text as the cut needs (``description_text``): 5 MB of HTML took 2.3 s."""

MAX_RESOLUTION_CHARS = MAX_DESCRIPTION_CHARS
"""A resolution (history) is cut at the same length."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]+")
"""C0 and C1 control characters but tab and newline (carriage returns are made newlines first), DEL, and lone
surrogates (a JSON ``\\ud800`` that is half a character): PostgreSQL text cannot hold NUL, nor UTF-8 a surrogate."""


class PayloadError(ValueError):
    """An SDP payload does not have the shape the v3 API documents; the message names the field."""


def millis_to_datetime(value: str | int | None) -> datetime | None:
    """Epoch milliseconds (SDP sends them as strings) to an aware UTC datetime; None stays None.

    Raises ``PayloadError`` for anything that is not a representable epoch-millisecond count.
    """
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"{value!r} is not epoch milliseconds ({exc})") from None


def datetime_to_millis(value: datetime) -> int:
    """Aware datetime to epoch milliseconds (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def clean_text(text: str | None) -> str:
    """``text`` without NUL and the other control characters (tab and newline kept; ``\\r\\n`` and ``\\r``
    become ``\\n``) and without lone surrogates. None is ``""``."""
    if not text:
        return ""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at the last line break (else space) in its final 10 % when
    there is one, so a word or a log line is not left half; unchanged when it fits."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    floor = limit - limit // 10
    cut = head.rfind("\n", floor)
    if cut < 0:
        cut = head.rfind(" ", floor)
    return (head[:cut] if cut > 0 else head).rstrip()


def description_text(html: str | None) -> tuple[str, bool]:
    """(the description's clean text cut to ``MAX_DESCRIPTION_CHARS``, whether it was cut).

    A long HTML description is converted by growing prefixes (4x the cap, then 4x more, ...), none ending inside
    a tag, until one gives more text than the cap: what lies beyond is cut anyway.
    """
    html = html or ""
    size = 4 * MAX_DESCRIPTION_CHARS
    while True:
        end = len(html)
        if size < end:
            opened = html.rfind("<", 0, size)
            end = opened if opened > html.rfind(">", 0, size) else size
        text = clean_text(html_to_text(clean_text(html[:end])))
        if end >= len(html) or len(text) > MAX_DESCRIPTION_CHARS + 1_000:
            return cut_text(text, MAX_DESCRIPTION_CHARS), len(text) > MAX_DESCRIPTION_CHARS or end < len(html)
        size *= 4


def _as_text(v: Any) -> Any:
    """A number where text belongs is its text (a bool is not a number here); None is empty."""
    if v is None:
        return ""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    return v


class _Lookup(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    name: str | None = None
    email_id: str | None = None  # a user's (requester, technician); the routing rules' VIP list may name it

    @field_validator("id", "name", mode="before")
    @classmethod
    def _numbers_as_text(cls, v: Any) -> Any:
        return None if v is None else _as_text(v)

    @field_validator("email_id", mode="before")
    @classmethod
    def _email_or_none(cls, v: Any) -> Any:
        return v if isinstance(v, str) else None  # never a reason to refuse the request


def _lookup_by_name(v: Any) -> Any:
    """A lookup sent as a plain string (``"status": "Open"``) is its name; a number, its name as text."""
    if isinstance(v, str):
        return {"name": v} if v.strip() else None
    if isinstance(v, int | float) and not isinstance(v, bool):
        return {"name": str(v)}
    return v


class _DateTime(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: str
    display_value: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _epoch_millis(cls, v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if isinstance(v, str):
            v = v.strip()
            millis_to_datetime(v)  # a bad timestamp fails validation here, with the request's id, not later
        return v


def _datetime_from_millis(v: Any) -> Any:
    """A datetime sent as a bare epoch-millisecond number or digit string is ``{"value": "<millis>"}``."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return {"value": str(v)}
    if isinstance(v, str) and v.strip().isdigit():
        return {"value": v.strip()}
    if isinstance(v, str) and not v.strip():
        return None
    return v


class SdpRequest(BaseModel):
    """The fields of an SDP request the pipeline reads, validated; everything else is ignored.

    Built from a full record (``GET /requests/{id}``) or a reduced list row (``GET /requests``), which has
    no ``description``.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    display_id: str | None = None
    subject: str = ""
    description: str | None = None
    short_description: str | None = None
    status: _Lookup | None = None
    requester: _Lookup | None = None
    technician: _Lookup | None = None
    priority: _Lookup | None = None
    category: _Lookup | None = None
    subcategory: _Lookup | None = None
    item: _Lookup | None = None
    group: _Lookup | None = None
    site: _Lookup | None = None
    created_time: _DateTime | None = None
    last_updated_time: _DateTime | None = None
    resolved_time: _DateTime | None = None
    completed_time: _DateTime | None = None
    resolution: Any = None
    udf_fields: dict[str, Any] | None = Field(default=None)

    @field_validator("id", "display_id", mode="before")
    @classmethod
    def _ids_as_strings(cls, v: Any) -> Any:
        # Documented as strings; on-prem builds have been seen sending numbers. Accept both, store strings.
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("subject", "description", "short_description", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        # A subject of 12345 is the text "12345"; a null subject is an empty one.
        return _as_text(v)

    @field_validator("status", "requester", "technician", "priority", "category", "subcategory", "item", "group",
                     "site", mode="before")
    @classmethod
    def _lookups(cls, v: Any) -> Any:
        return _lookup_by_name(v)

    @field_validator("created_time", "last_updated_time", "resolved_time", "completed_time", mode="before")
    @classmethod
    def _datetimes(cls, v: Any) -> Any:
        return _datetime_from_millis(v)

    @property
    def status_name(self) -> str | None:
        return self.status.name if self.status else None

    @property
    def created_millis(self) -> int | None:
        return int(self.created_time.value) if self.created_time else None

    @property
    def last_updated_millis(self) -> int | None:
        return int(self.last_updated_time.value) if self.last_updated_time else None


def parse_request(payload: dict[str, Any]) -> SdpRequest:
    """Validate one request object (full or list row). Raises ``PayloadError`` naming the bad fields (never
    their values: the message goes to logs and the UI)."""
    if not isinstance(payload, dict):
        raise PayloadError(f"a request is a JSON object, not {type(payload).__name__}")
    try:
        return SdpRequest.model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(dict.fromkeys(".".join(str(p) for p in err["loc"]) for err in exc.errors()))
        raise PayloadError(f"request {payload.get('id', '?')!r}: invalid fields: {fields}") from exc


def resolution_text(resolution_payload: dict[str, Any] | None) -> str | None:
    """Plain text of a ``{"resolution": {"content": "<html>", ...}}`` body; None when there is none."""
    if not resolution_payload:
        return None
    resolution = resolution_payload.get("resolution")
    content = resolution.get("content") if isinstance(resolution, dict) else None
    text = html_to_text(content if isinstance(content, str) else None)
    return text or None


def to_ticket(tenant_id: str, request: SdpRequest, resolution: str | None = None) -> Ticket:
    """The pipeline's ``Ticket`` from a validated full request (and its resolution text, if fetched).

    Its texts are cleaned (``clean_text``) and cut (``MAX_SUBJECT_CHARS``, ``MAX_DESCRIPTION_CHARS``,
    ``MAX_RESOLUTION_CHARS``); ``description_chars`` is the description's length as SDP sent it.
    """
    # resolved_time alone, as the history's listing and its count check define "resolved in a month"; a
    # request closed without one is not history (SDP stamps resolved_time when a request is closed).
    resolved = request.resolved_time
    raw = request.description or request.short_description or ""
    description, cut = description_text(raw)
    resolution_clean = clean_text(resolution).strip()
    return Ticket(
        tenant_id=tenant_id,
        ticket_id=request.id,
        display_id=request.display_id,
        subject=cut_text(" ".join(clean_text(request.subject).split()), MAX_SUBJECT_CHARS),
        description=description,
        description_chars=len(raw),
        description_cut=cut,
        status=_name(request.status),
        requester=_name(request.requester),
        technician=_name(request.technician),
        priority=_name(request.priority),
        category=_name(request.category),
        subcategory=_name(request.subcategory),
        item=_name(request.item),
        support_group=_name(request.group),
        site=_name(request.site),
        requester_id=request.requester.id if request.requester and request.requester.id else None,
        requester_email=((request.requester.email_id or "").strip() or None) if request.requester else None,
        created_at=millis_to_datetime(request.created_time.value) if request.created_time else None,
        resolved_at=millis_to_datetime(resolved.value) if resolved else None,
        resolution=cut_text(resolution_clean, MAX_RESOLUTION_CHARS) if resolution_clean else None,
    )


def _name(lookup: _Lookup | None) -> str | None:
    name = " ".join(clean_text(lookup.name).split()) if lookup else ""
    return name or None
