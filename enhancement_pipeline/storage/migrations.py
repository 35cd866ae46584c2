"""Apply the numbered SQL files in ``sql/`` in order, each once, recorded in ``schema_migrations``.

The files are themselves idempotent (``IF NOT EXISTS``), so a half-applied database heals on the next run.
An advisory lock serialises concurrent callers (the demo, tests and a deploy may race).
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from enhancement_pipeline.settings import SQL_DIR

_LOCK_KEY = 72_201_905  # arbitrary, fixed: the advisory lock id for migrations


def migration_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    """``NNNN_name.sql`` files in version order. Raises ``FileNotFoundError`` if the folder is missing."""
    if not sql_dir.is_dir():
        raise FileNotFoundError(f"migration folder {sql_dir} not found")
    return sorted(p for p in sql_dir.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migrate(database_url: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations to ``database_url``; returns the names applied now (empty if none)."""
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for path in migration_files(sql_dir):
                if path.name in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.name,))
                applied_now.append(path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
