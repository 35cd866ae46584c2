"""Runs that recover: transient SDP failures retried in place, failures no retry can fix ended at once with a
reason and kept out of run retries, and the instance configuration that retries and monitors runs."""

from __future__ import annotations

import shutil

import dagster as dg
import psycopg
import pytest
import yaml

from enhancement_pipeline.delivery.failures import FAILURE_TAG, MAX_RUNTIME_S, RUN_MAX_RETRIES
from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.local.sdp_simulator import Fault
from enhancement_pipeline.settings import PROJECT_ROOT
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import run_enhance

WILL_RETRY = "dagster/will_retry"


@pytest.fixture
def retrying_instance():
    """An instance with run retries on, as dagster.yaml sets them, so a failure's will_retry tag is computed."""
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 0}}) as instance:
        yield instance


def events_of(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def test_a_deleted_ticket_fails_at_once_with_the_reason_and_is_not_retried(db, resources, retrying_instance):
    result = run_enhance(resources, TENANT, "123640000009999999", retrying_instance)
    assert not result.success
    failure = events_of(result, "STEP_FAILURE")[0]
    assert failure.step_key == "load_ticket"
    assert "no longer exists" in failure.event_specific_data.error.message
    assert not events_of(result, "STEP_UP_FOR_RETRY")  # no step retries
    run = retrying_instance.get_run_by_id(result.run_id)
    assert run.tags[FAILURE_TAG] == "ticket_not_found"
    assert run.tags[WILL_RETRY] == "false"  # run retries skip it too


def test_a_refused_api_key_fails_at_once(db, sdp_state, resources, retrying_instance):
    ticket_id = sdp_state.add_request(subject="Printer offline", description="3rd floor")["id"]
    sdp_state.faults.append(Fault(match=r"GET /api/v3/requests/\d+$", status=401, sdp_code=4022, times=10))
    result = run_enhance(resources, TENANT, ticket_id, retrying_instance)
    assert not result.success and not events_of(result, "STEP_UP_FOR_RETRY")
    assert retrying_instance.get_run_by_id(result.run_id).tags[FAILURE_TAG] == "sdp_auth"


def test_an_sdp_outage_longer_than_the_clients_retries_is_retried_by_the_step(db, sdp_state, resources,
                                                                            retrying_instance):
    ticket_id = sdp_state.add_request(subject="Outlook keeps asking for a password", description="since today")["id"]
    # The client tries four times; the fifth and sixth calls fail too, so only the op's RetryPolicy gets through.
    sdp_state.faults.append(Fault(match=rf"GET /api/v3/requests/{ticket_id}$", status=503, sdp_code=4004,
                                  html=True, times=6))
    result = run_enhance(resources, TENANT, ticket_id, retrying_instance)
    assert result.success
    retries = events_of(result, "STEP_UP_FOR_RETRY")
    assert retries and {e.step_key for e in retries} == {"load_ticket"}
    assert len(sdp_state.notes[ticket_id]) == 1


def test_a_run_that_exhausted_its_step_retries_is_left_to_run_retries(db, sdp_state, resources, retrying_instance):
    ticket_id = sdp_state.add_request(subject="VPN drops", description="every 10 minutes")["id"]
    sdp_state.faults.append(Fault(match=rf"GET /api/v3/requests/{ticket_id}$", status=502, sdp_code=4004,
                                  html=True, times=100))
    result = run_enhance(resources, TENANT, ticket_id, retrying_instance)  # ~22 s of step backoff
    assert not result.success and len(events_of(result, "STEP_UP_FOR_RETRY")) == 3
    run = retrying_instance.get_run_by_id(result.run_id)
    assert FAILURE_TAG not in run.tags and run.tags[WILL_RETRY] == "true"


def test_the_job_declares_its_retries_and_maximum_runtime():
    assert enhance_ticket.tags["dagster/max_retries"] == str(RUN_MAX_RETRIES)
    assert int(enhance_ticket.tags["dagster/max_runtime"]) == MAX_RUNTIME_S


def test_dagster_yaml_turns_on_run_monitoring_and_run_retries(tmp_path, monkeypatch, database_url):
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    # Dagster's own tables go in a database of their own, as in the demo, not among the app's.
    with psycopg.connect(database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'dagster_yaml_check'").fetchone():
            conn.execute("CREATE DATABASE dagster_yaml_check")
    url = database_url.rsplit("/", 1)[0] + "/dagster_yaml_check"
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url.replace("postgresql://", "postgresql+psycopg2://", 1))
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):  # a command that launches nothing needs neither
        monkeypatch.delenv(name, raising=False)
    config = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:  # the schema Dagster's daemon validates
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == config["run_monitoring"]["start_timeout_seconds"]
        assert instance.run_retries_enabled and instance.run_retries_retry_on_asset_or_op_failure
        # Runs go to warm workers, and a run whose worker died can be resumed (the launcher reports its health).
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "CheckedCeleryRunLauncher"
        assert launcher.supports_resume_run and launcher.supports_check_run_worker_health
        with pytest.raises(RuntimeError, match="set CELERY_BROKER_URL and CELERY_RESULT_BACKEND"):
            launcher._require_broker()  # launching a run without them says what to set
        assert instance.run_monitoring_max_resume_run_attempts >= 1
        assert config["run_coordinator"]["config"]["max_concurrent_runs"] >= 1
