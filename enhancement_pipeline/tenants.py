"""The tenants (the MSP's customers) this deployment serves, declared in one file.

``TENANTS_FILE`` names a YAML file::

    tenants:
      - tenant_id: contoso                # [a-z][a-z0-9_]*: it becomes part of asset and sensor names
        name: Contoso Ltd
        history_start_date: 2024-01-01    # first monthly partition of this tenant's ticket_history
        inventory_dir: /srv/inventory/contoso   # the data team drops CSV/Parquet files here
        sdp:
          base_url: https://sdp.contoso.example:8080
          api_key_env: CONTOSO_SDP_API_KEY      # the *name* of the env var holding the key, never the key
          auth_scheme: authtoken                # or zoho-oauthtoken (cloud)
          request_budget_per_s: 5               # what imports and the resolved-ticket sensor may spend
          import_concurrency: 8
        kb:
          base_url: https://kb.contoso.example
          cache_ttl_s: 3600
        notes:                                  # all optional; these are the defaults
          shadow_mode: false                    # true: write the note into the run's metadata, post nothing
          daily_token_budget: 2000000           # LLM tokens per UTC day, then deterministic notes; null: no cap
          keep_ip_addresses: true               # false: IPs go to the model as placeholders too
          keep_hostnames: true
          phone_region: US                      # national phone formats to redact (ISO 3166); null: "+" only
          ask_requester: false                  # true: post a vague ticket's questions to its requester too
          reply_draft: "off"                    # formal / friendly: a suggested reply to the requester
        triage:
          min_confidence: 0.6                   # below it a field gets no suggestion (calibrated probability)
          mode: suggest                         # or apply: also write confident suggestions into empty fields
          apply_min_confidence: 0.8             # apply mode: the confidence a suggestion needs to be written
          storm_min_tickets: 5                  # alike open tickets in 30 min that make a possible major incident
          rules_file: /etc/enhancement/contoso-rules.yaml   # routing and escalation rules (triage/rules.py,
                                                # docs/triage-rules.example.yaml); they win over the learned vote

Without ``TENANTS_FILE`` there is one tenant, built from the single-tenant environment variables
(``TENANT_ID``, ``SDP_BASE_URL``, ``KB_BASE_URL``, ...; see ``settings.py``), so a one-customer deployment
needs no file. Every row the pipeline writes and every query it makes carries the tenant id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from enhancement_pipeline.settings import Settings, get_settings

TENANT_ID_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
E = TypeVar("E")


class TenantsFileError(ValueError):
    """The tenants file cannot be read or does not validate; the message names the file and the field."""


class SdpSettings(BaseModel):
    """One tenant's ServiceDesk Plus: where it is, how to authenticate, and how hard background work may
    use it. ``request_budget_per_s`` caps the requests per second that history imports and the
    resolved-ticket sensor send (shared by every process through Redis), so they never get the API key
    throttled while technicians work; per-ticket enhancement runs are not budgeted."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    api_key_env: str = "SDP_API_KEY"
    auth_scheme: Literal["authtoken", "zoho-oauthtoken"] = "authtoken"
    request_budget_per_s: int = Field(10, ge=1, le=10_000)
    import_concurrency: int = Field(8, ge=1, le=128)
    webhook_secret_env: str | None = "SDP_WEBHOOK_SECRET"
    """Name of the env var holding the secret SDP's webhook sends (header ``X-Webhook-Secret``) to the push
    receiver (``push/receiver.py``); push is off for the tenant while that variable is unset or empty."""


class KbSettings(BaseModel):
    """One tenant's knowledge-base search API (``GET {base_url}/api/v1/articles/search``)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    cache_ttl_s: int = Field(3600, ge=0)


class NotesSettings(BaseModel):
    """How one tenant's notes are written and posted. Shadow mode runs everything and keeps the note in the
    run's metadata without posting it (to judge notes before technicians see them). The token budget counts
    prompt and completion tokens per UTC day, across processes (Redis); once spent, notes are composed
    without the model until the next day. IP addresses and hostnames go to the model as they are unless a
    tenant's contract says otherwise; e-mail addresses, phone numbers, names and secrets never do."""

    model_config = ConfigDict(extra="forbid")

    shadow_mode: bool = False
    daily_token_budget: int | None = Field(2_000_000, ge=0)
    keep_ip_addresses: bool = True
    keep_hostnames: bool = True
    phone_region: str | None = Field("US", pattern=r"^[A-Z]{2}$")
    ask_requester: bool = False
    """Also post a vague ticket's questions to its requester (a requester-visible note, at most once per ticket;
    never for a VIP requester or a ticket a technician already works: ``clarification/``)."""
    reply_draft: Literal["off", "formal", "friendly"] = "off"
    """A "Suggested reply to the requester" in the note, in the requester's language and this tone, written by the
    model and checked (``clarification/reply.py``); ``off``: none."""

    @field_validator("reply_draft", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 (PyYAML) reads an unquoted off as false.
        return "off" if value is False else value


class TriageSettings(BaseModel):
    """How one tenant's tickets are triaged (``triage/``). ``min_confidence``: the calibrated probability below
    which a field gets no suggestion (the note says "no confident suggestion")."""

    model_config = ConfigDict(extra="forbid")

    min_confidence: float = Field(0.6, ge=0.0, le=1.0)
    mode: Literal["suggest", "apply"] = "suggest"
    """``suggest``: suggestions in the note only. ``apply``: confident ones are also written into the request's
    empty category, subcategory, item, priority and group (``triage/apply.py``; never over a value already set)."""
    apply_min_confidence: float = Field(0.8, ge=0.0, le=1.0)
    """In apply mode, the calibrated probability a suggestion needs before it is written into SDP."""
    storm_min_tickets: int = Field(5, ge=2, le=10_000)
    """Open tickets alike within 30 minutes (the new one included) that make a "possible major incident"."""
    rules_file: Path | None = None
    """The tenant's routing and escalation rules (YAML, ``triage/rules.py``; relative: to the processes' working
    directory); read when a run needs them and again when the file changes. A file that does not validate
    leaves the learned suggestions in place and says why in the run's metadata."""


class Tenant(BaseModel):
    """One tenant as declared in the tenants file (or built from the single-tenant environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    name: str | None = None
    history_start_date: date = date(2024, 1, 1)
    inventory_dir: Path | None = None
    sdp: SdpSettings
    kb: KbSettings
    notes: NotesSettings = NotesSettings()
    triage: TriageSettings = TriageSettings()

    @field_validator("history_start_date")
    @classmethod
    def _first_of_month(cls, value: date) -> date:
        if value.day != 1:
            raise ValueError("history_start_date must be the first day of a month (partitions are monthly)")
        return value


class _TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenants: list[Tenant] = Field(min_length=1)

    @field_validator("tenants")
    @classmethod
    def _unique_ids(cls, tenants: list[Tenant]) -> list[Tenant]:
        ids = [t.tenant_id for t in tenants]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"tenant_id declared more than once: {', '.join(repeated)}")
        return tenants


def endpoint_for(endpoints: Sequence[E], tenant_id: str) -> E | None:
    """The entry of ``endpoints`` (per-tenant settings with a ``tenant_id``) for ``tenant_id``, or None."""
    return next((e for e in endpoints if e.tenant_id == tenant_id), None)


def load_tenants_file(path: Path) -> tuple[Tenant, ...]:
    """The tenants declared in ``path``. Raises ``TenantsFileError`` naming the file and every bad field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TenantsFileError(f"cannot read tenants file {path}: {exc}") from exc
    try:
        return tuple(_TenantsFile.model_validate(raw).tenants)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise TenantsFileError(f"tenants file {path} is invalid: {problems}") from exc


def tenant_from_settings(settings: Settings) -> Tenant:
    """The single tenant described by the environment (no tenants file)."""
    return Tenant(
        tenant_id=settings.tenant_id, history_start_date=date.fromisoformat(settings.history_start_date),
        inventory_dir=settings.inventory_dir,
        sdp=SdpSettings(base_url=settings.sdp_base_url, api_key_env=settings.sdp_api_key_env,
                        auth_scheme=settings.sdp_auth_scheme, request_budget_per_s=settings.sdp_request_budget_per_s,
                        import_concurrency=settings.sdp_import_concurrency,
                        webhook_secret_env=settings.sdp_webhook_secret_env),
        kb=KbSettings(base_url=settings.kb_base_url),
        notes=NotesSettings(shadow_mode=settings.notes_shadow_mode, daily_token_budget=settings.llm_daily_token_budget,
                            keep_ip_addresses=settings.notes_keep_ip_addresses,
                            keep_hostnames=settings.notes_keep_hostnames, phone_region=settings.phone_region or None,
                            ask_requester=settings.notes_ask_requester,
                            reply_draft=settings.notes_reply_draft),
        triage=TriageSettings(rules_file=settings.triage_rules_file, mode=settings.triage_mode,
                              apply_min_confidence=settings.triage_apply_min_confidence),
    )


def tenants_for(settings: Settings) -> tuple[Tenant, ...]:
    """The tenants of a deployment: the tenants file when ``settings.tenants_file`` is set, else one tenant."""
    if settings.tenants_file is not None:
        return load_tenants_file(settings.tenants_file)
    return (tenant_from_settings(settings),)


@lru_cache(maxsize=1)
def get_tenants() -> tuple[Tenant, ...]:
    """The process-wide tenants of ``get_settings()``, read once."""
    return tenants_for(get_settings())
