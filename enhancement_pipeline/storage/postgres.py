"""The app database as a Dagster resource: a psycopg 3 connection pool per process."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg_pool import ConnectionPool

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def get_pool(database_url: str, timeout_s: float = 10.0) -> ConnectionPool:
    """The process's pool for ``database_url``, opened on first use (1 to 4 connections).

    ``timeout_s``: how long ``connection()`` waits for a connection before raising ``psycopg_pool.PoolTimeout``.

    One pool per process, not per resource instance: Dagster builds resources per run and per sensor tick,
    and a daemon process ticks for days.
    """
    with _pools_lock:
        pool = _pools.get(database_url)
        if pool is None:
            pool = ConnectionPool(database_url, min_size=1, max_size=4, open=True, timeout=timeout_s,
                                  kwargs={"autocommit": False})
            _pools[database_url] = pool
        return pool


def close_pools() -> None:
    """Close every pool this process opened (at the end of a test session or the demo)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class PostgresResource(dg.ConfigurableResource):
    """Connections to the app database (``ticket_history``, ``system_inventory``, ``posted_notes``).

    ``database_url`` is a libpq URL such as ``postgresql://user@host:5432/enhancement``.
    """

    database_url: str
    connect_timeout_s: float = 10.0

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection inside a transaction that commits on success and rolls back on error."""
        with get_pool(self.database_url, self.connect_timeout_s).connection() as conn:
            yield conn
