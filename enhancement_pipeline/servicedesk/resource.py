"""ServiceDesk Plus as a Dagster resource."""

import os

import dagster as dg

from enhancement_pipeline.servicedesk.client import ServiceDeskClient


class ServiceDeskResource(dg.ConfigurableResource):
    """One tenant's SDP instance.

    ``base_url``: on-prem ``https://host:8080`` or cloud ``https://sdpondemand.manageengine.com/app/<portal>``.
    The API key is read from the env var named by ``api_key_env`` when a client is made, so it never shows in
    config or the UI. Raises ``RuntimeError`` from ``client()`` when that variable is unset.
    """

    tenant_id: str = "default"
    base_url: str
    api_key_env: str = "SDP_API_KEY"
    auth_scheme: str = "authtoken"
    timeout_s: float = 15.0
    max_attempts: int = 4
    backoff_base_s: float = 1.0

    def client(self) -> ServiceDeskClient:
        """A new client; close it (or use it as a context manager) when done."""
        key = os.environ.get(self.api_key_env)
        if not key:
            raise RuntimeError(f"SDP API key missing: set the {self.api_key_env} environment variable")
        return ServiceDeskClient(self.base_url, key, auth_scheme=self.auth_scheme, timeout_s=self.timeout_s,
                                 max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s)

    def request_url(self, ticket_id: str) -> str:
        """The request's page in the SDP web UI, for links in notes."""
        return f"{self.base_url.rstrip('/')}/WorkOrder.do?woMode=viewWO&woID={ticket_id}"
