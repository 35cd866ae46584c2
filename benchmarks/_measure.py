"""What both history benchmarks measure beside wall time (imported by the scripts next to it)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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


class CachedEncoder:
    """The production encoder with a disk cache keyed by text (so re-runs skip the slow part)."""

    def __init__(self, encoder, path: Path) -> None:
        import numpy as np

        self.model_name = encoder.model_name
        self._encoder, self._path = encoder, path
        self._cache: dict = {}
        if path.exists():
            with np.load(path) as data:
                self._cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self._dirty = False

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def encode(self, texts: Sequence[str]):
        import numpy as np

        keys = [self._key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}.items())
        if missing:
            vectors = self._encoder.encode([t for _, t in missing])
            self._cache.update(zip([k for k, _ in missing], vectors, strict=True))
            self._dirty = True
        return np.stack([self._cache[k] for k in keys])

    def save(self) -> None:
        import numpy as np

        if self._dirty:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self._cache)
            np.savez(self._path, keys=np.array(keys), vectors=np.stack([self._cache[k] for k in keys]))
