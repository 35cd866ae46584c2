"""Warm run workers on the real stack: two Celery workers (stand-ins for two machines), ``dagster-daemon`` with the
project's ``dagster.yaml``, the session's Postgres and Redis, the simulators over HTTP. A ticket whose run loses its
worker mid-run, a pool process or the whole worker, still gets exactly one note, from the other worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from enhancement_pipeline.delivery import claims
from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.push.launch import RunSubmitter
from enhancement_pipeline.settings import PROJECT_ROOT
from enhancement_pipeline_tests.conftest import SDP_KEY, TENANT

BIN = Path(sys.executable).parent


@pytest.fixture
def stack(db, settings, postgres, redis_server, tmp_path_factory):
    """Environment, DAGSTER_HOME and the processes of a deployment: two workers (one process each) and the
    daemon. Yields ``(instance, workers, env, logs)``; stops every process at the end."""
    home = tmp_path_factory.mktemp("dagster_home")
    logs = tmp_path_factory.mktemp("logs")
    postgres.create_database("dagster_workers")
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 2  # detect within seconds, not the default 20
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    queue = redis_server.url(3)
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "DAGSTER_POSTGRES_URL": postgres.url("dagster_workers", driver="postgresql+psycopg2"),
           "CELERY_BROKER_URL": queue, "CELERY_RESULT_BACKEND": queue,
           "TENANT_ID": TENANT, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "SDP_BASE_URL": settings.sdp_base_url, "SDP_API_KEY": SDP_KEY, "SDP_REQUEST_BUDGET_PER_S": "10000",
           "KB_BASE_URL": settings.kb_base_url, "LLM_BASE_URL": settings.llm_base_url,
           "LLM_API_KEY": os.environ["TEST_LLM_API_KEY"], "LLM_MODEL": "sim/model",
           # Sensors poll the same SDP: its first tick leaves tickets older than the lookback alone.
           "NEW_TICKET_LOOKBACK_MINUTES": "1"}
    procs: list[subprocess.Popen] = []

    def start(args: list[str], log: str) -> subprocess.Popen:
        proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=(logs / log).open("a"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    workers = [start([str(BIN / "enhancement-pipeline"), "worker", "--concurrency", "1", "--name", f"w{i}@%h"],
                     f"worker{i}.log") for i in (1, 2)]
    start([str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")], "daemon.log")
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL", "CELERY_BROKER_URL",
                                           "CELERY_RESULT_BACKEND")})
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance, workers, env, logs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for name in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            os.environ.pop(name, None)


def wait_for(predicate, timeout_s: float, what: str, logs: Path):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in logs.iterdir())
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tails}")
        time.sleep(0.2)
    return value


def worker_pids(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """The pool processes that executed ``run_id``, in order: the pids its "Started process for run" engine
    events report (one per attempt: the first execution, then each resume)."""
    pids = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        pid = entry.dagster_event.event_specific_data.metadata.get("pid")
        if pid is not None and "Started process" in (entry.dagster_event.message or ""):
            pids.append(int(pid.value))
    return pids


def held_in_post_note(instance, sdp_state, logs: Path, hold_s: float = 6) -> tuple[str, dg.DagsterRun]:
    """A ticket whose run is queued and then held inside post_note (its look at the ticket's notes takes
    ``hold_s``); returns once the run is there: ``(ticket id, run)``."""
    ticket_id = sdp_state.add_request(subject="Exchange mailbox move stuck at 95%", description="<p>since Monday</p>",
                                      created_millis=int(time.time() * 1000) - 600_000)["id"]
    sdp_state.faults.append(Fault(match=rf"^GET /api/v3/requests/{ticket_id}/notes$", status=200,
                                  takes_effect_after_s=0, delay_s=hold_s, times=1))
    submitter = RunSubmitter(instance)
    try:
        run = submitter.submit(
            run_config={"ops": {"load_ticket": {"config": {"tenant_id": TENANT, "ticket_id": ticket_id}}}},
            tags={"tenant": TENANT, "ticket_id": ticket_id, claims.TRIGGER_TAG: "test"})
    finally:
        submitter.close()

    def in_post_note() -> bool:
        starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        return any(e.dagster_event.step_key == "post_note" for e in starts)

    wait_for(in_post_note, 120, "the run to reach post_note", logs)
    return ticket_id, run


@pytest.mark.parametrize("kill", ["pool process", "whole worker"])
def test_a_ticket_survives_its_worker_being_killed(stack, sdp_state, kill):
    instance, workers, env, logs = stack
    ticket_id, run = held_in_post_note(instance, sdp_state, logs)
    pid, = worker_pids(instance, run.run_id)
    victim = next(w for w in workers if os.getpgid(pid) == w.pid)
    if kill == "pool process":
        os.kill(pid, signal.SIGKILL)
    else:
        os.killpg(victim.pid, signal.SIGKILL)
    wait_for(lambda: instance.get_run_by_id(run.run_id).is_finished, 120, "the run to finish", logs)

    finished = instance.get_run_by_id(run.run_id)
    assert finished.status == dg.DagsterRunStatus.SUCCESS
    assert len(sdp_state.notes[ticket_id]) == 1
    events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    messages = [e.dagster_event.message or "" for e in events]
    assert any("Resuming run" in m for m in messages), messages
    first, resumed = worker_pids(instance, run.run_id)  # the resume ran in another process
    assert first == pid and resumed != pid


def test_a_run_whose_task_state_redis_lost_is_not_executed_twice(stack, sdp_state, redis_server):
    """Redis restarted empty loses Celery's task states: the run still running on its worker is found among the
    workers' active tasks (RUNNING), not resumed beside itself."""
    import redis

    instance, workers, env, logs = stack
    ticket_id, run = held_in_post_note(instance, sdp_state, logs, hold_s=10)
    task_id = instance.get_run_by_id(run.run_id).tags["dagster-celery/task_id"]
    assert redis.Redis.from_url(redis_server.url(3)).delete(f"celery-task-meta-{task_id}") == 1
    health = instance.run_launcher.check_run_worker_health(instance.get_run_by_id(run.run_id))
    assert health.status == dg._core.launcher.WorkerStatus.RUNNING and "task state unknown" in health.msg
    wait_for(lambda: instance.get_run_by_id(run.run_id).is_finished, 120, "the run to finish", logs)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert len(worker_pids(instance, run.run_id)) == 1 and len(sdp_state.notes[ticket_id]) == 1
