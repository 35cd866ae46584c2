"""Launch an ``enhance_ticket`` run from outside the daemon: the push receiver's way in.

Dagster has no public Python API for submitting a run of a deployed job to the run queue (the webserver's
GraphQL ``launchRun`` needs the webserver up; the push path must not depend on the UI being up). This does what
``dagster job launch`` does (``dagster._cli.job.execute_launch_command``): load the code location, build the
run's execution plan, ``create_run`` with the job's snapshots and origins, and ``submit_run`` to the instance's
run coordinator (here the queue the daemon dequeues from). The code location is loaded in this process, once,
under the workspace's location name: the daemon, the UI and the run launcher treat the run as any other of the
job (its origin says the code was loaded in-process, which is where the run workers load it too). After a deploy
of new code, restart the receiver with the daemon: it keeps the job's snapshot it loaded.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping

import dagster as dg

from enhancement_pipeline.settings import PROJECT_ROOT

JOB_NAME = "enhance_ticket"
LOCATION_NAME = "enhancement_pipeline"
"""``workspace.yaml``'s location name: the run's origin names it, as runs launched by the daemon do."""
MODULE = "enhancement_pipeline.definitions"


class RunSubmitter:
    """Creates and queues runs of ``enhance_ticket`` on ``instance``. Thread-safe (one launch at a time: a
    launch takes tens of milliseconds). ``close()`` releases the code location."""

    def __init__(self, instance: dg.DagsterInstance):
        from dagster._core.remote_origin import InProcessCodeLocationOrigin
        from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

        self.instance = instance
        self._lock = threading.Lock()
        # As workspace.yaml's python_module target loads it (its working directory: the workspace file's).
        target = LoadableTargetOrigin(executable_path=sys.executable, module_name=MODULE,
                                      working_directory=str(PROJECT_ROOT))
        origin = InProcessCodeLocationOrigin(loadable_target_origin=target, location_name=LOCATION_NAME)
        self._location = origin.create_location(instance)
        self._repository = next(iter(self._location.get_repositories().values()))

    def submit(self, run_config: Mapping[str, object], tags: Mapping[str, str]) -> dg.DagsterRun:
        """Create a run of ``enhance_ticket`` with ``run_config`` and ``tags`` (the job's own tags added) and put
        it in the run queue; returns the queued run. Raises whatever Dagster raises when the run config is
        invalid or its storage is unreachable."""
        from dagster._core.definitions.selector import JobSubsetSelector

        with self._lock:
            selector = JobSubsetSelector(location_name=self._location.name, repository_name=self._repository.name,
                                         job_name=JOB_NAME, op_selection=None)
            remote_job = self._location.get_job(selector)
            plan = self._location.get_execution_plan(remote_job, dict(run_config), step_keys_to_execute=None,
                                                     known_state=None, instance=self.instance)
            snapshot = plan.execution_plan_snapshot
            run = self.instance.create_run(
                job_name=JOB_NAME, run_id=None, run_config=dict(run_config),
                resolved_op_selection=remote_job.resolved_op_selection,
                step_keys_to_execute=snapshot.step_keys_to_execute, op_selection=None, status=None,
                root_run_id=None, parent_run_id=None, tags={**remote_job.tags, **tags},
                job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=snapshot,
                parent_job_snapshot=remote_job.parent_job_snapshot,
                remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
                asset_selection=None, asset_check_selection=None, asset_graph=self._repository.asset_graph)
            try:
                return self.instance.submit_run(run.run_id, workspace=None)
            except Exception:
                # Created but never queued, it would sit NOT_STARTED, keeping the sensor and the sweep away from
                # its ticket: gone, the ticket is polling's again (the sweep's rule covers a delete that fails too).
                try:
                    self.instance.delete_run(run.run_id)
                except Exception:  # noqa: BLE001 - storage away: the sweep no longer counts it after 10 minutes
                    pass
                raise

    def close(self) -> None:
        self._location.cleanup()
