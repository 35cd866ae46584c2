"""Knowledge-base search over HTTP, cached in Redis for an hour per tenant and query.

The query travels in the URL (``GET ...?query=``), and URLs have limits (httpx refuses a component over 64 KiB,
many servers a request line over 8 KiB), so ``search`` sends at most ``MAX_QUERY_CHARS`` characters and
``MAX_QUERY_BYTES`` bytes of UTF-8 (``bounded_query``): the subject and the start of the description, which is
where a ticket says what is wrong. The cache is keyed by what was sent.
"""

import hashlib
import json
import logging

import dagster as dg
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from enhancement_pipeline.models import KbArticle
from enhancement_pipeline.storage.cache import RedisCacheResource
from enhancement_pipeline.tenants import endpoint_for
from enhancement_pipeline.tls import tls_context

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 1_000
"""Characters of the (redacted) query sent to the KB: a search engine ranks on the words, not on a whole log."""
MAX_QUERY_BYTES = 2_000
"""...and UTF-8 bytes (emoji and non-Latin scripts take 2-4 bytes, 3 URL characters each): the URL stays
under about 6 KB whatever the script."""


def bounded_query(query: str) -> str:
    """``query`` with its whitespace folded, cut to ``MAX_QUERY_CHARS`` characters and ``MAX_QUERY_BYTES`` bytes
    of UTF-8, at the last space when there is one in the final fifth (a word is not sent half)."""
    query = " ".join(query.split())
    if len(query) <= MAX_QUERY_CHARS and len(query.encode()) <= MAX_QUERY_BYTES:
        return query
    head = query[:MAX_QUERY_CHARS].encode()[:MAX_QUERY_BYTES].decode("utf-8", "ignore")
    cut = head.rfind(" ", len(head) * 4 // 5)
    return head[:cut] if cut > 0 else head


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
        """(articles best first, whether they came from the cache). Sends ``bounded_query(query)``."""
        endpoint = self.endpoint(tenant_id)
        query = bounded_query(query)
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
                                 params={"query": query, "limit": limit}, timeout=self.timeout_s,
                                 verify=tls_context())
            response.raise_for_status()
            answer = _SearchAnswer.model_validate(response.json())
        except (httpx.HTTPError, ValueError, ValidationError) as exc:
            raise KnowledgeBaseError(f"KB search failed: {type(exc).__name__}: {exc}") from exc
        articles = [KbArticle(article_id=a.id, title=a.title, url=a.url, summary=a.summary or "", score=a.score)
                    for a in answer.articles]
        if endpoint.cache_ttl_s:
            self.cache.set(key, json.dumps([a.model_dump() for a in articles]), endpoint.cache_ttl_s)
        return articles, False
