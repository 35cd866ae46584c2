"""The push receiver: SDP's webhook on request creation launches the ticket's ``enhance_ticket`` run at once.

Polling finds a new ticket on the new-ticket sensor's next tick (the daemon ticks sensors every ~5 s); a Custom
Trigger on *Created* with a Webhook action (docs/deployment.md) tells us within a second. The receiver:

1. authenticates the call: the header ``X-Webhook-Secret`` must equal the tenant's secret (the environment
   variable named by the tenant's ``sdp.webhook_secret_env``, ``SDP_WEBHOOK_SECRET`` by default), compared in
   constant time. A tenant without a secret has push off (403);
2. validates the body (``payload.TicketEvent``: a request id, digits) and refuses anything else with 422;
3. reads the request through the SDP API, never trusting the body: a request SDP does not know is refused (404),
   a finished one acknowledged and left alone (200, ``skipped`` with the reason);
4. claims the ticket (``delivery/claims.py``) and, when the claim is its own, queues the run (``launch.py``),
   tagged ``enhancement/trigger: push``; answers 202 with the run id. A ticket the sensor claimed first is
   acknowledged (200, ``already_launched``).

Whatever goes wrong after authentication (SDP, Postgres or Dagster's storage unreachable) is answered 503 with
the reason and loses nothing: the new-ticket sensor still polls and finds the ticket (push is an accelerator,
never the only way in). Every answer is JSON ``{"status": ..., "reason"?: ..., "run_id"?: ...}``.

Run it with ``enhancement-pipeline receiver`` (uvicorn), beside the daemon, with the daemon's environment.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from enhancement_pipeline.delivery import claims
from enhancement_pipeline.push.payload import MAX_BODY_BYTES, TicketEvent
from enhancement_pipeline.servicedesk.client import SdpError, SdpNotFound
from enhancement_pipeline.servicedesk.payloads import FINISHED_STATUSES, PayloadError, parse_request
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Webhook-Secret"


@dataclass
class Receiver:
    """What the receiver works with: the tenants, their SDP and the app database (the definitions' resources),
    and ``submit(tenant_id, ticket_id, display_id) -> run id``, which queues the run."""

    tenants: Sequence[Tenant]
    sdp: ServiceDeskResource
    postgres: PostgresResource
    submit: Callable[[str, str, str | None], str]

    def tenant(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.tenant_id == tenant_id), None)

    def handle(self, tenant: Tenant, event: TicketEvent) -> tuple[int, dict]:
        """Steps 3-4 of the module docstring for an authenticated, valid event; blocking (SDP, Postgres).
        Anything unforeseen is answered 503 (left to polling), never an HTML 500 the caller cannot read."""
        try:
            return self._handle(tenant, event)
        except Exception as exc:
            log.exception("push: %s/%s", tenant.tenant_id, event.request_id)
            return 503, {"status": "deferred", "reason": f"{type(exc).__name__}: {exc}"[:300] + "; left to polling"}

    def _handle(self, tenant: Tenant, event: TicketEvent) -> tuple[int, dict]:
        ticket_id = event.request_id
        try:
            with self.sdp.client(tenant.tenant_id) as client:
                request = parse_request(client.get_request(ticket_id))
        except SdpNotFound:
            return 404, {"status": "refused", "reason": f"SDP has no request {ticket_id}"}
        except PayloadError as exc:
            # The run reads the full record and fails with this reason where people look: let the sensor have it.
            return 503, {"status": "deferred", "reason": f"request {ticket_id} unreadable: {exc}; left to polling"}
        except SdpError as exc:
            return 503, {"status": "deferred", "reason": f"SDP unavailable ({exc}); left to polling"}
        if request.status_name in FINISHED_STATUSES:
            return 200, {"status": "skipped", "reason": f"request {ticket_id} is {request.status_name}"}
        try:
            with self.postgres.connection() as conn:
                claimed = claims.claim(conn, tenant.tenant_id, [ticket_id], claims.PUSH)
        except psycopg.Error as exc:
            return 503, {"status": "deferred", "reason": f"ticket claims unavailable ({type(exc).__name__}); "
                                                         "left to polling"}
        if ticket_id not in claimed.new:  # the sensor's, or this webhook delivered again
            held = claimed.held.get(ticket_id, "another trigger")
            return 200, {"status": "already_launched", "reason": f"launched by the {held}"}
        try:
            run_id = self.submit(tenant.tenant_id, ticket_id, request.display_id)
        except Exception as exc:  # Dagster's storage or the code: give the ticket back to the sensor
            log.exception("push: could not queue the run of %s/%s", tenant.tenant_id, ticket_id)
            try:
                with self.postgres.connection() as conn:
                    claims.release(conn, tenant.tenant_id, ticket_id, claims.PUSH)
            except psycopg.Error:
                log.warning("push: claim of %s/%s not released; the delivery sweep will enhance it",
                            tenant.tenant_id, ticket_id)
            return 503, {"status": "deferred", "reason": f"could not queue the run ({type(exc).__name__}); "
                                                         "left to polling"}
        log.info("push: queued run %s for %s/%s", run_id, tenant.tenant_id, ticket_id)
        return 202, {"status": "launched", "run_id": run_id}


def create_app(receiver: Receiver) -> Starlette:
    """The ASGI app: ``POST /sdp/{tenant_id}/requests`` (the webhook), ``GET /health``."""

    async def webhook(request: Request) -> JSONResponse:
        tenant = receiver.tenant(request.path_params["tenant_id"])
        if tenant is None:
            return JSONResponse({"status": "refused", "reason": "unknown tenant"}, status_code=404)
        secret = os.environ.get(tenant.sdp.webhook_secret_env or "", "")
        if not secret:
            return JSONResponse({"status": "refused", "reason": f"push is not configured for {tenant.tenant_id}"},
                                status_code=403)
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return JSONResponse({"status": "refused", "reason": f"missing or wrong {SECRET_HEADER}"},
                                status_code=401)
        body = await _bounded_body(request)
        if body is None:
            return JSONResponse({"status": "refused", "reason": f"body over {MAX_BODY_BYTES:,} bytes"},
                                status_code=413)
        try:
            event = TicketEvent.model_validate(json.loads(body))
        except (ValueError, ValidationError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            reason = ("; ".join(e["msg"] for e in exc.errors()) if isinstance(exc, ValidationError)
                      else "nested too deep" if isinstance(exc, RecursionError) else str(exc))
            return JSONResponse({"status": "refused", "reason": f"unreadable event: {reason}"[:500]},
                                status_code=422)
        if not event.is_creation:
            return JSONResponse({"status": "ignored", "reason": f"event {event.event!r} is not a creation"})
        status, answer = await run_in_threadpool(receiver.handle, tenant, event)
        return JSONResponse(answer, status_code=status)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "tenants": [t.tenant_id for t in receiver.tenants]})

    return Starlette(routes=[Route("/sdp/{tenant_id}/requests", webhook, methods=["POST"]),
                             Route("/health", health)])


async def _bounded_body(request: Request) -> bytes | None:
    """The request's body, or None once it passes ``MAX_BODY_BYTES`` (read no further: a chunked body has no
    Content-Length to refuse it by)."""
    try:
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return None
    except ValueError:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def receiver_for_deployment() -> tuple[Receiver, Callable[[], None]]:
    """The receiver of this deployment (tenants and resources from the environment, runs queued on the Dagster
    instance of ``DAGSTER_HOME``) and the function that releases what it holds."""
    import dagster as dg

    from enhancement_pipeline.definitions import defs
    from enhancement_pipeline.push.launch import RunSubmitter
    from enhancement_pipeline.tenants import get_tenants

    instance = dg.DagsterInstance.get()
    # A long-lived process, as the webserver is: pooled storage connections instead of one per query.
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)
    submitter = RunSubmitter(instance)
    # Resolved as Dagster resolves them for a run (their EnvVar values read from the environment).
    resolved = dg.build_resources({"sdp": defs.resources["sdp"], "postgres": defs.resources["postgres"]})
    resources = resolved.__enter__()

    def submit(tenant_id: str, ticket_id: str, display_id: str | None) -> str:
        run = submitter.submit(
            run_config={"ops": {"load_ticket": {"config": {"tenant_id": tenant_id, "ticket_id": ticket_id}}}},
            tags={"tenant": tenant_id, "ticket_id": ticket_id, "display_id": display_id or "",
                  claims.TRIGGER_TAG: claims.PUSH})
        return run.run_id

    def close() -> None:
        resolved.__exit__(None, None, None)
        submitter.close()
        instance.dispose()

    receiver = Receiver(tenants=get_tenants(), sdp=resources.sdp, postgres=resources.postgres, submit=submit)
    return receiver, close
