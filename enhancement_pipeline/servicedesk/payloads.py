"""Pure parsing of ServiceDesk Plus v3 payloads into the pipeline's models. No I/O.

Wire rules (see ``shared/reference/servicedesk-plus-api-v3.md`` §3): ids are strings, datetimes are
``{"display_value": ..., "value": "<epoch millis>"}`` or null, lookups are ``{"id", "name", ...}`` or null,
``description`` and resolution ``content`` are HTML.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from enhancement_pipeline.models import Ticket
from enhancement_pipeline.servicedesk.html_text import html_to_text

RESOLVED_STATUSES = frozenset({"Resolved", "Closed"})
"""Statuses whose requests count as resolved history."""

FINISHED_STATUSES = RESOLVED_STATUSES | {"Cancelled"}
"""Statuses that need no enhancement note."""


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


class _Lookup(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    name: str | None = None


class _DateTime(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: str
    display_value: str | None = None

    @field_validator("value")
    @classmethod
    def _epoch_millis(cls, v: str) -> str:
        millis_to_datetime(v)  # a bad timestamp fails validation here, with the request's id, not later
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
        return str(v) if isinstance(v, int) else v

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
    """Validate one request object (full or list row). Raises ``PayloadError`` naming the bad fields."""
    try:
        return SdpRequest.model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
        raise PayloadError(f"request {payload.get('id', '?')!r}: invalid fields: {fields}") from exc


def resolution_text(resolution_payload: dict[str, Any] | None) -> str | None:
    """Plain text of a ``{"resolution": {"content": "<html>", ...}}`` body; None when there is none."""
    if not resolution_payload:
        return None
    content = (resolution_payload.get("resolution") or {}).get("content")
    text = html_to_text(content)
    return text or None


def to_ticket(tenant_id: str, request: SdpRequest, resolution: str | None = None) -> Ticket:
    """The pipeline's ``Ticket`` from a validated full request (and its resolution text, if fetched)."""
    # resolved_time alone, as the history's listing and its count check define "resolved in a month"; a
    # request closed without one is not history (SDP stamps resolved_time when a request is closed).
    resolved = request.resolved_time
    return Ticket(
        tenant_id=tenant_id,
        ticket_id=request.id,
        display_id=request.display_id,
        subject=request.subject.strip(),
        description=html_to_text(request.description or request.short_description),
        status=request.status_name,
        requester=request.requester.name if request.requester else None,
        technician=request.technician.name if request.technician else None,
        created_at=millis_to_datetime(request.created_time.value) if request.created_time else None,
        resolved_at=millis_to_datetime(resolved.value) if resolved else None,
        resolution=resolution,
    )
