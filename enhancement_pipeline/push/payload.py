"""What SDP's webhook sends when a request is created, validated at the edge.

SDP's webhooks (Admin > Integrations > Webhooks, fired by a Custom Trigger on *Created*) post a JSON body the
administrator writes as a template with ``$field`` variables, so its shape is the administrator's choice. The
receiver needs one thing from it, the request's id, and takes it from any of the shapes such templates use:
``{"request": {"id": "$id"}}`` (the shape of the v3 API and of the Custom Trigger's ``$COMPLETE_V3_JSON_FILE``),
``{"id": "$id"}`` or ``{"request_id": "$id"}``. Everything else in the body is ignored: the receiver reads the
request itself through the API (a body can be forged or stale; the API's answer cannot).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

REQUEST_ID = re.compile(r"^[0-9]{1,20}$")
"""SDP request ids are numbers (``123640000000012345``); anything else is refused before SDP is asked."""
MAX_BODY_BYTES = 1_000_000
"""A request-created event is a few hundred bytes, or the whole request (description included) with
``$COMPLETE_V3_JSON_FILE``; a larger body is refused unread."""


class TicketEvent(BaseModel):
    """A request-created event. ``request_id``: the id SDP names (digits, as a string). ``event``: what the
    trigger says happened, when the template names it (``created``; other events are acknowledged and left to
    the sensors)."""

    model_config = ConfigDict(extra="ignore")

    request_id: str = Field(description="The SDP request id, digits only.")
    event: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _find_id(cls, body: Any) -> Any:
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        request = body.get("request")
        candidates = [request.get("id") if isinstance(request, dict) else None, body.get("request_id"), body.get("id")]
        found = next((c for c in candidates if c not in (None, "")), None)
        if found is None:
            raise ValueError("no request id: expected request.id, request_id or id")
        event = body.get("event") or body.get("operation")
        return {"request_id": found, "event": event if isinstance(event, str) else None}

    @field_validator("request_id", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError("the request id must be a number or a string of digits")
        text = str(value).strip()
        if not REQUEST_ID.match(text):
            raise ValueError("the request id must be digits (an unfilled template variable such as '$id'?)")
        return text

    @property
    def is_creation(self) -> bool:
        """True unless the template names another event (edited, deleted...)."""
        return self.event is None or self.event.strip().lower() in {"created", "create", "request_created", "add"}
