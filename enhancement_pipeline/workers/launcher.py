"""``CheckedCeleryRunLauncher``: dagster-celery's ``CeleryRunLauncher`` with two mends, named in ``dagster.yaml``.

Why our own subclass (two things the upstream launcher, dagster-celery 0.29, gets wrong for run monitoring):

1. **Resuming works.** Upstream ``resume_run`` signs the ``resume_job`` task with ``execute_job_args_packed``, a
   keyword that task does not take: every resume raises ``TypeError`` in the daemon, so a run whose worker died
   could only be failed, never resumed (seen in ``benchmarks/faults.py``'s worker-kill scenario). It also
   registered the task anew on every resume (``DuplicateTaskNameWarning``).
2. **A lost worker is seen.** Upstream health is the task's state in the result backend. A pool process that dies
   is reported by its worker (``WorkerLostError``: state ``FAILURE``), but a worker that vanishes whole (its
   machine, its container, a ``SIGKILL`` of its process group) leaves the state at ``STARTED`` for ever: the run
   looked alive until ``dagster/max_runtime``. Here a ``STARTED`` task is checked against the worker that holds
   it (its active and reserved tasks, that worker alone): a worker that does not answer, or answers without the
   task, ``MISSES_BEFORE_LOST`` checks in a row, has lost the run, which run monitoring then resumes elsewhere.
   And a task whose state the backend does not know (a resume still queued for a free process; a state Redis
   lost) is looked for among every worker's tasks, and counts as queued while it was sent less than the start
   timeout ago: a run is not executed a second time beside itself.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from dagster import Field, Noneable, StringSource
from dagster._core.launcher import CheckRunHealthResult, ResumeRunContext, WorkerStatus
from dagster._grpc.types import ResumeRunArgs
from dagster._serdes import pack_value
from dagster_celery.config import TASK_RESUME_JOB_NAME
from dagster_celery.defaults import task_default_queue
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_resume_job_task

log = logging.getLogger(__name__)

BROKER_ENV = "CELERY_BROKER_URL"
BACKEND_ENV = "CELERY_RESULT_BACKEND"

INSPECT_TIMEOUT_S = 3.0
"""How long a worker has to answer (its main process answers while its pool is busy)."""
MISSES_BEFORE_LOST = 2
"""Checks in a row a worker may not answer before its runs count as lost (one can be a busy moment)."""


class CheckedCeleryRunLauncher(CeleryRunLauncher):
    """``CeleryRunLauncher`` whose ``resume_run`` works and whose health check notices a vanished worker (see the
    module docstring). Configured like the upstream launcher, except that ``broker`` and ``backend`` default to
    ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` read when a run is launched, not when the instance loads:
    commands that launch nothing (``dagster asset materialize``, the UI reading runs) need neither."""

    def __init__(self, default_queue: str = task_default_queue, broker: str | None = None,
                 backend: str | None = None, **kwargs: Any) -> None:
        super().__init__(default_queue=default_queue, broker=broker or os.environ.get(BROKER_ENV),
                         backend=backend or os.environ.get(BACKEND_ENV), **kwargs)
        self._resume_task = create_resume_job_task(self.celery)
        self._misses: dict[str, int] = {}

    @classmethod
    def config_type(cls):
        schema = dict(super().config_type())
        schema["backend"] = Field(Noneable(StringSource), is_required=False,
                                  description=f"The Celery result backend's URL (default: ${BACKEND_ENV}).")
        schema["broker"] = Field(Noneable(StringSource), is_required=False,
                                 description=f"The Celery broker's URL (default: ${BROKER_ENV}).")
        return schema

    def _require_broker(self) -> None:
        if not self.broker or not self.backend:
            raise RuntimeError(f"no Celery broker or result backend to hand the run to: set {BROKER_ENV} and "
                               f"{BACKEND_ENV} (e.g. redis://host:6379/1) for the daemon, the UI and the workers")

    def launch_run(self, context) -> None:
        self._require_broker()
        super().launch_run(context)

    def resume_run(self, context: ResumeRunContext) -> None:
        self._require_broker()
        run = context.dagster_run
        args = ResumeRunArgs(job_origin=run.job_code_origin, run_id=run.run_id,
                             instance_ref=self._instance.get_ref(), set_exit_code_on_failure=True)
        signature = self._resume_task.si(resume_job_args_packed=pack_value(args))
        self._launch_celery_task_run(run=run, task_signature=signature, routing_key=TASK_RESUME_JOB_NAME)

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        result = super().check_run_worker_health(run)
        if result.status == WorkerStatus.UNKNOWN:
            return self._unknown_state(run, result)
        if result.status != WorkerStatus.RUNNING:
            self._misses.pop(run.run_id, None)
            return result
        task_id = run.tags[DAGSTER_CELERY_TASK_ID_TAG]
        info = self.celery.AsyncResult(task_id).info
        hostname = info.get("hostname") if isinstance(info, dict) else None
        if not hostname:  # an older worker that does not say where it runs: trust the state
            return result
        held = self._tasks_held([hostname])
        if held is None:  # the broker away: say nothing new rather than fail runs
            return result
        if task_id in held.get(hostname, ()):
            self._misses.pop(run.run_id, None)
            return result
        again = super().check_run_worker_health(run)  # it may have finished between the two looks
        if again.status != WorkerStatus.RUNNING:
            self._misses.pop(run.run_id, None)
            return again
        # Not answering, or answering without the task: a worker's main process can lag behind its pool on a
        # loaded machine, so one look is not enough to run the task a second time.
        misses = self._misses[run.run_id] = self._misses.get(run.run_id, 0) + 1
        if misses < MISSES_BEFORE_LOST:
            return result
        self._misses.pop(run.run_id, None)
        why = "does not answer" if hostname not in held else "is not running this run's task (restarted since?)"
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker {hostname} {why}, {misses} checks in a row: "
                                                         "its run is lost")

    def _unknown_state(self, run, result: CheckRunHealthResult) -> CheckRunHealthResult:
        """A started run whose task state the result backend does not know (``PENDING``): the task of a resume
        still waiting for a free pool process, or a state Redis lost (restarted empty) or expired. Run monitoring
        would resume it, a second execution beside a live or queued one: a task any worker holds (running or
        reserved) is RUNNING, and so is one handed to Celery less than the instance's start timeout ago (it is
        waiting in the queue)."""
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        held = self._tasks_held(None)
        if held is None:
            return result
        for hostname, tasks in held.items():
            if task_id in tasks:
                return CheckRunHealthResult(WorkerStatus.RUNNING, f"held by {hostname} (task state unknown)")
        handed_s = self._handed_to_celery_s(run)
        if handed_s is not None and time.time() - handed_s < self._instance.run_monitoring_start_timeout_seconds:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "queued in Celery, waiting for a free worker process")
        return result

    def _tasks_held(self, destination: list[str] | None) -> dict[str, set[str]] | None:
        """{worker: ids of the tasks it runs or has reserved} of ``destination`` (None: every worker); a worker
        that does not answer is missing. None when the workers cannot be asked (the broker away)."""
        try:
            inspect = self.celery.control.inspect(destination=destination, timeout=INSPECT_TIMEOUT_S)
            active, reserved = inspect.active() or {}, inspect.reserved() or {}
        except Exception as exc:
            log.warning("could not ask the run workers about their tasks: %s", exc)
            return None
        return {host: {task.get("id") for task in [*active.get(host, []), *reserved.get(host, [])]}
                for host in {*active, *reserved}}

    def _handed_to_celery_s(self, run) -> float | None:
        """When the run's latest task was sent to the broker (the launcher's own engine event), epoch seconds."""
        from dagster import DagsterEventType

        records = self._instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT,
                                                     ascending=False, limit=20).records
        for record in records:
            if "forwarded to the broker" in (record.event_log_entry.user_message or ""):
                return record.event_log_entry.timestamp
        return None
