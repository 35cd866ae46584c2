"""The one ``Definitions`` object: assets, the per-ticket job, its sensor, and resources chosen here.

Resources read the environment (``settings.py``). A value that may hold a secret (the database URL) is
bound with ``EnvVar`` when its variable is set, so the UI shows the variable's name, not its value; API
keys are read by name at call time (``*_API_KEY_ENV``).
"""

import os

import dagster as dg

from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.enhancement.llm import LlmResource
from enhancement_pipeline.history.assets import ticket_history
from enhancement_pipeline.inventory.assets import system_inventory
from enhancement_pipeline.knowledge.client import KnowledgeBaseResource
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.servicedesk.sensors import new_ticket_sensor
from enhancement_pipeline.settings import Settings, get_settings
from enhancement_pipeline.storage.cache import RedisCacheResource
from enhancement_pipeline.storage.postgres import PostgresResource


def _secret_or(name: str, default: str) -> str | dg.EnvVar:
    return dg.EnvVar(name) if os.environ.get(name) else default


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Resources for ``settings``; tests and the demo pass their own settings."""
    cache = RedisCacheResource(redis_url=_secret_or("REDIS_URL", settings.redis_url))
    return {
        "sdp": ServiceDeskResource(tenant_id=settings.tenant_id, base_url=settings.sdp_base_url,
                                   api_key_env=settings.sdp_api_key_env, auth_scheme=settings.sdp_auth_scheme),
        "postgres": PostgresResource(database_url=_secret_or("DATABASE_URL", settings.database_url)),
        "kb": KnowledgeBaseResource(base_url=settings.kb_base_url, cache=cache),
        "llm": LlmResource(base_url=settings.llm_base_url, api_key_env=settings.llm_api_key_env,
                           model=settings.llm_model),
    }


defs = dg.Definitions(
    assets=[ticket_history, system_inventory],
    jobs=[enhance_ticket],
    sensors=[new_ticket_sensor],
    resources=build_resources(get_settings()),
)
