"""Redis as a cache resource. A Redis outage costs cache hits, never a run: every call degrades to a miss."""

import logging
from functools import lru_cache

import dagster as dg
import redis

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def shared_redis_client(redis_url: str, socket_timeout_s: float) -> redis.Redis:
    """One client (and so one connection pool) per URL and process: a run makes several cache calls."""
    return redis.Redis.from_url(redis_url, socket_timeout=socket_timeout_s,
                                socket_connect_timeout=socket_timeout_s, decode_responses=True)


class RedisCacheResource(dg.ConfigurableResource):
    """A string cache with TTLs in Redis (``redis_url`` like ``redis://host:6379/0``).

    Keys are namespaced by the caller (tenant first); values are JSON strings.
    """

    redis_url: str
    socket_timeout_s: float = 0.5

    def _client(self) -> redis.Redis:
        return shared_redis_client(self.redis_url, self.socket_timeout_s)

    def get(self, key: str) -> str | None:
        """The cached value, or None on a miss or when Redis cannot be reached."""
        try:
            return self._client().get(key)
        except redis.RedisError as exc:
            log.warning("redis get failed, treating as a miss: %s", exc)
            return None

    def set(self, key: str, value: str, ttl_s: int) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; False when Redis cannot be reached."""
        try:
            return bool(self._client().set(key, value, ex=ttl_s))
        except redis.RedisError as exc:
            log.warning("redis set failed, value not cached: %s", exc)
            return False

    def get_many(self, keys: list[str]) -> list[str | None]:
        """The cached values of ``keys`` in order (None for each miss); all misses when Redis cannot be reached."""
        if not keys:
            return []
        try:
            return list(self._client().mget(keys))
        except redis.RedisError as exc:
            log.warning("redis mget failed, treating as misses: %s", exc)
            return [None] * len(keys)

    def set_many(self, values: dict[str, str], ttl_s: int) -> bool:
        """Store each of ``values`` for ``ttl_s`` seconds in one round trip; False when Redis cannot be reached."""
        if not values:
            return True
        try:
            pipe = self._client().pipeline(transaction=False)
            for key, value in values.items():
                pipe.set(key, value, ex=ttl_s)
            pipe.execute()
            return True
        except redis.RedisError as exc:
            log.warning("redis set failed, values not cached: %s", exc)
            return False
