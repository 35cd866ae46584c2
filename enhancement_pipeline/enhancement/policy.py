"""Per-tenant note policy as a Dagster resource: shadow mode, redaction choices and the daily token budget.

The budget counts LLM tokens per tenant and UTC calendar day in Redis (``INCRBY`` on a key per day, kept
two days), so every process sees the same count and the budget resets at midnight UTC. Our own counter
rather than the ``limits`` library used for the SDP request budget: its windows start at the first hit,
and "until the next day" means the calendar day. The check comes before a call and the count after it, so
runs that start together may overshoot the budget by one note each. A Redis outage lets notes through
(the budget is a cost guard, not a reason to stop notes) and says so in the log and the run's metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import redis

from enhancement_pipeline.enhancement.redaction import Privacy
from enhancement_pipeline.storage.cache import shared_redis_client
from enhancement_pipeline.tenants import Tenant, endpoint_for

log = logging.getLogger(__name__)


class TenantNotePolicy(dg.Config):
    """One tenant's note settings, as the UI shows them (see ``tenants.NotesSettings``)."""

    tenant_id: str
    shadow_mode: bool = False
    daily_token_budget: int | None = 2_000_000
    keep_ip_addresses: bool = True
    keep_hostnames: bool = True
    phone_region: str | None = "US"
    ask_requester: bool = False
    reply_draft: str = "off"
    triage_min_confidence: float = 0.6
    triage_storm_min_tickets: int = 5
    triage_rules_file: str | None = None
    triage_mode: str = "suggest"
    triage_apply_min_confidence: float = 0.8

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> TenantNotePolicy:
        return cls(tenant_id=tenant.tenant_id, **tenant.notes.model_dump(),
                   triage_min_confidence=tenant.triage.min_confidence,
                   triage_storm_min_tickets=tenant.triage.storm_min_tickets,
                   triage_rules_file=str(tenant.triage.rules_file) if tenant.triage.rules_file else None,
                   triage_mode=tenant.triage.mode, triage_apply_min_confidence=tenant.triage.apply_min_confidence)

    @property
    def privacy(self) -> Privacy:
        return Privacy(keep_ip_addresses=self.keep_ip_addresses, keep_hostnames=self.keep_hostnames,
                       phone_region=self.phone_region)


@dataclass(frozen=True)
class BudgetState:
    """Tokens used today (None: Redis unavailable), the budget (None: no cap) and whether it is spent."""

    used: int | None
    budget: int | None

    @property
    def spent(self) -> bool:
        return self.budget is not None and self.used is not None and self.used >= self.budget


class NotePolicyResource(dg.ConfigurableResource):
    """Every tenant's note policy, and the Redis (``redis_url``) holding the token counts. A tenant without
    an entry gets the defaults."""

    policies: list[TenantNotePolicy] = []
    redis_url: str
    socket_timeout_s: float = 0.5

    def policy(self, tenant_id: str) -> TenantNotePolicy:
        return endpoint_for(self.policies, tenant_id) or TenantNotePolicy(tenant_id=tenant_id)

    def budget_state(self, tenant_id: str, now: datetime | None = None) -> BudgetState:
        """Today's token use against the tenant's budget."""
        budget = self.policy(tenant_id).daily_token_budget
        try:
            used = int(self._client().get(_key(tenant_id, now)) or 0)
        except (redis.RedisError, ValueError) as exc:  # down, or a count that is not a number
            log.warning("token budget unknown (%s), the LLM is used: %s", type(exc).__name__, exc)
            used = None
        return BudgetState(used=used, budget=budget)

    def record_tokens(self, tenant_id: str, tokens: int, now: datetime | None = None) -> int | None:
        """Add ``tokens`` to today's count; returns the new count, or None when Redis is unavailable."""
        key = _key(tenant_id, now)
        try:
            pipe = self._client().pipeline()
            pipe.incrby(key, tokens)
            pipe.expire(key, 2 * 86_400)
            return int(pipe.execute()[0])
        except (redis.RedisError, ValueError) as exc:
            log.warning("token use not recorded (Redis unavailable): %s", exc)
            return None

    def _client(self) -> redis.Redis:
        return shared_redis_client(self.redis_url, self.socket_timeout_s)


def _key(tenant_id: str, now: datetime | None) -> str:
    day = (now or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    return f"llm_tokens:{tenant_id}:{day}"
