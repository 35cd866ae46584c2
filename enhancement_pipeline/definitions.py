"""The one ``Definitions`` object: per-tenant assets, checks, sensors and schedules, the per-ticket job, and
resources.

Everything per tenant is built from the tenants file (``tenants.py``): ``<tenant>/ticket_history`` with its
checks, ``<tenant>/system_inventory``, ``<tenant>/sdp_taxonomy`` with its check and daily schedule,
``<tenant>/triage_calibration`` (daily), ``<tenant>/pipeline_metrics`` (hourly), and the tenant's sensors.
Resources read the environment (``settings.py``); a value that may hold a secret (a database or Redis URL) is
bound with ``EnvVar`` when its variable is set, so the UI shows the variable's name, not its value; API keys are
read by name at call time.
"""

import os
from collections.abc import Sequence

import dagster as dg

from enhancement_pipeline.delivery.sensors import build_delivery_sweep
from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.enhancement.llm import LlmResource
from enhancement_pipeline.enhancement.policy import NotePolicyResource, TenantNotePolicy
from enhancement_pipeline.enhancement.sensors import build_new_ticket_sensor
from enhancement_pipeline.history.assets import build_ticket_history
from enhancement_pipeline.history.checks import build_history_checks
from enhancement_pipeline.history.sync import build_resolved_ticket_sensor, build_sync_job
from enhancement_pipeline.inventory.assets import build_system_inventory
from enhancement_pipeline.inventory.sensors import build_inventory_sensor
from enhancement_pipeline.knowledge.client import KbEndpoint, KnowledgeBaseResource
from enhancement_pipeline.metrics.assets import build_metrics_schedule, build_pipeline_metrics
from enhancement_pipeline.servicedesk.resource import SdpEndpoint, ServiceDeskResource
from enhancement_pipeline.settings import Settings, get_settings
from enhancement_pipeline.storage.cache import RedisCacheResource
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant, tenants_for
from enhancement_pipeline.triage.assets import (
    build_calibration_schedule,
    build_sdp_taxonomy,
    build_taxonomy_schedule,
    build_triage_calibration,
)


def _secret_or(name: str, default: str) -> str | dg.EnvVar:
    return dg.EnvVar(name) if os.environ.get(name) else default


def build_resources(settings: Settings, tenants: Sequence[Tenant] | None = None) -> dict[str, dg.ConfigurableResource]:
    """Resources for ``settings`` and ``tenants`` (default: those ``settings`` declares); tests and the demo
    pass their own."""
    tenants = tenants_for(settings) if tenants is None else tenants
    redis_url = _secret_or("REDIS_URL", settings.redis_url)
    return {
        "sdp": ServiceDeskResource(endpoints=[SdpEndpoint.for_tenant(t) for t in tenants], budget_redis_url=redis_url),
        "postgres": PostgresResource(database_url=_secret_or("DATABASE_URL", settings.database_url)),
        "kb": KnowledgeBaseResource(
            endpoints=[KbEndpoint(tenant_id=t.tenant_id, base_url=t.kb.base_url, cache_ttl_s=t.kb.cache_ttl_s)
                       for t in tenants],
            cache=RedisCacheResource(redis_url=redis_url)),
        "llm": LlmResource(base_url=settings.llm_base_url, api_key_env=settings.llm_api_key_env,
                           model=settings.llm_model, structured_output=settings.llm_structured_output),
        "notes": NotePolicyResource(policies=[TenantNotePolicy.for_tenant(t) for t in tenants], redis_url=redis_url),
    }


def build_definitions(settings: Settings, tenants: Sequence[Tenant] | None = None) -> dg.Definitions:
    """Assets, checks, sensors and resources for every tenant."""
    tenants = tenants_for(settings) if tenants is None else tenants
    assets, checks, sensors, schedules = [], [], [], []
    sync_job = build_sync_job(list(tenants))
    for tenant in tenants:
        history = build_ticket_history(tenant)
        assets += [history, build_system_inventory(tenant), build_sdp_taxonomy(tenant),
                   build_triage_calibration(tenant), build_pipeline_metrics(tenant, settings.metrics_textfile_dir)]
        schedules += [build_taxonomy_schedule(tenant), build_calibration_schedule(tenant),
                      build_metrics_schedule(tenant)]
        checks += build_history_checks(tenant)
        sensors += [build_new_ticket_sensor(tenant, settings), build_resolved_ticket_sensor(tenant, sync_job, settings),
                    build_delivery_sweep(tenant, settings)]
        if tenant.inventory_dir is not None:
            sensors.append(build_inventory_sensor(tenant, settings))
    # Every job runs its steps in the run's own process: a run is a task in a warm worker's pool process
    # (workers/celery_app.py), which may not start processes of its own, and these steps are short or do their
    # own concurrency (the history import fetches with threads).
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=[enhance_ticket, sync_job], sensors=sensors,
                          schedules=schedules,
                          resources=build_resources(settings, tenants), executor=dg.in_process_executor)


defs = build_definitions(get_settings())
