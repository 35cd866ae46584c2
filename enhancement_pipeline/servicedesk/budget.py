"""A per-tenant request budget for ServiceDesk Plus, shared by every process through Redis.

Background work (history backfills, the resolved-ticket sensor) runs in several processes at once: the
daemon's sensor threads and each run's own process. They all spend the same API key, so the budget lives in
Redis: the ``limits`` library's sliding-window counter (the same one Flask-Limiter uses) keyed by tenant.
When SDP answers 429, the whole tenant pauses (a Redis key with a TTL), not only the thread that was told.

A Redis outage must not stop an import: the budget then falls back to an in-process limiter and says so
in the log. ``BudgetedTransport`` puts the budget in front of httpx, the seam the client already exposes.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import redis
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from enhancement_pipeline.servicedesk.client import retry_after_s

log = logging.getLogger(__name__)

DEFAULT_PAUSE_S = 5.0
"""How long a tenant pauses after a 429 that carries no Retry-After."""

MAX_PAUSE_S = 120.0

REDIS_RETRY_S = 60.0
"""After Redis fails, how long the budget is kept per process before Redis is tried again."""


class RequestBudget:
    """At most ``per_second`` requests per second for ``tenant_id`` (every process that shares ``redis_url``).

    ``redis_url`` None keeps the budget in this process only. ``acquire()`` blocks until a request may go
    and returns the seconds it waited (a process may run ahead of the shared count by at most ``batch``
    requests, 50 ms of budget); ``pause(s)`` holds every caller of the tenant for ``s`` seconds.
    ``waited_s`` (summed over threads) and ``paused_count`` add up what this instance saw. Without Redis
    the in-process count is used, and Redis is tried again every ``REDIS_RETRY_S``.
    """

    def __init__(self, tenant_id: str, per_second: int, redis_url: str | None = None):
        if per_second < 1:
            raise ValueError(f"per_second must be at least 1, got {per_second}")
        self.tenant_id = tenant_id
        self.per_second = per_second
        self._item = RateLimitItemPerSecond(per_second)
        self.batch = max(1, per_second // 20)
        self._permits = 0
        self._permits_expire = 0.0
        self._local_pause_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0
        self.paused_count = 0
        self._redis_url = redis_url
        self._memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._redis: redis.Redis | None = None
        self._shared: SlidingWindowCounterRateLimiter | None = None
        self._retry_redis_at = 0.0
        self._connect()

    def _connect(self) -> None:
        if self._redis_url:
            self._redis = redis.Redis.from_url(self._redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
            self._shared = SlidingWindowCounterRateLimiter(RedisStorage(self._redis_url, socket_timeout=1.0,
                                                                        socket_connect_timeout=1.0))

    @property
    def _pause_key(self) -> str:
        return f"sdp-budget:{self.tenant_id}:paused"

    def _fall_back(self, failed: object, exc: Exception) -> None:
        """Stop using Redis (once, whichever thread saw it fail first) and try it again in a minute."""
        with self._lock:
            if failed is not self._shared and failed is not self._redis:
                return  # another thread already fell back
            self._redis, self._shared = None, None
            self._retry_redis_at = time.monotonic() + REDIS_RETRY_S
        log.warning("SDP request budget for %s: Redis unavailable (%s); limiting within this process only "
                    "for %.0f s", self.tenant_id, exc, REDIS_RETRY_S)

    def _maybe_reconnect(self) -> None:
        if self._redis_url and self._shared is None and time.monotonic() >= self._retry_redis_at:
            with self._lock:
                if self._shared is None:
                    self._retry_redis_at = time.monotonic() + REDIS_RETRY_S
                    self._connect()

    def _pause_left_s(self) -> float:
        left = self._local_pause_until - time.monotonic()
        client = self._redis
        if client is not None:
            try:
                ttl_ms = client.pttl(self._pause_key)
            except redis.RedisError as exc:
                self._fall_back(client, exc)
            else:
                left = max(left, ttl_ms / 1000 if ttl_ms and ttl_ms > 0 else 0.0)
        return max(0.0, left)

    def _try_hit(self, cost: int) -> bool:
        self._maybe_reconnect()
        shared = self._shared
        if shared is not None:
            try:
                return shared.hit(self._item, "sdp", self.tenant_id, cost=cost)
            except Exception as exc:  # noqa: BLE001 - any storage failure: keep importing, limited locally
                self._fall_back(shared, exc)
        return self._memory.hit(self._item, "sdp", self.tenant_id, cost=cost)

    def _take_local_permit(self) -> bool:
        with self._lock:
            if self._permits > 0 and time.monotonic() < self._permits_expire:
                self._permits -= 1
                return True
            return False

    def acquire(self) -> float:
        """Block until one more request fits the budget; returns the seconds waited.

        Permits are taken from Redis in batches of ``batch`` (50 ms of budget) and handed out locally, so a
        busy import does not pay a Redis round trip per request; a batch not used within a second lapses.
        """
        waited = 0.0
        while True:
            pause = max(0.0, self._local_pause_until - time.monotonic())
            if pause <= 0 and self._take_local_permit():
                break
            if pause <= 0:
                pause = self._pause_left_s()
            if pause <= 0 and self._try_hit(self.batch):
                with self._lock:
                    self._permits += self.batch - 1
                    self._permits_expire = time.monotonic() + 1.0
                break
            # A sliding window frees capacity continuously; short sleeps keep throughput near the budget.
            delay = min(pause, MAX_PAUSE_S) if pause > 0 else min(0.05, self.batch / self.per_second)
            time.sleep(delay)
            waited += delay
        if waited:
            with self._lock:
                self.waited_s += waited
        return waited

    def pause(self, seconds: float) -> None:
        """Hold every request of this tenant for ``seconds`` (capped at ``MAX_PAUSE_S``); permits already
        taken lapse, so nothing from this process goes out during the pause."""
        seconds = min(max(seconds, 0.0), MAX_PAUSE_S)
        with self._lock:
            self.paused_count += 1
            self._permits = 0
            self._local_pause_until = max(self._local_pause_until, time.monotonic() + seconds)
        client = self._redis
        if client is not None:
            try:
                # Only lengthen a pause another process set, never shorten it.
                current = client.pttl(self._pause_key)
                if current is None or current < seconds * 1000:
                    client.set(self._pause_key, "1", px=max(1, int(seconds * 1000)))
            except redis.RedisError as exc:
                self._fall_back(client, exc)


class BudgetedTransport(httpx.BaseTransport):
    """An httpx transport that spends ``budget`` on every request and pauses the tenant on HTTP 429.

    Retries go through it too, so a retry storm cannot exceed the budget. A 429's ``Retry-After`` (seconds)
    sets the pause; without one the pause is ``DEFAULT_PAUSE_S``. ``inner`` is the transport that sends.
    """

    def __init__(self, budget: RequestBudget, inner: httpx.BaseTransport | None = None):
        self.budget = budget
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.budget.acquire()
        response = self.inner.handle_request(request)
        if response.status_code == 429:
            self.budget.pause(retry_after_s(response) or DEFAULT_PAUSE_S)
        return response

    def close(self) -> None:
        self.inner.close()


_budgets: dict[tuple[str, int, str | None], RequestBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(tenant_id: str, per_second: int, redis_url: str | None) -> RequestBudget:
    """The process's budget object for a tenant (one per process, so threads share its local state)."""
    key = (tenant_id, per_second, redis_url or None)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RequestBudget(tenant_id, per_second, redis_url or None)
        return budget
