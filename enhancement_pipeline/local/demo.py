"""``make demo``: the whole pipeline on the embedded defaults, through the Dagster daemon.

1. Start the project's PostgreSQL and Redis (``.local/demo/``, wiped at every demo so each run is the same),
   the SDP simulator seeded with 1,693 real resolved tickets, the KB simulator over the shipped articles, and
   the LLM simulator (OpenAI wire protocol). The data team's inventory folder gets the shipped inventory CSV.
   A second tenant, ``demo_apply`` (another customer, in triage apply mode with routing rules), gets an SDP
   simulator of its own with every third of those tickets; both are declared in ``.local/demo/tenants.yaml``.
2. Migrate and backfill both tenants' ``ticket_history`` (all months, one run, with its checks) through Dagster,
   recorded in the instance's run history; read each tenant's SDP taxonomy and fit its triage calibration.
3. Start ``dagster-daemon`` (and ``dagster-webserver`` with ``--ui``). The inventory sensor materializes
   ``demo_msp/system_inventory`` from the folder; wait for it and for ``new_ticket_sensor``'s first tick.
4. Open 24 new tickets from held-out real articles (6 name inventory IPs), then 5 that repeat them (a possible
   duplicate, a possible major incident) and a vague one, and 6 of them and the vague one in ``demo_apply``'s
   SDP (one with a priority already set, which must be kept; the vague one's requester is asked what is
   missing); print what apply mode wrote into SDP and the questions sent; wait for the sensor-launched
   ``enhance_ticket`` runs, print one whole note with its links, a
   table (with what the output checks removed from each note), and the summary lines.
5. Keep both tables fresh through their sensors: a technician resolves 4 of the tickets in SDP and the data
   team drops an inventory update; wait until ``resolved_ticket_sensor`` has them in ``ticket_history`` and
   the inventory sensor's run has loaded the update.

Exit 1 unless every ticket got exactly one note and both sensors delivered. Ctrl-C and SIGTERM stop everything
the demo started (``run_demo``). ``ENHANCEMENT_DEMO_ROOT`` puts the demo's folder elsewhere than ``.local/demo``
(it is wiped at every demo too).
"""

import dataclasses
import html
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from enhancement_pipeline.local import kb_simulator, llm_simulator, sdp_simulator
from enhancement_pipeline.local.datasets import IP_TICKET_ARTICLES, ArticleTicket, demo_split, history_months
from enhancement_pipeline.local.http_server import BackgroundServer, serve_in_thread
from enhancement_pipeline.local.services import (
    EmbeddedPostgres,
    EmbeddedRedis,
    Stopped,
    StopSignals,
    free_port,
    stop_process_groups,
)
from enhancement_pipeline.metrics.figures import percentile
from enhancement_pipeline.servicedesk.client import ServiceDeskClient
from enhancement_pipeline.servicedesk.payloads import html_to_text
from enhancement_pipeline.settings import PACKAGED_DATA_DIR, PROJECT_ROOT
from enhancement_pipeline.workers.celery_app import default_concurrency

DEMO_ROOT = (Path(os.environ["ENHANCEMENT_DEMO_ROOT"]).resolve() if os.environ.get("ENHANCEMENT_DEMO_ROOT")
             else PROJECT_ROOT / ".local" / "demo")
SDP_KEY = "demo-sdp-technician-key"
LLM_KEY = "demo-llm-key"
TENANT = "demo_msp"
APPLY_TENANT = "demo_apply"
"""The demo's second tenant: another customer's SDP, in triage apply mode (confident suggestions and its routing
rules written into empty fields), with every third ticket of the history."""
APPLY_TICKETS = (0, 3, 5, 6, 9, 12)
"""Which of the new tickets are opened in the apply tenant's SDP too (the one at ``APPLY_KEEPS_PRIORITY`` with a
priority already set, which the pipeline must keep)."""
APPLY_KEEPS_PRIORITY = 9
APPLY_RULES = """# The demo_apply tenant's routing rules (triage/rules.py; docs/triage-rules.example.yaml). In apply
# mode the fields they set are written into the request when SDP has them empty.
rules:
  - name: Messaging
    when: {keywords: [Exchange, Outlook, mailbox, "mail flow", free/busy]}
    then: {group: Messaging}
  - name: Collaboration
    when: {keywords: [SharePoint, OneDrive, Teams]}
    then: {group: Collaboration}
  - name: Sign-in
    when: {keywords: ["access denied", forbidden, unauthorized, "sign-in", credentials]}
    then: {priority: High}
escalation:
  High: [Service Desk, Messaging, call the on-call engineer]
"""
TIMEOUT_S = 420
FRESHNESS_TIMEOUT_S = 120
RESOLVED_BY_TECHNICIAN = 4
INVENTORY_UPDATE = """ip_address,hostname,role,client,location
10.10.10.50,FAB-EXHYB02,Exchange 2019 hybrid server (second node),Fabrikam Legal,London DC rack A4
2001:db8:10:10::50,FAB-EXHYB02,Exchange 2019 hybrid server (second node; IPv6),Fabrikam Legal,London DC rack A4
"""


@dataclass
class Stack:
    """Everything the demo started, so that ``stop()`` can stop all of it."""

    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    sdp_state: sdp_simulator.SdpState
    servers: list[BackgroundServer]
    processes: list[subprocess.Popen]
    apply_sdp_state: sdp_simulator.SdpState | None = None
    """The second tenant's SDP (``APPLY_TENANT``), when the stack has one."""

    def sdp_of(self, tenant_id: str) -> sdp_simulator.SdpState:
        return self.apply_sdp_state if tenant_id == APPLY_TENANT and self.apply_sdp_state else self.sdp_state

    def stop(self) -> None:
        # Each process leads its own process group (start_new_session): the group is signalled, so the code
        # server the daemon spawned (it ignores SIGTERM and outlives its parent) is killed with it.
        stop_process_groups(self.processes)
        from enhancement_pipeline.storage.postgres import close_pools

        close_pools()
        for server in self.servers:
            server.stop()
        self.redis.stop()
        self.postgres.stop()


def _how(note_meta: dict) -> str:
    """How a note was written: "llm/json_schema", "llm/markdown", "deterministic"."""
    mode, path = note_meta.get("mode", "-"), note_meta.get("answer_path")
    return f"{mode}/{path}" if mode == "llm" and path and path != "none" else mode


def _shown(path: Path) -> Path:
    """``path`` relative to the project when it is inside it (the default demo root), else as it is."""
    return path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def dagster_env(postgres: EmbeddedPostgres, dagster_home: Path, queue_url: str) -> dict[str, str]:
    """Environment for Dagster processes on the demo's Postgres (the same server as the app tables), with the
    run workers' Celery broker and result backend at ``queue_url`` (the demo's Redis, database 1; the app's
    cache is database 0)."""
    return {"DAGSTER_HOME": str(dagster_home),
            "DAGSTER_POSTGRES_URL": postgres.url("dagster", driver="postgresql+psycopg2"),
            "CELERY_BROKER_URL": queue_url, "CELERY_RESULT_BACKEND": queue_url}


def demo_tenant_env(history: list[ArticleTicket]) -> dict[str, str]:
    """The demo's tenants: its tenants file when the demo wrote one (``make ui`` then builds the same assets as
    the demo), else its first tenant as environment variables."""
    if (DEMO_ROOT / "tenants.yaml").exists():
        return {"TENANTS_FILE": str(DEMO_ROOT / "tenants.yaml")}
    return {"TENANT_ID": TENANT, "HISTORY_START_DATE": history_months(history)[0],
            "INVENTORY_DIR": str(DEMO_ROOT / "inventory")}


def write_tenants_file(history: list[ArticleTicket], sdp_url: str, apply_sdp_url: str, kb_url: str) -> Path:
    """``DEMO_ROOT/tenants.yaml``: ``TENANT`` (suggest mode, the inventory folder) and ``APPLY_TENANT`` (apply
    mode, routing rules in ``DEMO_ROOT/demo_apply-rules.yaml``), both on the demo's KB; keys and webhook secret
    by the names of the environment variables holding them."""
    import yaml

    rules = DEMO_ROOT / f"{APPLY_TENANT}-rules.yaml"
    rules.write_text(APPLY_RULES)
    # The simulators are on this machine: the budget that protects a real SDP's API key would only slow the
    # demo's backfill down. A real deployment keeps the default (10/s) or sets its own per tenant.
    sdp = {"api_key_env": "SDP_API_KEY", "webhook_secret_env": "SDP_WEBHOOK_SECRET", "request_budget_per_s": 500}
    first = history_months(history)[0]
    tenants = [
        {"tenant_id": TENANT, "name": "Demo MSP's first customer (triage: suggest)", "history_start_date": first,
         "inventory_dir": str(DEMO_ROOT / "inventory"), "sdp": {"base_url": sdp_url, **sdp},
         "kb": {"base_url": kb_url}, "notes": {"reply_draft": "friendly"}},
        {"tenant_id": APPLY_TENANT, "name": "A second customer: empty fields filled, vague tickets' requesters asked",
         "history_start_date": first, "sdp": {"base_url": apply_sdp_url, **sdp}, "kb": {"base_url": kb_url},
         # Fields the tenant's rules set, and learned suggestions as confident as the note's (0.6): its dispatcher
         # would rather correct a wrong category than fill every empty one by hand.
         "triage": {"mode": "apply", "apply_min_confidence": 0.6, "rules_file": str(rules)},
         # Its requesters are asked what is missing from a vague ticket (a requester-visible note, at most once).
         "notes": {"ask_requester": True}},
    ]
    path = DEMO_ROOT / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": tenants}, sort_keys=False))
    return path


def prepare_dagster_home(dagster_home: Path) -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")


def start_stack(history: list[ArticleTicket], apply_history: list[ArticleTicket] | None = None
                ) -> tuple[Stack, dict[str, str]]:
    """Postgres, Redis and the simulators, and the environment of every process. ``apply_history``: also the
    second tenant (``APPLY_TENANT``), an SDP of its own seeded with these resolved tickets, and the tenants file
    declaring both (``write_tenants_file``); without it, one tenant from environment variables."""
    if DEMO_ROOT.exists():
        shutil.rmtree(DEMO_ROOT)
    DEMO_ROOT.mkdir(parents=True)
    inventory_dir = DEMO_ROOT / "inventory"
    inventory_dir.mkdir()
    shutil.copy(PACKAGED_DATA_DIR / "system_inventory.csv", inventory_dir / "system_inventory.csv")
    # The inventory sensor waits for files to settle (a copy may be in progress); this one is complete.
    settled = time.time() - 60
    os.utime(inventory_dir / "system_inventory.csv", (settled, settled))
    postgres = EmbeddedPostgres(DEMO_ROOT / "postgres").start()
    stack = Stack(postgres, EmbeddedRedis(DEMO_ROOT / "redis"), sdp_simulator.SdpState(api_key=SDP_KEY), [], [])
    stack.redis.start()
    for name in ("enhancement", "dagster"):
        postgres.create_database(name)
    sdp_simulator.seed_resolved_tickets(stack.sdp_state, history)
    sdp = serve_in_thread(sdp_simulator.create_app(stack.sdp_state), name="sdp-simulator")
    kb = serve_in_thread(kb_simulator.create_app(), name="kb-simulator")
    llm = serve_in_thread(llm_simulator.create_app(llm_simulator.LlmSimState(api_key=LLM_KEY)), name="llm-simulator")
    stack.servers += [sdp, kb, llm]
    tenants_env = demo_tenant_env(history)
    if apply_history is not None:
        stack.apply_sdp_state = sdp_simulator.SdpState(api_key=SDP_KEY)
        sdp_simulator.seed_resolved_tickets(stack.apply_sdp_state, apply_history)
        apply_sdp = serve_in_thread(sdp_simulator.create_app(stack.apply_sdp_state), name="sdp-simulator-apply")
        stack.servers.append(apply_sdp)
        tenants_env = {"TENANTS_FILE": str(write_tenants_file(history, sdp.url, apply_sdp.url, kb.url))}
    env = {
        **tenants_env, "DATABASE_URL": postgres.url("enhancement"), "REDIS_URL": stack.redis.url(),
        "SDP_BASE_URL": sdp.url, "SDP_API_KEY": SDP_KEY, "KB_BASE_URL": kb.url,
        "LLM_BASE_URL": f"{llm.url}/v1", "LLM_API_KEY": LLM_KEY, "LLM_MODEL": "simulated/gpt-4o-mini",
        # The simulator is on this machine: the budget that protects a real SDP's API key would only slow the
        # demo's backfill down. A real deployment keeps the default (10/s) or sets its own per tenant.
        "SDP_REQUEST_BUDGET_PER_S": "500", "RESOLVED_TICKET_SENSOR_INTERVAL_S": "5", "INVENTORY_SENSOR_INTERVAL_S": "5",
        **dagster_env(postgres, DEMO_ROOT / "dagster", stack.redis.url(1)),
        "SDP_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "METRICS_TEXTFILE_DIR": str(DEMO_ROOT / "metrics"),
    }
    return stack, env


def start_run_workers(stack: Stack, env: dict[str, str], logs: Path, count: int = 1,
                      concurrency: int | None = None, first: int = 1) -> list[subprocess.Popen]:
    """``count`` warm run workers (``enhancement-pipeline worker``, Celery, ``concurrency`` processes each, by
    default one per core), each its own process group, named ``worker<i>`` from ``i = first`` and logging
    to ``logs/worker<i>.log``; added to ``stack.processes``."""
    workers = []
    for i in range(first, first + count):
        workers.append(subprocess.Popen(
            [str(Path(sys.executable).parent / "enhancement-pipeline"), "worker", "--name", f"worker{i}@%h",
             *(["--concurrency", str(concurrency)] if concurrency else [])],
            cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=(logs / f"worker{i}.log").open("a"),
            stderr=subprocess.STDOUT, start_new_session=True))
    stack.processes += workers
    return workers


def start_receiver(stack: Stack, env: dict[str, str], logs: Path, timeout_s: float = 60) -> str:
    """``enhancement-pipeline receiver`` on a free port, its own process group, logging to ``logs/receiver.log``;
    returns its URL once it answers ``/health``."""
    import httpx

    port = free_port()
    stack.processes.append(subprocess.Popen(
        [str(Path(sys.executable).parent / "enhancement-pipeline"), "receiver", "--port", str(port)],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=(logs / "receiver.log").open("a"),
        stderr=subprocess.STDOUT, start_new_session=True))
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(answers, timeout_s, "the push receiver")
    return url


def start_code_server(stack: Stack, env: dict[str, str], logs: Path, timeout_s: float = 120) -> Path:
    """The code location's gRPC server (``dagster api grpc``), as production runs it, its own process group,
    logging to ``logs/code-server.log``; returns the workspace file that points the daemon and the UI at it
    (``DAGSTER_HOME/workspace.yaml``), once the server accepts connections.

    Why not ``workspace.yaml``'s ``python_module``: with it the daemon starts the server itself and replaces it
    with a fresh one every 60 s (``dagster._daemon.controller.RELOAD_WORKSPACE_INTERVAL``), two servers side by
    side for a while: ~2.5 CPU-s and up to ~200 MB more each minute (measured). A server of one's own is what
    Dagster's deployment docs and Helm chart run.
    """
    import socket

    import yaml

    port = free_port()
    stack.processes.append(subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "api", "grpc", "-m", "enhancement_pipeline.definitions",
         "--location-name", "enhancement_pipeline", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=(logs / "code-server.log").open("a"),
        stderr=subprocess.STDOUT, start_new_session=True))

    def accepts() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    _wait(accepts, timeout_s, "the code server")
    workspace = Path(env["DAGSTER_HOME"]) / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": port, "location_name": "enhancement_pipeline"}}]}))
    return workspace


def start_daemon(stack: Stack, env: dict[str, str], logs: Path, workspace: Path) -> subprocess.Popen:
    """``dagster-daemon run`` on ``workspace``, its own process group, logging to ``logs/daemon.log``."""
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=(logs / "daemon.log").open("a"),
        stderr=subprocess.STDOUT, start_new_session=True)
    stack.processes.append(daemon)
    return daemon


def _sensor_has_ticked(instance, name: str) -> bool:
    for state in instance.all_instigator_state():
        if state.name == name and state.instigator_data and state.instigator_data.cursor:
            return True
    return False


def _materializations(instance, key) -> list:
    import dagster as dg

    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=100).records
    return [r.asset_materialization for r in records]


def _wait(predicate, timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def run_demo(ui: bool = False, n_new: int = 24, interval_s: float = 3.0, push: bool = True) -> int:
    """Run the demo; returns the process exit code (0 when every ticket got exactly one note). ``push``: SDP's
    webhook announces each new ticket to the push receiver (else the new-ticket sensor alone finds them).

    Ctrl-C or SIGTERM stops every process and server the demo started, then raises ``Stopped`` (with the
    signal's number); with ``ui``, one that ends the wait after the summary returns as usual instead. A
    second signal during that cleanup is ignored.
    """
    from dagster import DagsterExecutionInterruptedError

    started = time.monotonic()
    # Dagster flags the single-run backfill policy (beta) and partitioned checks (preview) at every import;
    # the demo's reader needs the pipeline's story, not those notices.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    history, new = demo_split(n_new=n_new)
    with StopSignals() as stop:
        _say(f"starting PostgreSQL, Redis and the SDP/KB/LLM simulators in {_shown(DEMO_ROOT)}")
        # Stopped halfway through this, Postgres and Redis are stopped at exit (atexit); the simulators are
        # threads of this process.
        stack, env = start_stack(history, apply_history=history[::3])
        try:
            os.environ.update(env)
            prepare_dagster_home(Path(env["DAGSTER_HOME"]))
            return _run(stack, env, history, new, ui, started, interval_s, push)
        except DagsterExecutionInterruptedError:
            # The in-process backfill takes SIGINT and SIGTERM itself (Dagster treats both as an interrupt
            # and does not say which); reported as the Ctrl-C it usually is.
            raise Stopped(signal.SIGINT) from None
        finally:
            with stop.shield():
                _say("stopping every process the demo started")
                stack.stop()


def _run(stack: Stack, env: dict[str, str], history, new, ui: bool, started: float, interval_s: float,
         push: bool) -> int:
    import dagster as dg

    from enhancement_pipeline.definitions import defs
    from enhancement_pipeline.history.assets import build_ticket_history, history_asset_key
    from enhancement_pipeline.history.checks import build_history_checks
    from enhancement_pipeline.inventory.assets import inventory_asset_key
    from enhancement_pipeline.storage.migrations import migrate
    from enhancement_pipeline.tenants import get_tenants
    from enhancement_pipeline.triage.assets import build_sdp_taxonomy, build_triage_calibration

    applied = migrate(env["DATABASE_URL"])
    _say(f"migrated the app database: {', '.join(applied)}")
    instance = dg.DagsterInstance.get()  # creates Dagster's schema once, before the daemon starts
    tenants = get_tenants()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    first, last = history_months(history)
    backfill = dg.materialize([a for t in tenants for a in (build_ticket_history(t), *build_history_checks(t))],
                              resources=defs.resources, instance=instance, run_config=quiet,
                              tags={"dagster/asset_partition_range_start": first,
                                    "dagster/asset_partition_range_end": last})
    for t in tenants:
        meta = backfill.asset_materializations_for_node(f"{t.tenant_id}__ticket_history")[0].metadata
        checks = ", ".join(f"{e.check_name} {'passed' if e.passed else 'FAILED'}"
                           for e in backfill.get_asset_check_evaluations()
                           if e.asset_key == history_asset_key(t.tenant_id))
        _say(f"{t.tenant_id}/ticket_history backfill {first[:7]}..{last[:7]} (one run for both tenants): "
             f"{meta['imported'].value} resolved tickets imported in {meta['seconds'].value} s, {meta['failed'].value} "
             f"failed; checks: {checks}")
    # What the daily schedules keep fresh, materialized once now: each tenant's SDP taxonomy (triage suggests only
    # its labels) and its triage confidence curves (fitted on the history just imported).
    triage = dg.materialize([a for t in tenants for a in (build_sdp_taxonomy(t), build_triage_calibration(t))],
                            resources=defs.resources, instance=instance, run_config=quiet)
    for t in tenants:
        taxonomy_meta = triage.asset_materializations_for_node(f"{t.tenant_id}__sdp_taxonomy")[0].metadata
        calibration_meta = triage.asset_materializations_for_node(f"{t.tenant_id}__triage_calibration")[0].metadata
        counts = {k: taxonomy_meta[k].value for k in ("categories", "priorities", "support_groups")
                  if k in taxonomy_meta}
        _say(f"{t.tenant_id}/sdp_taxonomy read from SDP ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
             f"{t.tenant_id}/triage_calibration: {calibration_meta['tickets'].value} resolved tickets asked as new, "
             f"curves for {calibration_meta['fields_fitted'].value} in {calibration_meta['seconds'].value} s")

    bin_dir = Path(sys.executable).parent
    proc_env = {**os.environ, **env}
    logs = DEMO_ROOT / "logs"
    logs.mkdir(exist_ok=True)
    workspace = str(start_code_server(stack, env, logs))
    start_run_workers(stack, env, logs)
    start_daemon(stack, env, logs, Path(workspace))
    if push:
        receiver_url = start_receiver(stack, env, logs)
        # As an SDP administrator sets it up: a Custom Trigger on Created with a Webhook action (docs/deployment.md).
        for t in tenants:
            stack.sdp_of(t.tenant_id).webhooks.append(sdp_simulator.Webhook(
                url=f"{receiver_url}/sdp/{t.tenant_id}/requests",
                headers={"X-Webhook-Secret": env["SDP_WEBHOOK_SECRET"]}))
        _say(f"push receiver on {receiver_url}: SDP's webhook announces each new ticket (the sensor still polls)")
    ui_port = None
    if ui:
        ui_port = free_port() if os.environ.get("DAGSTER_UI_PORT") is None else int(os.environ["DAGSTER_UI_PORT"])
        stack.processes.append(subprocess.Popen(
            [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(ui_port), "-w", workspace],
            cwd=PROJECT_ROOT, env=proc_env, stdout=(logs / "webserver.log").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True))
        _say(f"Dagster UI: http://127.0.0.1:{ui_port}")
    inventory_key = inventory_asset_key(TENANT)
    _say(f"dagster-daemon started, and a warm run worker ({default_concurrency()} processes); waiting for the "
         "inventory sensor's run and the new-ticket sensors' first ticks")
    for t in tenants:
        _wait(lambda t=t: _sensor_has_ticked(instance, f"{t.tenant_id}__new_ticket_sensor"), 120,
              f"{t.tenant_id}'s sensor's first tick")
    _wait(lambda: _materializations(instance, inventory_key), 120, "the inventory sensor's run")
    meta = _materializations(instance, inventory_key)[0].metadata
    _say(f"{TENANT}/system_inventory (launched by the inventory sensor): {meta['rows_loaded'].value} rows loaded, "
         f"{meta['rows_rejected'].value} rejected")

    clients = {t.tenant_id: ServiceDeskClient(t.sdp.base_url, SDP_KEY) for t in tenants}
    client = clients[TENANT]
    created: dict[tuple[str, str], tuple[ArticleTicket, int]] = {}
    applying = APPLY_TENANT in clients
    preset: dict[str, str] = {}  # apply tenant's request id -> the priority it was opened with
    _say(f"opening {len(new)} new tickets in {TENANT}'s ServiceDesk Plus, one every {interval_s:g} s "
         f"({len(IP_TICKET_ARTICLES)} name inventory IPs)"
         + (f"; {len(APPLY_TICKETS)} of them in {APPLY_TENANT}'s too (apply mode), one with a priority already set"
            if applying else ""))
    extras = related_tickets(new)
    # The vague ticket goes to the second tenant's SDP too, whose requesters get the questions (notes.ask_requester).
    apply_queue = [*((i, new[i]) for i in APPLY_TICKETS if i < len(new)), (None, extras[-1])] if applying else []
    for t in [*new, *extras]:
        if t is extras[0]:
            _say(f"then {len(extras)} more: {extras[0].requester} writes again about an open ticket (a possible "
                 f"duplicate), {len(extras) - 2} colleagues report the same outage (a possible major incident), and "
                 f"{extras[-1].requester} writes only \"{extras[-1].subject}\" (too vague to act on)")
        request = client.create_request({"subject": t.subject, "description": t.description_html,
                                         "requester": {"name": t.requester}, "status": {"name": "Open"}})
        created[(TENANT, request["id"])] = (t, int(request["created_time"]["value"]))
        if apply_queue:
            i, a = apply_queue.pop(0)
            body = {"subject": a.subject, "description": a.description_html, "requester": {"name": a.requester},
                    "status": {"name": "Open"}}
            if i == APPLY_KEEPS_PRIORITY:  # the requester's form set it: the pipeline must keep it
                body["priority"] = {"name": "Low"}
            request = clients[APPLY_TENANT].create_request(body)
            if "priority" in body:
                preset[request["id"]] = body["priority"]["name"]
            created[(APPLY_TENANT, request["id"])] = (a, int(request["created_time"]["value"]))
        time.sleep(interval_s)

    def notes_for(key: tuple[str, str]) -> list[dict]:
        """The ticket's private notes (the enhancement notes; the questions for a requester are visible to them)."""
        state = stack.sdp_of(key[0])
        with state.lock:
            return [n for n in state.notes.get(key[1], []) if not n["show_to_requester"]]

    def runs_done() -> bool:
        # One run per ticket (run keys); done when every ticket's run was launched and none is still going.
        from dagster import DagsterRunStatus, RunsFilter

        pending = instance.get_runs_count(RunsFilter(job_name="enhance_ticket", statuses=[
            DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED]))
        return pending == 0 and instance.get_runs_count(RunsFilter(job_name="enhance_ticket")) >= len(created)

    try:
        _wait(runs_done, TIMEOUT_S, "the enhance_ticket runs", interval_s=1.0)
    except TimeoutError as exc:
        _say(str(exc))
    fresh = _keep_fresh(instance, client, [rid for tenant, rid in created if tenant == TENANT], env,
                        history_asset_key(TENANT), inventory_key)
    pushed = True
    if push:
        answers: Counter = Counter()
        for t in tenants:
            state = stack.sdp_of(t.tenant_id)
            with state.lock:
                answers.update(str(outcome) for rid, outcome in state.webhook_calls if (t.tenant_id, rid) in created)
        # 202: the receiver launched the run; 200: the sensor had it first. Anything else is a broken push path.
        pushed = set(answers) <= {"200", "202"} and sum(answers.values()) == len(created)
        _say("SDP's webhook calls answered: " + ", ".join(f"{n} x {code}" for code, n in sorted(answers.items()))
             + ("" if pushed else f" (expected {len(created)} answered 202 or 200; see logs/receiver.log)"))
    applied_ok = _report_apply(instance, stack, created, preset) if applying else True
    # What the hourly schedule keeps fresh, materialized once now: each tenant's operating figures.
    from enhancement_pipeline.metrics.assets import build_pipeline_metrics

    textfile_dir = Path(env["METRICS_TEXTFILE_DIR"])
    metrics = dg.materialize([build_pipeline_metrics(t, textfile_dir) for t in tenants], resources=defs.resources,
                             instance=instance, run_config=quiet)
    for t in tenants:
        m = {k: v.value for k, v in metrics.asset_materializations_for_node(f"{t.tenant_id}__pipeline_metrics")[0]
             .metadata.items()}
        _say(f"{t.tenant_id}/pipeline_metrics (last {m['window_hours']} h): {m['notes_posted']} notes posted "
             f"({m['notes_deterministic']} deterministic), p50 {m.get('seconds_to_note_p50', float('nan')):.1f} s, "
             f"p95 {m.get('seconds_to_note_p95', float('nan')):.1f} s from creation to note, "
             f"{m['llm_prompt_tokens'] + m['llm_completion_tokens']:,} LLM tokens (${m['llm_cost_usd']:.4f}), "
             f"{m['runs_failed']} failed and {m['runs_retried']} retried runs, {m['tickets_waiting']} tickets waiting; "
             f"Prometheus: {_shown(Path(m['prometheus_textfile']))}")
    return _report(instance, created, notes_for, ui_port, started, fresh and pushed and applied_ok)


def _report_apply(instance, stack: Stack, created: dict, preset: dict[str, str]) -> bool:
    """What apply mode wrote into the second tenant's SDP, ticket by ticket (the ``apply_triage`` step's metadata
    and the request as SDP holds it now), and the questions its vague ticket's requester was sent. True when at
    least one field was set, every request opened with a priority (``preset``: id -> name) still has it, and
    exactly one ticket's requester was asked."""
    from dagster import RunsFilter

    print(f"\n=== apply mode: what the pipeline set in {APPLY_TENANT}'s ServiceDesk Plus (empty fields only)\n")
    set_total = tickets_set = 0
    state = stack.sdp_of(APPLY_TENANT)
    apply_rids = [rid for tenant, rid in created if tenant == APPLY_TENANT]
    for rid in apply_rids:
        t, _ = created[(APPLY_TENANT, rid)]
        runs = instance.get_runs(RunsFilter(tags={"ticket_id": rid, "tenant": APPLY_TENANT}))
        meta = _op_metadata(instance, runs[0].run_id).get("apply", {}) if runs else {}
        with state.lock:
            stored = dict(state.requests.get(rid) or {})
        now = ", ".join(f"{f} {(stored.get(f) or {}).get('name')}" for f in ("category", "subcategory", "item",
                                                                             "priority", "group") if stored.get(f))
        set_total += int(meta.get("fields_set", 0))
        tickets_set += bool(meta.get("fields_set"))
        subject = (t.subject[:67] + "...") if len(t.subject) > 70 else t.subject
        opened = f" (opened with priority {preset[rid]})" if rid in preset else ""
        print(f"request {rid}: {subject}{opened}\n  set: {meta.get('writes', '-')}\n"
              f"  not written: {meta.get('not_written', '-')}\n  in SDP now: {now or 'nothing'}")
    kept = all((state.requests.get(rid) or {}).get("priority", {}).get("name") == name for rid, name in preset.items())
    with state.lock:
        asked = {rid: n for rid in apply_rids for n in state.notes.get(rid, []) if n["show_to_requester"]}
    print(f"\napply mode: {set_total} fields set on {tickets_set}/{len(apply_rids)} tickets in {APPLY_TENANT}; "
          f"a priority set before the run kept: {'yes' if kept else 'NO'}")
    for rid, n in asked.items():
        print(f"\n=== asked the requester of request {rid} ({created[(APPLY_TENANT, rid)][0].subject}), visible to "
              f"them:\n\n{html_to_text(n['description'])}")
    print(f"\nquestions posted to the requester on {len(asked)} ticket(s) in {APPLY_TENANT} (notes.ask_requester)")
    return set_total > 0 and kept and len(asked) == 1


STORM_REQUESTERS = ("Dana Whitfield", "Ravi Menon", "Lena Fischer", "Tomás Ortega")


def related_tickets(new: list[ArticleTicket]) -> list[ArticleTicket]:
    """Tickets that repeat the demo's new ones, as people write them when something is down: the requester
    of the second new ticket asks again (a possible duplicate), and four colleagues report the third one's
    problem within minutes (with it, five alike open tickets: a possible major incident at the default
    ``storm_min_tickets``); then someone writes only that Outlook is not working (too vague to act on)."""
    repeat, outage = new[1], new[2]
    again = dataclasses.replace(repeat, subject=f"Still not working: {repeat.subject}")
    storm = [dataclasses.replace(outage, requester=name, subject=f"{outage.subject} (here too)")
             for name in STORM_REQUESTERS]
    return [again, *storm, vague_ticket(new[0])]


def vague_ticket(like: ArticleTicket) -> ArticleTicket:
    """A ticket as many arrive at a service desk: an application's name and "please help" (a possible clarification:
    the note asks the requester what happens)."""
    return dataclasses.replace(like, article_id="vague", subject="Outlook not working", requester="Sam Okafor",
                               description_html="<p>It does not work since this morning. Please help!</p>"
                                                "<p>Sent from my iPhone</p>", category=None)


def _keep_fresh(instance, client: ServiceDeskClient, request_ids: list[str], env: dict[str, str], history_key,
                inventory_key) -> bool:
    """Step 5: a technician resolves tickets (the first of ``request_ids``, in ``TENANT``'s SDP) and the data team
    drops an inventory update; both sensors deliver."""
    import psycopg

    loads_before = len(_materializations(instance, inventory_key))
    resolved_ids = request_ids[:RESOLVED_BY_TECHNICIAN]
    for rid in resolved_ids:
        client.add_resolution(rid, "<p>Applied the fix from the enhancement note; confirmed with the requester.</p>")
        client.update_request(rid, {"status": {"name": "Resolved"}})
    (DEMO_ROOT / "inventory" / "inventory-update.csv").write_text(INVENTORY_UPDATE)
    changed_at = time.monotonic()
    _say(f"a technician resolved {len(resolved_ids)} of the tickets and the data team dropped inventory-update.csv; "
         "waiting for resolved_ticket_sensor and the inventory sensor")

    def in_history() -> int:
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            return conn.execute("SELECT count(*) FROM ticket_history WHERE tenant_id = %s AND source = "
                                "'sensor_resolved' AND ticket_id = ANY(%s) AND resolution IS NOT NULL",
                                (TENANT, resolved_ids)).fetchone()[0]

    ok = True
    try:
        _wait(lambda: in_history() == len(resolved_ids), FRESHNESS_TIMEOUT_S, "resolved_ticket_sensor")
        _say(f"resolved_ticket_sensor: {len(resolved_ids)}/{len(resolved_ids)} resolved tickets in "
             f"{TENANT}/ticket_history (source sensor_resolved) {time.monotonic() - changed_at:.0f} s after resolving")
    except TimeoutError as exc:
        ok = False
        _say(f"{exc}: {in_history()}/{len(resolved_ids)} in ticket_history")
    try:
        _wait(lambda: len(_materializations(instance, inventory_key)) > loads_before, FRESHNESS_TIMEOUT_S,
              "the inventory sensor")
        meta = _materializations(instance, inventory_key)[0].metadata
        _say(f"inventory sensor: {meta['files'].value} loaded, {meta['rows_loaded'].value} rows "
             f"({meta['inserted'].value} new) {time.monotonic() - changed_at:.0f} s after the drop")
    except TimeoutError as exc:
        ok = False
        _say(str(exc))
    return ok


def _report(instance, created, notes_for, ui_port, started, delivered: bool) -> int:
    """Print the note, the table and the summary; 0 when every ticket got one note and ``delivered`` (the
    sensors and the push path did their part)."""
    from dagster import DagsterRunStatus, RunsFilter

    from enhancement_pipeline.delivery.claims import TRIGGER_TAG
    from enhancement_pipeline.enhancement.job import PROMPT_VERSION_TAG
    from enhancement_pipeline.enhancement.prompts import PROMPT_VERSION

    rows, latencies, posted_total = [], [], 0
    enhanced = tagged = 0
    example_note = None
    for (tenant, rid), (t, created_ms) in created.items():
        notes = notes_for((tenant, rid))
        posted_total += len(notes)
        runs = instance.get_runs(RunsFilter(tags={"ticket_id": rid, "tenant": tenant}))
        meta = _op_metadata(instance, runs[0].run_id) if runs else {}
        seconds = (int(notes[0]["added_time"]["value"]) - created_ms) / 1000 if notes else None
        if len(notes) == 1:
            enhanced += 1
            latencies.append(seconds)
            if example_note is None and t.article_id == IP_TICKET_ARTICLES[0] and tenant == TENANT:
                example_note = (rid, t, notes[0])
        status = runs[0].status.value if runs else "no run"
        # What launched the ticket's first run: the push receiver, the new-ticket sensor or the sweep.
        via = runs[-1].tags.get(TRIGGER_TAG, "sensor" if runs[-1].tags.get("dagster/sensor_name") else "hand") \
            if runs else "-"
        rows.append((rid if tenant == TENANT else f"{tenant}/{rid}", t, len(notes), meta, seconds, f"{status} ({via})"))
        tagged += bool(runs) and runs[0].tags.get(PROMPT_VERSION_TAG) == PROMPT_VERSION
    vias = Counter(row[5].rsplit("(", 1)[1].rstrip(")") for row in rows)
    failed = instance.get_runs_count(RunsFilter(job_name="enhance_ticket", statuses=[DagsterRunStatus.FAILURE]))

    if example_note:
        rid, t, note = example_note
        print(f"\n=== the note posted on request {rid}: {t.subject}\n")
        print(html_to_text(note["description"]))
        links = dict.fromkeys(re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', note["description"]))
        print("\nits links (every one from the context: SDP request pages and article URLs):")
        for href, text in links:
            print(f"  {html.unescape(text)} -> {html.unescape(href)}")
    print("\n" + f"{'request':>30}  {'subject':<40} {'similar':>7} {'KB':>3} {'systems':>7} {'mode':>16} "
          f"{'removed':>7} {'words':>5} {'notes':>5} {'seconds':>7}  run (launched by)")
    for rid, t, n_notes, meta, seconds, status in rows:
        subject = (t.subject[:37] + "...") if len(t.subject) > 40 else t.subject
        note_meta = meta.get("note", {})
        print(f"{rid:>30}  {subject:<40} {meta.get('similar_tickets', '-'):>7} "
              f"{meta.get('knowledge_articles', '-'):>3} {meta.get('inventory_lookup', '-'):>7} "
              f"{_how(note_meta):>16} "
              f"{note_meta.get('ungrounded_removed', '-'):>7} {note_meta.get('words', '-'):>5} {n_notes:>5} "
              f"{(f'{seconds:.1f}' if seconds is not None else '-'):>7}  {status}")
    notes_meta = [meta["note"] for _, _, _, meta, _, _ in rows if "note" in meta]
    tokens = sum(m.get("prompt_tokens", 0) + m.get("completion_tokens", 0) for m in notes_meta)
    print(f"\ngrounding: {len(notes_meta)} notes checked against their context, "
          f"{sum(m.get('ungrounded_removed', 0) for m in notes_meta)} ungrounded items removed; "
          f"LLM tokens {tokens:,}, estimated cost ${sum(m.get('estimated_cost_usd', 0) for m in notes_meta):.4f}; "
          f"runs tagged {PROMPT_VERSION_TAG}={PROMPT_VERSION}: {tagged}/{len(created)}; runs launched by "
          + ", ".join(f"{via} {n}" for via, n in vias.most_common()))
    print()
    if failed:
        print(f"{failed} enhance_ticket run(s) failed; see the Dagster UI or {_shown(DEMO_ROOT / 'logs')}/daemon.log")
    if ui_port:
        print(f"Dagster UI with this demo's runs: http://127.0.0.1:{ui_port} (Ctrl-C to stop)")
    p50 = statistics.median(latencies) if latencies else float("nan")
    p95 = percentile(latencies, 95)
    p95 = float("nan") if p95 is None else p95
    texts = [html_to_text(n["description"]) for key in created for n in notes_for(key)]
    print(f"triage: a suggestion line on {sum('Suggested triage:' in x for x in texts)}/{len(texts)} notes, a "
          f"possible duplicate on {sum('Possible duplicate' in x for x in texts)}, a possible major incident on "
          f"{sum('Possible major incident' in x for x in texts)}; questions for the requester on "
          f"{sum('Too vague to act on yet' in x for x in texts)} (too vague to act on), a suggested reply to the "
          f"requester on {sum('Suggested reply to the requester' in x for x in texts)}")
    print(f"demo took {time.monotonic() - started:.0f} s; logs in {_shown(DEMO_ROOT / 'logs')}")
    print(f"enhanced {enhanced}/{len(created)} tickets, notes posted {posted_total}, p50 {p50:.1f} s, p95 {p95:.1f} s")
    ok = enhanced == len(created) and posted_total == len(created) and delivered
    if ui_port and ok:
        try:
            signal.pause()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (StopSignals): the end of the wait, not a failure
            pass
    return 0 if ok else 1


def _op_metadata(instance, run_id: str) -> dict:
    """The ``count`` each context lookup reported in its output metadata, by lookup name, what
    ``synthesize_note`` reported about the note (mode, removed, tokens, cost) under ``note``, and what
    ``apply_triage`` wrote into SDP under ``apply``."""
    from dagster import DagsterEventType

    counts: dict = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        metadata = event.event_specific_data.metadata if event and event.event_specific_data else {}
        if "count" in metadata:  # a lookup: an output of gather_context
            counts[event.event_specific_data.step_output_handle.output_name] = metadata["count"].value
        if event.step_key == "synthesize_note":
            counts["note"] = {k: metadata[k].value for k in ("mode", "answer_path", "ungrounded_removed",
                                                               "prompt_tokens", "completion_tokens",
                                                               "estimated_cost_usd", "words")
                              if k in metadata}
        if event.step_key == "apply_triage":
            counts["apply"] = {k: metadata[k].value for k in ("mode", "writes", "not_written", "fields_set")
                               if k in metadata}
    return counts
