"""The per-tenant SDP request budget: shared through Redis, paused by 429s, degraded (not broken) without Redis.

The assertions are lower bounds on elapsed time (a budget that works makes calls *wait*), which a slow machine
cannot break; speed itself is measured in benchmarks/.
"""

from __future__ import annotations

import time
import uuid

import httpx

from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.servicedesk.budget import BudgetedTransport, RequestBudget
from enhancement_pipeline.servicedesk.client import ServiceDeskClient
from enhancement_pipeline_tests.conftest import SDP_KEY


def fresh_tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"  # budgets live in the session's Redis: one key per test


def test_two_processes_share_one_budget(redis_server):
    tenant = fresh_tenant()
    # Two instances stand for two processes: nothing is shared between them but Redis.
    a, b = RequestBudget(tenant, 10, redis_server.url()), RequestBudget(tenant, 10, redis_server.url())
    started = time.monotonic()
    for _ in range(15):
        a.acquire()
        b.acquire()
    # 30 requests at 10/s: the first second's 10 go at once, the other 20 need about two more seconds.
    assert time.monotonic() - started >= 1.5
    assert a.waited_s + b.waited_s > 0


def test_a_429_pauses_every_process_of_the_tenant(redis_server, sdp_server, sdp_state, db):
    tenant = fresh_tenant()
    told, other = RequestBudget(tenant, 100, redis_server.url()), RequestBudget(tenant, 100, redis_server.url())
    sdp_state.faults.append(Fault(match=r"GET /api/v3/requests$", status=429, sdp_code=4015, retry_after=1.0))
    with httpx.Client(transport=BudgetedTransport(told)) as http:
        answer = http.get(f"{sdp_server.url}/api/v3/requests", headers={"authtoken": SDP_KEY})
    assert answer.status_code == 429 and told.paused_count == 1
    started = time.monotonic()
    other.acquire()
    assert time.monotonic() - started >= 0.5  # most of the second the server asked for

    # Through the client, the 429 is retried once the pause is over, and the call succeeds.
    sdp_state.faults.append(Fault(match=r"GET /api/v3/requests$", status=429, sdp_code=4015, retry_after=0.2))
    with ServiceDeskClient(sdp_server.url, SDP_KEY, backoff_base_s=0.01, transport=BudgetedTransport(told)) as client:
        client.list_requests_page({"row_count": 1})
    assert told.paused_count == 2


def test_without_redis_the_budget_still_limits_within_the_process(caplog):
    budget = RequestBudget(fresh_tenant(), 5, "redis://127.0.0.1:9/0")  # nothing listens on port 9
    started = time.monotonic()
    for _ in range(8):
        budget.acquire()
    assert time.monotonic() - started >= 0.4
    assert "limiting within this process only" in caplog.text


def test_threads_that_lose_redis_together_all_carry_on(caplog):
    from concurrent.futures import ThreadPoolExecutor

    budget = RequestBudget(fresh_tenant(), 1000, "redis://127.0.0.1:9/0")
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda _: budget.acquire(), range(200)))  # raises here if any thread failed
    assert len(waits) == 200
    assert caplog.text.count("limiting within this process only") == 1  # one fallback, not one per thread
