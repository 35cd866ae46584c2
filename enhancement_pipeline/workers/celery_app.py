"""Warm run workers: the Celery app whose workers execute Dagster runs launched by ``CeleryRunLauncher``.

``dagster.yaml`` names ``workers.launcher.CheckedCeleryRunLauncher`` (dagster-celery's ``CeleryRunLauncher``,
mended) as the run launcher: the daemon's run queue hands each run to Celery (broker and result backend: Redis,
``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND``), and a worker process that is already running executes it
(the ``execute_job`` task below: Dagster's own ``execute_run`` body, as in ``dagster_celery.tasks``, on an
instance the process keeps). Each run keeps its run id, tags, events, retries and monitoring; only the fresh
interpreter per run is gone (issue 16: ~2.5 CPU-s per run to start one).

Why this module and not ``dagster_celery.app``: that app reads its broker from ``dagster_celery_config`` or
RabbitMQ defaults, and imports nothing of ours. Here the broker is the project's Redis, and the worker's main
process imports the code location (Dagster, the ops, openai, httpx, polars...) and loads the sentence encoder
once, before Celery forks its pool (``_preload``): every pool process starts warm.

Start one with ``enhancement-pipeline worker`` (``cli.py``), which runs
``celery -A enhancement_pipeline.workers.celery_app worker -Q dagster``. Its environment must be the daemon's
(``DAGSTER_HOME``, the app's settings): the run reads the instance and resources from it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import signals
from dagster_celery.config import (
    DEFAULT_CONFIG,
    TASK_EXECUTE_JOB_NAME,
    TASK_RESUME_JOB_NAME,
)
from dagster_celery.defaults import task_default_queue
from dagster_celery.make_app import make_app

from enhancement_pipeline.workers.launcher import BACKEND_ENV, BROKER_ENV

log = logging.getLogger(__name__)

PRELOAD_ENV = "RUN_WORKER_PRELOAD"
"""``0`` turns the preloading off (a worker that imports the code at its first run, as a fresh process would)."""


def default_concurrency() -> int:
    """Runs a worker executes at once unless told: ``RUN_WORKER_CONCURRENCY``, else the cores it may use.

    With the LLM answering at once a run is CPU work, and one process per core keeps the cores busy: on 2 cores
    benchmarks/latency.py drained a 300-ticket burst at 2.56 tickets/s with 2 processes and 2.51 with 3, whose
    extra process only cost 171 MB of idle memory. A run also waits on the LLM endpoint: where notes take seconds
    to write, raise it (runs waiting on the model hold their process): docs/deployment.md.
    """
    if os.environ.get("RUN_WORKER_CONCURRENCY"):
        return max(1, int(os.environ["RUN_WORKER_CONCURRENCY"]))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores


def broker_url() -> str | None:
    """The Celery broker, ``CELERY_BROKER_URL``: the one dagster.yaml's launcher sends runs to (no default here: a
    worker listening elsewhere than the launcher sends would wait for ever). None when unset."""
    return os.environ.get(BROKER_ENV) or None


def result_backend_url() -> str | None:
    """Where task states live (the launcher reads them for run monitoring): ``CELERY_RESULT_BACKEND``."""
    return os.environ.get(BACKEND_ENV) or None


# The same arguments CeleryRunLauncher builds its app with (launcher.app_args), so both sides agree on the
# queue, routing and priorities.
app = make_app(app_args={
    "broker": broker_url(),
    "backend": result_backend_url(),
    "include": [],
    "config_source": {
        **DEFAULT_CONFIG,
        # A run is one task, and a worker takes one from the queue only when a process of its is free (Redis
        # brokers): a run never waits behind a slow one on a busy worker while another worker idles, and a worker
        # that dies holds no runs it had not started. (worker_prefetch_multiplier 1 alone still reserves one run
        # per process on top of those running.)
        "worker_disable_prefetch": True,
        "worker_prefetch_multiplier": 1,
        # A pool process left above this resident size (KiB) after a run is replaced by a fresh fork of the warm
        # main process (cheap): a safety net for native memory that no one frees.
        "worker_max_memory_per_child": 450_000,
        # Task states are what run monitoring reads: keep them a week, not Celery's default day.
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
    },
    "task_default_queue": task_default_queue,
})
_instance = None


def worker_instance():
    """This process's Dagster instance (``DAGSTER_HOME``), made once and kept for every run it executes.

    dagster-celery's own tasks (``dagster_celery.tasks``) make a new instance per run, and Dagster's Postgres
    storages open a new connection for every event they write (``NullPool``: right for a process per run): about
    60 connections per run, each a new PostgreSQL backend. A worker lives for days, as the webserver does, so it
    takes the webserver's setting (``optimize_for_webserver``: a pooled connection per storage), without its
    statement timeout.
    """
    global _instance
    if _instance is None:
        import dagster as dg

        _instance = dg.DagsterInstance.get()
        _instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)
    return _instance


def _discard(_event: Any) -> None:
    """Events already went to the instance's event log; nothing else needs them."""


# The tasks CeleryRunLauncher sends (by name), as dagster_celery.tasks defines them, on the kept instance.
@app.task(bind=True, name=TASK_EXECUTE_JOB_NAME, track_started=True)
def execute_job(_self: Any, execute_job_args_packed: Any) -> int:
    """Execute one Dagster run (``ExecuteRunArgs``) in this process; 1 when the run failed, else 0."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import unpack_value

    args = unpack_value(execute_job_args_packed, as_type=ExecuteRunArgs)
    return _execute_run_command_body(run_id=args.run_id, instance=worker_instance(), write_stream_fn=_discard,
                                     set_exit_code_on_failure=args.set_exit_code_on_failure is not False)


@app.task(bind=True, name=TASK_RESUME_JOB_NAME, track_started=True)
def resume_job(_self: Any, resume_job_args_packed: Any) -> int:
    """Resume one Dagster run (``ResumeRunArgs``) whose worker died; 1 when the run failed, else 0."""
    from dagster._cli.api import _resume_run_command_body
    from dagster._grpc.types import ResumeRunArgs
    from dagster._serdes import unpack_value

    args = unpack_value(resume_job_args_packed, as_type=ResumeRunArgs)
    return _resume_run_command_body(run_id=args.run_id, instance=worker_instance(), write_stream_fn=_discard,
                                    set_exit_code_on_failure=args.set_exit_code_on_failure is not False)


@signals.worker_init.connect
def _preload(**_kwargs) -> None:
    """In the worker's main process, before the pool forks: import the code location the runs will load and load
    the sentence encoder, so every pool process starts warm and shares their memory.

    The encoder is made fork-safe by its settings: one inference thread (``EMBEDDINGS_THREADS=1``: onnxruntime
    then keeps no thread pool to lose in the fork; the pool processes are the parallelism anyway) and no memory
    arena (``EMBEDDINGS_MEMORY_ARENA=0``: 200-400 MB per process otherwise, ``history/embeddings.py``), unless
    the environment says otherwise; nothing is encoded before the fork. Its weights are then shared by every
    pool process instead of loaded by each (tested: ``test_workers/test_fork.py``). ``gc.freeze`` keeps the
    collector from touching, and so copying, the objects imported here.
    """
    if os.environ.get(PRELOAD_ENV, "1") == "0":
        return
    import gc

    import enhancement_pipeline.definitions  # noqa: F401  (builds Definitions; opens no connection)
    import enhancement_pipeline.enhancement.job  # noqa: F401
    from enhancement_pipeline.history.embeddings import ARENA_ENV, THREADS_ENV, load_encoder

    os.environ.setdefault(THREADS_ENV, "1")
    os.environ.setdefault(ARENA_ENV, "0")
    if os.environ[THREADS_ENV] == "1":
        load_encoder()
    gc.freeze()
    log.info("run worker: code location and encoder loaded before forking the pool")


@signals.task_postrun.connect
def _give_back_memory(**_kwargs) -> None:
    """After each run, hand the memory the run freed back to the system (glibc's ``malloc_trim``).

    Python and the C libraries a run goes through (onnxruntime, psycopg, tokenizers) free their buffers, but
    glibc keeps the pages: a pool process grew ~3 MB per run (measured, 40 runs: +125 MB resident for 2.5 MB of
    live Python objects); ``malloc_trim`` gave 56 MB back over 150 encodes. Not glibc: nothing to do.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@signals.worker_process_init.connect
def _warm_child(**_kwargs) -> None:
    """In each pool process, after the fork: the encoder, when the main process could not load it fork-safely
    (``EMBEDDINGS_THREADS`` above 1)."""
    if os.environ.get(PRELOAD_ENV, "1") == "0":
        return
    from enhancement_pipeline.history.embeddings import load_encoder

    load_encoder()
