"""ServiceDesk Plus as a Dagster resource: one SDP endpoint per tenant."""

import os

import dagster as dg
import httpx

from enhancement_pipeline.servicedesk.budget import BudgetedTransport, RequestBudget, budget_for
from enhancement_pipeline.servicedesk.client import ServiceDeskClient
from enhancement_pipeline.tenants import Tenant, endpoint_for
from enhancement_pipeline.tls import tls_context


class UnknownTenantError(KeyError):
    """A tenant id that the tenants file does not declare."""


class SdpEndpoint(dg.Config):
    """One tenant's SDP, as the UI shows it: where, which env var holds the key, and the background budget."""

    tenant_id: str
    base_url: str
    api_key_env: str = "SDP_API_KEY"
    auth_scheme: str = "authtoken"
    request_budget_per_s: int = 10
    import_concurrency: int = 8

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> "SdpEndpoint":
        return cls(tenant_id=tenant.tenant_id, base_url=tenant.sdp.base_url, api_key_env=tenant.sdp.api_key_env,
                   auth_scheme=tenant.sdp.auth_scheme, request_budget_per_s=tenant.sdp.request_budget_per_s,
                   import_concurrency=tenant.sdp.import_concurrency)


class ServiceDeskResource(dg.ConfigurableResource):
    """Every tenant's SDP instance.

    ``base_url``: on-prem ``https://host:8080`` or cloud ``https://sdpondemand.manageengine.com/app/<portal>``.
    API keys are read from the env var each endpoint names when a client is made, so they never show in config
    or the UI. ``budget_redis_url`` is the Redis that holds the request budgets shared across processes ("" keeps
    each process's budget to itself).
    """

    endpoints: list[SdpEndpoint]
    budget_redis_url: str = ""
    timeout_s: float = 15.0
    max_attempts: int = 4
    backoff_base_s: float = 1.0

    def endpoint(self, tenant_id: str) -> SdpEndpoint:
        """The tenant's endpoint. Raises ``UnknownTenantError`` for a tenant the tenants file does not declare."""
        endpoint = endpoint_for(self.endpoints, tenant_id)
        if endpoint is not None:
            return endpoint
        raise UnknownTenantError(f"tenant {tenant_id!r} is not declared (known: "
                                 f"{', '.join(e.tenant_id for e in self.endpoints)})")

    def budget(self, tenant_id: str) -> RequestBudget:
        """The tenant's background request budget in this process."""
        endpoint = self.endpoint(tenant_id)
        return budget_for(tenant_id, endpoint.request_budget_per_s, self.budget_redis_url or None)

    def client(self, tenant_id: str, *, budgeted: bool = False) -> ServiceDeskClient:
        """A new client for the tenant; close it (or use it as a context manager) when done.

        ``budgeted``: spend the tenant's request budget on every request (imports and the resolved-ticket
        sensor). A client may be shared by a few threads; an import gives each fetching thread its own.
        Raises ``UnknownTenantError``, or ``RuntimeError`` when the tenant's key variable is unset.
        """
        endpoint = self.endpoint(tenant_id)
        key = os.environ.get(endpoint.api_key_env)
        if not key:
            raise RuntimeError(f"SDP API key for tenant {tenant_id!r} missing: set the {endpoint.api_key_env} "
                               "environment variable")
        transport: httpx.BaseTransport = httpx.HTTPTransport(verify=tls_context())
        if budgeted:
            transport = BudgetedTransport(self.budget(tenant_id), transport)
        return ServiceDeskClient(endpoint.base_url, key, auth_scheme=endpoint.auth_scheme, timeout_s=self.timeout_s,
                                 max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s,
                                 transport=transport)

    def request_url(self, tenant_id: str, ticket_id: str) -> str:
        """The request's page in the tenant's SDP web UI, for links in notes and metadata."""
        return f"{self.endpoint(tenant_id).base_url.rstrip('/')}/WorkOrder.do?woMode=viewWO&woID={ticket_id}"
