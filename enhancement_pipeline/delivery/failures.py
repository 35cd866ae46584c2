"""What a failed call means for an ``enhance_ticket`` run: try again, or fail at once with a reason.

Transient failures (429, 5xx, a proxy's page, a timeout, a note whose POST outcome is unknown) are raised as
they are: the op's ``SDP_RETRY_POLICY`` retries the step in place with exponential backoff and jitter, then run
retries (``RUN_MAX_RETRIES``, ``dagster.yaml``) start the run again, then the delivery sweep comes back later.

Failures that no retry can fix (401/403: the tenant's key; 404: the ticket was deleted or merged; a 4xxx
validation answer; a record SDP sends in a shape we cannot read) become a ``dg.Failure`` with
``allow_retries=False`` and a reason a dispatcher can act on; the op also sets Dagster's
``dagster/retry_on_asset_or_op_failure`` tag to false on its own run so that run retries skip it, and
``FAILURE_TAG`` so the runs page can be filtered by why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from enhancement_pipeline.servicedesk.client import SdpAuthError, SdpNotFound, SdpRequestError
from enhancement_pipeline.servicedesk.payloads import PayloadError

SDP_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
"""Step retries for transient SDP failures: after 2, 6 and 14 s (Dagster's exponential backoff, (2**n - 1) x 2 s,
each plus or minus up to 2 s), on top of the client's own four attempts (1, 2, 4 s apart, or Retry-After): about
50 s of outage absorbed per run attempt, three run attempts with run retries."""
RUN_MAX_RETRIES = 2
"""Run retries of ``enhance_ticket`` (tag ``dagster/max_retries``): for crashed workers and exhausted steps."""
MAX_RUNTIME_S = int(os.environ.get("ENHANCE_TICKET_MAX_RUNTIME_S", "600"))
"""``dagster/max_runtime`` of ``enhance_ticket``: a healthy run takes seconds; one still STARTED after this
long has lost its worker (the DefaultRunLauncher cannot tell), and run monitoring fails it so it is retried.
``ENHANCE_TICKET_MAX_RUNTIME_S`` overrides it (``benchmarks/faults.py`` sets it small)."""
NO_RUN_RETRY_TAG = "dagster/retry_on_asset_or_op_failure"
FAILURE_TAG = "enhancement/failure"
"""Run tag naming why a run failed for good: ``ticket_not_found``, ``sdp_auth``, ``sdp_rejected``,
``unreadable_ticket``."""

PERMANENT = (SdpNotFound, SdpAuthError, SdpRequestError, PayloadError)


def permanent_reason(exc: Exception, tenant_id: str, ticket_id: str) -> tuple[str, str]:
    """(``FAILURE_TAG`` value, a sentence for the run's failure) for a failure in ``PERMANENT``."""
    if isinstance(exc, SdpNotFound):
        return "ticket_not_found", (f"request {ticket_id} no longer exists in {tenant_id}'s SDP (deleted or merged "
                                    f"since it was listed); nothing to enhance. SDP said: {exc}")
    if isinstance(exc, SdpAuthError):
        return "sdp_auth", (f"SDP refused {tenant_id}'s API key ({exc}); fix the key or its technician's "
                            "permissions, then re-execute this run")
    if isinstance(exc, PayloadError):
        return "unreadable_ticket", (f"SDP sent request {ticket_id} in a shape this pipeline cannot read: {exc}")
    return "sdp_rejected", f"SDP rejected the call for request {ticket_id}: {exc}"


@contextmanager
def failing_for_good(context: dg.OpExecutionContext, tenant_id: str, ticket_id: str) -> Iterator[None]:
    """Run the body; a ``PERMANENT`` failure becomes a ``dg.Failure`` that neither the step's RetryPolicy nor
    run retries repeat (see the module docstring). Anything else propagates and is retried."""
    try:
        yield
    except PERMANENT as exc:
        kind, reason = permanent_reason(exc, tenant_id, ticket_id)
        context.log.error(f"failing without retries ({kind}): {reason}")
        context.instance.add_run_tags(context.run_id, {NO_RUN_RETRY_TAG: "false", FAILURE_TAG: kind})
        raise dg.Failure(description=reason, allow_retries=False,
                         metadata={"failure": kind, "error": f"{type(exc).__name__}: {exc}"[:500]}) from exc
