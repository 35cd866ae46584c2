"""Configuration read from the environment.

Every value has a local default that points at the project's own services (``make demo``); production
sets the environment variables below. Several tenants are declared in a tenants file (``TENANTS_FILE``, see
``tenants.py``); without one, the single-tenant variables here describe the one tenant. Secrets are never
held here: only the *names* of the environment variables that carry them (``SDP_API_KEY_ENV``,
``LLM_API_KEY_ENV``), read at the moment of use, so no secret ends up in Dagster run config, resource config
shown in the UI, or logs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
PACKAGED_DATA_DIR = Path(__file__).resolve().parent / "local" / "data"


class Settings(BaseSettings):
    """Environment-driven settings (env var = upper-case field name)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    tenants_file: Path | None = Field(None, description="YAML file declaring the tenants (see tenants.py); "
                                                       "when unset, the single-tenant variables below apply.")
    tenant_id: str = Field("default", description="Tenant (MSP customer) served when there is no tenants file.")
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/enhancement",
        description="libpq URL of the app database (ticket_history, system_inventory, note ledger).",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for the knowledge-base cache.")

    sdp_base_url: str = Field(
        "http://127.0.0.1:8080",
        description="SDP root: on-prem 'https://host:8080', cloud 'https://sdpondemand.manageengine.com/app/<portal>'.",
    )
    sdp_api_key_env: str = Field("SDP_API_KEY", description="Name of the env var holding the SDP authtoken.")
    sdp_auth_scheme: str = Field("authtoken", description="'authtoken' (on-prem) or 'zoho-oauthtoken' (cloud).")
    sdp_request_budget_per_s: int = Field(10, ge=1, description="SDP requests per second that imports and the "
                                                                 "resolved-ticket sensor may send.")
    sdp_import_concurrency: int = Field(8, ge=1, description="Tickets fetched at once by a history import.")
    sdp_webhook_secret_env: str = Field("SDP_WEBHOOK_SECRET", description="Name of the env var holding the secret "
                                        "SDP's webhook sends to the push receiver (unset variable: push off).")

    kb_base_url: str = Field("http://127.0.0.1:8081", description="Knowledge-base search API root.")

    llm_base_url: str = Field("https://openrouter.ai/api/v1", description="Any OpenAI-compatible endpoint.")
    llm_api_key_env: str = Field("LLM_API_KEY", description="Name of the env var holding the LLM key.")
    llm_model: str = Field("openai/gpt-4o-mini")
    llm_structured_output: Literal["auto", "json_schema", "json_object", "markdown"] = Field(
        "auto", description="Where the answer-format ladder starts (enhancement.llm): auto tries json_schema, then "
                            "json_object, then the Markdown prompt.")
    llm_daily_token_budget: int | None = Field(2_000_000, ge=0, description="LLM tokens per UTC day for the tenant; "
                                                                            "then notes are deterministic.")
    notes_shadow_mode: bool = Field(False, description="Write notes into run metadata only; post nothing.")
    notes_keep_ip_addresses: bool = Field(True, description="Send IP addresses to the LLM (false: placeholders).")
    notes_keep_hostnames: bool = Field(True, description="Send hostnames to the LLM (false: placeholders).")
    notes_ask_requester: bool = Field(False, description="Post a vague ticket's questions to its requester too.")
    notes_reply_draft: Literal["off", "formal", "friendly"] = Field(
        "off", description="A suggested reply to the requester in the note, in this tone; off: none.")
    phone_region: str = Field("US", description="Region of national phone formats to redact; '' for '+' only.")
    triage_rules_file: Path | None = Field(None, description="The tenant's routing and escalation rules (YAML, "
                                                             "triage/rules.py); unset: no rules.")
    triage_mode: Literal["suggest", "apply"] = Field("suggest", description="apply: also write confident triage "
                                                     "suggestions into the request's empty fields (PUT).")
    triage_apply_min_confidence: float = Field(0.8, ge=0.0, le=1.0, description="Calibrated confidence a "
                                               "suggestion needs to be written in apply mode.")

    history_start_date: str = Field("2024-01-01", description="First monthly partition of ticket_history.")
    metrics_textfile_dir: Path | None = Field(None, description="Where <tenant>/pipeline_metrics writes its Prometheus "
                                              "text file (node_exporter's textfile collector); unset: not written.")
    inventory_dir: Path | None = Field(
        None,
        description="Folder where the data team drops inventory files (*.csv, *.parquet) for system_inventory; "
                    "unset: no inventory sensor (the demo and tests point it at their own folder).",
    )
    new_ticket_sensor_interval_s: int = Field(
        1, ge=1,
        # The daemon's sensor loop runs every 5 s (dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME) and skips a
        # sensor whose interval has not fully passed: an interval of 5 ticks every other loop (~10 s, measured),
        # one below 5 ticks every loop (~5 s).
        description="Polling interval of new_ticket_sensor (s); the Dagster daemon ticks a sensor every 5 s at "
                    "most, and any value below 5 means every daemon loop.",
    )
    resolved_ticket_sensor_interval_s: int = Field(
        30, ge=1, description="Polling interval of resolved_ticket_sensor (seconds)."
    )
    inventory_sensor_interval_s: int = Field(30, ge=1, description="How often the inventory folder is looked at.")
    new_ticket_lookback_minutes: int = Field(
        15, ge=0, description="On its first tick the sensor also enhances tickets created this long ago."
    )
    delivery_sweep_interval_s: int = Field(300, ge=1, description="How often delivery_sweep looks for tickets "
                                                                    "that still have no note (seconds).")
    delivery_sweep_lookback_hours: int = Field(24, ge=1, description="Tickets created this long ago are swept.")
    delivery_sweep_min_age_minutes: float = Field(
        10, ge=0, description="A ticket younger than this is left to the new-ticket sensor's run and its retries.")
    delivery_sweep_retry_wait_minutes: float = Field(
        10, ge=0, description="After a ticket's run ended without a note, the sweep waits this long to try again.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
