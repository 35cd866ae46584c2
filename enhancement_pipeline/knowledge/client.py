"""Knowledge-base search over HTTP, cached in Redis for an hour per tenant and query."""

import hashlib
import json
import logging

import dagster as dg
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from enhancement_pipeline.models import KbArticle
from enhancement_pipeline.storage.cache import RedisCacheResource
from enhancement_pipeline.tenants import endpoint_for

log = logging.getLogger(__name__)


class KnowledgeBaseError(RuntimeError):
    """The KB API could not be reached or answered something that is not a search result."""


class _ArticleRow(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    title: str
    url: str | None = None
    summary: str | None = ""
    score: float = 0.0


class _SearchAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    articles: list[_ArticleRow] = Field(default_factory=list)


class KbEndpoint(dg.Config):
    """One tenant's knowledge base: the search API's root and how long answers are cached (seconds)."""

    tenant_id: str
    base_url: str
    cache_ttl_s: int = 3600


class KnowledgeBaseResource(dg.ConfigurableResource):
    """``GET {base_url}/api/v1/articles/search?query=&limit=`` of the tenant's KB, with a Redis cache in front.

    Cache keys are ``kb:{tenant}:{sha256(limit, query)}``, TTL the endpoint's ``cache_ttl_s``. A Redis outage
    only costs cache hits. Raises ``KnowledgeBaseError`` when the API fails or the tenant has no KB declared.
    """

    endpoints: list[KbEndpoint]
    cache: RedisCacheResource
    timeout_s: float = 10.0

    def endpoint(self, tenant_id: str) -> KbEndpoint:
        endpoint = endpoint_for(self.endpoints, tenant_id)
        if endpoint is not None:
            return endpoint
        raise KnowledgeBaseError(f"no knowledge base declared for tenant {tenant_id!r}")

    def search(self, tenant_id: str, query: str, limit: int = 5) -> tuple[list[KbArticle], bool]:
        """(articles best first, whether they came from the cache)."""
        endpoint = self.endpoint(tenant_id)
        digest = hashlib.sha256(f"{limit}\n{query}".encode()).hexdigest()
        key = f"kb:{tenant_id}:{digest}"
        cached = self.cache.get(key)
        if cached is not None:
            try:
                return [KbArticle.model_validate(a) for a in json.loads(cached)], True
            except (ValueError, ValidationError):
                log.warning("ignoring unreadable cache entry %s", key)
        try:
            response = httpx.get(f"{endpoint.base_url.rstrip('/')}/api/v1/articles/search",
                                 params={"query": query, "limit": limit}, timeout=self.timeout_s)
            response.raise_for_status()
            answer = _SearchAnswer.model_validate(response.json())
        except (httpx.HTTPError, ValueError, ValidationError) as exc:
            raise KnowledgeBaseError(f"KB search failed: {type(exc).__name__}: {exc}") from exc
        articles = [KbArticle(article_id=a.id, title=a.title, url=a.url, summary=a.summary or "", score=a.score)
                    for a in answer.articles]
        if endpoint.cache_ttl_s:
            self.cache.set(key, json.dumps([a.model_dump() for a in articles]), endpoint.cache_ttl_s)
        return articles, False
