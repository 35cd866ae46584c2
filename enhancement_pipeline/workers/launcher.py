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
   it (``inspect().active()`` on that worker alone): a worker that answers without the task, or that does not
   answer ``MISSES_BEFORE_LOST`` checks in a row, has lost the run, which run monitoring then resumes on another.
   And a task whose state the backend lost (Redis restarted empty) is looked for among every worker's active
   tasks before the run is given up as lost: found, it is running, and is not executed a second time.
"""

from __future__ import annotations

import logging
from typing import Any

from dagster._core.launcher import CheckRunHealthResult, ResumeRunContext, WorkerStatus
from dagster._grpc.types import ResumeRunArgs
from dagster._serdes import pack_value
from dagster_celery.config import TASK_RESUME_JOB_NAME
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_resume_job_task

log = logging.getLogger(__name__)

INSPECT_TIMEOUT_S = 3.0
"""How long a worker has to answer (its main process answers while its pool is busy)."""
MISSES_BEFORE_LOST = 2
"""Checks in a row a worker may not answer before its runs count as lost (one can be a busy moment)."""


class CheckedCeleryRunLauncher(CeleryRunLauncher):
    """``CeleryRunLauncher`` whose ``resume_run`` works and whose health check notices a vanished worker (see the
    module docstring). Configured exactly like the upstream launcher."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resume_task = create_resume_job_task(self.celery)
        self._misses: dict[str, int] = {}

    def resume_run(self, context: ResumeRunContext) -> None:
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
        try:
            active = self.celery.control.inspect(destination=[hostname], timeout=INSPECT_TIMEOUT_S).active() or {}
        except Exception as exc:  # the broker away: say nothing new rather than fail runs
            log.warning("could not ask worker %s about run %s: %s", hostname, run.run_id, exc)
            return result
        if hostname not in active:
            misses = self._misses[run.run_id] = self._misses.get(run.run_id, 0) + 1
            if misses < MISSES_BEFORE_LOST:
                return result
            self._misses.pop(run.run_id, None)
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker {hostname} does not answer "
                                                             f"({misses} checks in a row): its run is lost")
        self._misses.pop(run.run_id, None)
        if any(task.get("id") == task_id for task in active[hostname]):
            return result
        again = super().check_run_worker_health(run)  # it may have finished between the two looks
        if again.status != WorkerStatus.RUNNING:
            return again
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker {hostname} is not running this run's task "
                                                         "(restarted since it took it?): its run is lost")

    def _unknown_state(self, run, result: CheckRunHealthResult) -> CheckRunHealthResult:
        """A started run whose task state the result backend does not know (``PENDING``: Redis restarted empty,
        or the state expired). Run monitoring would resume it, a second execution beside a live one, when a
        worker may well be running it: every worker is asked, and one that has the task makes it RUNNING."""
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        try:
            active = self.celery.control.inspect(timeout=INSPECT_TIMEOUT_S).active() or {}
        except Exception as exc:  # the broker away as well: nothing better to say
            log.warning("could not ask the workers about run %s: %s", run.run_id, exc)
            return result
        for hostname, tasks in active.items():
            if any(task.get("id") == task_id for task in tasks):
                return CheckRunHealthResult(WorkerStatus.RUNNING, f"running on {hostname} (task state unknown)")
        return result
