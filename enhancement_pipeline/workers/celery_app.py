"""Warm run workers: the Celery app whose workers execute Dagster runs launched by ``CeleryRunLauncher``.

``dagster.yaml`` names ``dagster_celery.launcher.CeleryRunLauncher`` as the run launcher: the daemon's run queue
hands each run to Celery (broker and result backend: Redis, ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND``),
and a worker process that is already running executes it (``dagster_celery.tasks``' ``execute_job`` task, which
runs Dagster's own ``execute_run`` body). Each run keeps its run id, tags, events, retries and monitoring; only the
fresh interpreter per run is gone (issue 16: ~2.5 CPU-s per run to start one, against ~0.2 CPU-s warm).

Why this module and not ``dagster_celery.app``: that app reads its broker from ``dagster_celery_config`` or
RabbitMQ defaults, and imports nothing of ours. Here the broker is the project's Redis, and the worker's main
process imports the code location (Dagster, the ops, openai, httpx, polars...) once, before Celery forks its
pool: every child starts warm. The sentence encoder (ONNX Runtime, whose thread pools do not survive a fork) is
loaded in each child right after the fork (``worker_process_init``), once per child, not per run.

Start one with ``enhancement-pipeline worker`` (``cli.py``), which runs
``celery -A enhancement_pipeline.workers.celery_app worker -Q dagster``. Its environment must be the daemon's
(``DAGSTER_HOME``, the app's settings): the run reads the instance and resources from it.
"""

from __future__ import annotations

import logging
import os

from celery import signals
from dagster_celery.config import DEFAULT_CONFIG
from dagster_celery.defaults import task_default_queue
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

log = logging.getLogger(__name__)

BROKER_ENV = "CELERY_BROKER_URL"
BACKEND_ENV = "CELERY_RESULT_BACKEND"
PRELOAD_ENV = "RUN_WORKER_PRELOAD"
"""``0`` turns the preloading off (a worker that imports the code at its first run, as a fresh process would)."""


def broker_url() -> str:
    """The Celery broker: ``CELERY_BROKER_URL``, else the project's Redis (``REDIS_URL``) on database 1."""
    return os.environ.get(BROKER_ENV) or _redis_db(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), 1)


def result_backend_url() -> str:
    """Where task states live (``CeleryRunLauncher.check_run_worker_health`` reads them for run monitoring):
    ``CELERY_RESULT_BACKEND``, else the broker's Redis."""
    return os.environ.get(BACKEND_ENV) or broker_url()


def _redis_db(url: str, db: int) -> str:
    base, _, last = url.rstrip("/").rpartition("/")
    return f"{base}/{db}" if last.isdigit() and base.count("/") >= 2 else f"{url.rstrip('/')}/{db}"


# The same arguments CeleryRunLauncher builds its app with (launcher.app_args), so both sides agree on the
# queue, routing and priorities.
app = make_app(app_args={
    "broker": broker_url(),
    "backend": result_backend_url(),
    "include": [],
    "config_source": {
        **DEFAULT_CONFIG,
        # A run is one task; a child takes the next only when it is free (no run waits behind a slow one).
        "worker_prefetch_multiplier": 1,
        # Task states are what run monitoring reads: keep them a week, not Celery's default day.
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
    },
    "task_default_queue": task_default_queue,
})
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)


@signals.worker_init.connect
def _preload_code(**_kwargs) -> None:
    """In the worker's main process, before the pool forks: import the code location the runs will load."""
    if os.environ.get(PRELOAD_ENV, "1") == "0":
        return
    import enhancement_pipeline.definitions  # noqa: F401  (builds Definitions; opens no connection)
    import enhancement_pipeline.enhancement.job  # noqa: F401

    log.info("run worker: code location imported before forking the pool")


@signals.worker_process_init.connect
def _warm_child(**_kwargs) -> None:
    """In each pool child, after the fork: load the sentence encoder once (not fork-safe to share)."""
    if os.environ.get(PRELOAD_ENV, "1") == "0":
        return
    from enhancement_pipeline.history.embeddings import load_encoder

    load_encoder()
