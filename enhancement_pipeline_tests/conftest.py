"""Test session: a real PostgreSQL and a real Redis started for the session, and the SDP, knowledge-base and
LLM simulators served over HTTP on loopback, driven through the real clients (httpx, the openai SDK)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from enhancement_pipeline.local import kb_simulator, llm_simulator, sdp_simulator
from enhancement_pipeline.local.datasets import kb_documents
from enhancement_pipeline.local.http_server import BackgroundServer, serve_in_thread
from enhancement_pipeline.local.services import EmbeddedPostgres, EmbeddedRedis
from enhancement_pipeline.settings import PACKAGED_DATA_DIR, Settings
from enhancement_pipeline.storage.migrations import migrate
from enhancement_pipeline.storage.postgres import close_pools
from enhancement_pipeline.tenants import Tenant, tenant_from_settings

# CI explores a fixed set of examples, so a submission's result does not depend on the draw; locally every run
# draws afresh, which is where new failures are found.
hypothesis_settings.register_profile("ci", derandomize=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")

SDP_KEY = "test-sdp-key"
LLM_KEY = "test-llm-key"
TENANT = "acme"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parent is mode 0700 and PostgreSQL runs as `nobody` when tests run as root.
    path = Path(tempfile.mkdtemp(prefix="ep-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[EmbeddedPostgres]:
    # Sized for 1 GB, not the machine (a quarter of RAM as shared_buffers): test data is small, and several
    # suites (or servers) may run side by side on one machine.
    server = EmbeddedPostgres(workdir / "pg", memory_bytes=1024**3).start()
    server.create_database("enhancement")
    migrate(server.url("enhancement"))
    yield server
    close_pools()
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    return postgres.url("enhancement")


@pytest.fixture(scope="session")
def redis_server(workdir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(workdir / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sdp_state() -> sdp_simulator.SdpState:
    return sdp_simulator.SdpState(api_key=SDP_KEY)


def _serving(app, name: str) -> Iterator[BackgroundServer]:
    server = serve_in_thread(app, name=name)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sdp_server(sdp_state: sdp_simulator.SdpState) -> Iterator[BackgroundServer]:
    yield from _serving(sdp_simulator.create_app(sdp_state), "sdp-simulator")


@pytest.fixture(scope="session")
def kb_index() -> kb_simulator.KbIndex:
    """The KB simulator's index over the shipped articles; tests may ``add`` (and must ``remove``) their own."""
    return kb_simulator.KbIndex(kb_documents())


@pytest.fixture(scope="session")
def kb_server(kb_index: kb_simulator.KbIndex) -> Iterator[BackgroundServer]:
    yield from _serving(kb_simulator.create_app(kb_index), "kb-simulator")


@pytest.fixture(scope="session")
def llm_state() -> llm_simulator.LlmSimState:
    return llm_simulator.LlmSimState(api_key=LLM_KEY)


@pytest.fixture(scope="session")
def llm_server(llm_state: llm_simulator.LlmSimState) -> Iterator[BackgroundServer]:
    yield from _serving(llm_simulator.create_app(llm_state), "llm-simulator")


@pytest.fixture(scope="session", autouse=True)
def api_keys() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("SDP_API_KEY", "LLM_API_KEY")}
    os.environ["SDP_API_KEY"] = SDP_KEY
    os.environ.pop("LLM_API_KEY", None)  # each test that wants the LLM sets TEST_LLM_API_KEY's name itself
    os.environ["TEST_LLM_API_KEY"] = LLM_KEY
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def settings(database_url: str, redis_server: EmbeddedRedis, sdp_server: BackgroundServer,
             kb_server: BackgroundServer, llm_server: BackgroundServer) -> Settings:
    """Settings pointing at the session's services, with the LLM simulator configured."""
    # The request budget is tested on its own (test_budget.py); here it must not slow the imports down.
    return Settings(tenant_id=TENANT, database_url=database_url, redis_url=redis_server.url(),
                    sdp_base_url=sdp_server.url, kb_base_url=kb_server.url, llm_base_url=f"{llm_server.url}/v1",
                    llm_api_key_env="TEST_LLM_API_KEY", llm_model="sim/model", sdp_request_budget_per_s=10_000,
                    inventory_dir=PACKAGED_DATA_DIR)


@pytest.fixture
def tenant(settings: Settings) -> Tenant:
    """The one tenant of the test settings (``acme``), as the definitions see it without a tenants file."""
    return tenant_from_settings(settings)


@pytest.fixture
def resources(settings: Settings) -> dict:
    from enhancement_pipeline.definitions import build_resources

    built = build_resources(settings)
    # Tests must not sleep through production backoffs.
    built["sdp"] = replace_resource(built["sdp"], backoff_base_s=0.01)
    built["llm"] = replace_resource(built["llm"], retry_waits_s=[0.01, 0.02])
    return built


def replace_resource(resource, **changes):
    """A copy of a ConfigurableResource with some fields changed (``model_copy`` does not reconfigure one)."""
    fields = {name: getattr(resource, name) for name in type(resource).model_fields}
    return type(resource)(**{**fields, **changes})


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance of the test's own (temporary storage), as the daemon gives sensors and runs: sensors that
    read run history (the new-ticket sensor's dedupe, the delivery sweep) need one."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def db(database_url: str, redis_server: EmbeddedRedis, sdp_state: sdp_simulator.SdpState,
       llm_state: llm_simulator.LlmSimState) -> Iterator[psycopg.Connection]:
    """A clean slate for each test: empty tables, an empty SDP simulator (its taxonomy as seeded), an empty cache and
    LLM log."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE ticket_history, system_inventory, posted_notes, ticket_launches, ticket_lexeme_stats,"
                     " ticket_corpus_stats, ticket_embeddings, sdp_taxonomy, recent_tickets, triage_calibration,"
                     " triage_models, requester_questions CASCADE")
        with sdp_state.lock:
            sdp_state.requests.clear()
            sdp_state.notes.clear()
            sdp_state.resolutions.clear()
            sdp_state.faults.clear()
            sdp_state.calls.clear()
            sdp_state.notes_listed_without_description = False
            sdp_state.note_wrapper = "note"
            sdp_state.webhooks.clear()
            sdp_state.webhook_calls.clear()
            sdp_state.reset_taxonomy()
        with llm_state.lock:
            llm_state.requests.clear()
            llm_state.responses.clear()
            llm_state.received_at.clear()
            llm_state.faults.clear()
            llm_state.gullible = False
        import redis

        redis.Redis.from_url(redis_server.url()).flushdb()
        yield conn


def pytest_terminal_summary(terminalreporter) -> None:
    """The attack corpus's results (``test_prompt_injection.py``), when it ran: tried, followed, caught."""
    from enhancement_pipeline_tests.test_enhancement.test_prompt_injection import RESULTS

    if not RESULTS:
        return
    followed = sum(r["followed"] for r in RESULTS)
    caught = sum(r["caught"] for r in RESULTS)
    reached = sum(r["reached_note"] for r in RESULTS)
    terminalreporter.section("prompt-injection corpus")
    for r in RESULTS:
        terminalreporter.write_line(f"{r['where']:<12} {r['attack']:<45} followed={r['followed']!s:<5} "
                                    f"caught={r['caught']!s:<5} in_note={r['reached_note']!s:<5} "
                                    f"removed: {', '.join(f'{k}={v}' for k, v in sorted(r['removed'].items())) or '-'}")
    terminalreporter.write_line(f"attacks tried {len(RESULTS)}, followed by the model {followed}, "
                                f"caught by the output checks {caught}, payloads in posted notes {reached}")
