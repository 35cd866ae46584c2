"""What both history benchmarks measure beside wall time (imported by the scripts next to it)."""

from __future__ import annotations

from pathlib import Path


def postgres_cpu_s(data_dir: Path) -> float:
    """CPU seconds of the postmaster and its live children (backends that exited are not counted)."""
    import psutil

    master = psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))
    total = 0.0
    for proc in [master, *master.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def migrated_postgres(prefix: str):
    """A fresh project PostgreSQL in a temporary folder with the schema migrated: ``(server, database url)``.

    It is sized for this machine's memory as any project server is (``EmbeddedPostgres.memory_settings``;
    ``EMBEDDED_POSTGRES_MEMORY=4GB`` sizes it for less).

    The caller stops it (``server.stop()``), in a ``finally``.
    """
    import tempfile

    from enhancement_pipeline.local.services import EmbeddedPostgres
    from enhancement_pipeline.storage.migrations import migrate

    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # PostgreSQL runs as `nobody` when this runs as root
    postgres = EmbeddedPostgres(root / "pg")
    postgres.start()
    postgres.create_database("enhancement")
    db_url = postgres.url("enhancement")
    migrate(db_url)
    return postgres, db_url


def remove_postgres(postgres) -> None:
    """Stop a ``migrated_postgres`` server and delete its temporary folder (1M rows take gigabytes)."""
    import shutil

    postgres.stop()
    shutil.rmtree(postgres.root.parent, ignore_errors=True)
