"""``enhancement-pipeline``: demo, migrate, ui, worker, receiver, and the simulators as standalone servers."""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _migrate(args: argparse.Namespace) -> int:
    from enhancement_pipeline.settings import get_settings
    from enhancement_pipeline.storage.migrations import migrate

    url = args.database_url or get_settings().database_url
    applied = migrate(url)
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Exit codes: 0 when every ticket got its note (with ``--ui``, also after the Ctrl-C or SIGTERM that
    ends the wait), 1 when not, 128 + N when signal N stopped it before its summary."""
    from enhancement_pipeline.local.demo import run_demo
    from enhancement_pipeline.local.services import Stopped

    try:
        return run_demo(ui=args.ui, n_new=args.tickets, interval_s=args.interval, push=not args.no_push)
    except Stopped as stopped:
        print(f"[demo] stopped by {signal.Signals(stopped.signum).name} before it finished", flush=True)
        return 128 + stopped.signum


def _ui(args: argparse.Namespace) -> int:
    """The Dagster UI on the last demo's Postgres (runs, materializations, sensor ticks), until Ctrl-C or
    SIGTERM; either stops the webserver (with its code server) and Postgres, and exits 0. Exits 1 without
    demo data, or with the webserver's own code if it ends by itself."""
    from enhancement_pipeline.local.datasets import demo_split
    from enhancement_pipeline.local.demo import DEMO_ROOT, dagster_env, demo_tenant_env, prepare_dagster_home
    from enhancement_pipeline.local.services import EmbeddedPostgres, StopSignals, stop_process_groups
    from enhancement_pipeline.settings import PROJECT_ROOT

    if not (DEMO_ROOT / "postgres" / "data" / "PG_VERSION").exists():
        print("no demo data yet: run `make demo` first (or `make demo UI=1` to watch it live)")
        return 1
    postgres = EmbeddedPostgres(DEMO_ROOT / "postgres")
    webserver: list[subprocess.Popen] = []
    with StopSignals() as stop:
        try:
            postgres.start()
            # No daemon or run worker here (runs launched from this UI stay queued): the broker URL is only
            # what dagster.yaml needs to load.
            env = {**os.environ, **dagster_env(postgres, DEMO_ROOT / "dagster", "redis://127.0.0.1:6379/1"),
                   **demo_tenant_env(demo_split()[0]), "DATABASE_URL": postgres.url("enhancement")}
            prepare_dagster_home(DEMO_ROOT / "dagster")
            print(f"Dagster UI on the last demo's data: http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
            # Its own process group, stopped by us: the code server it spawns goes with it, and a terminal's
            # Ctrl-C reaches the webserver the same way as a SIGTERM sent to this process alone.
            webserver.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(args.port),
                 "-w", str(PROJECT_ROOT / "workspace.yaml")],
                cwd=PROJECT_ROOT, env=env, start_new_session=True))
            return webserver[0].wait()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (StopSignals raises Stopped, a KeyboardInterrupt)
            return 0
        finally:
            with stop.shield():
                stop_process_groups(webserver)
                postgres.stop()


def _worker(args: argparse.Namespace) -> int:
    """A warm run worker (``workers/celery_app.py``) in the foreground: Celery's prefork pool of
    ``--concurrency`` processes, each executing one Dagster run at a time. Runs until SIGTERM (warm shutdown:
    the runs in progress finish first) or SIGQUIT."""
    from enhancement_pipeline.workers.celery_app import (
        BACKEND_ENV,
        BROKER_ENV,
        app,
        broker_url,
        default_concurrency,
        result_backend_url,
    )

    if broker_url() is None or result_backend_url() is None:
        print(f"set {BROKER_ENV} and {BACKEND_ENV} to the values dagster.yaml's run launcher reads (e.g. "
              "redis://host:6379/1): the worker takes runs from there", file=sys.stderr)
        return 2

    concurrency = args.concurrency or default_concurrency()
    argv = ["worker", "--queues", "dagster", "--concurrency", str(concurrency), "--loglevel", args.loglevel,
            # Neither is needed to take tasks, and mingle alone waits a second at every start.
            "--without-mingle", "--without-gossip"]
    if args.name:
        argv += ["--hostname", args.name]
    app.worker_main(argv)
    return 0


def _receiver(args: argparse.Namespace) -> int:
    """The push receiver (``push/receiver.py``) on ``--host``:``--port`` until SIGTERM or Ctrl-C."""
    import uvicorn

    from enhancement_pipeline.push.receiver import create_app, receiver_for_deployment

    receiver, close = receiver_for_deployment()
    try:
        uvicorn.run(create_app(receiver), host=args.host, port=args.port, log_level=args.loglevel.lower(),
                    access_log=False)
    finally:
        close()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    """Serve one simulator in the foreground (for pointing a dev deployment at it)."""
    from enhancement_pipeline.local import kb_simulator, llm_simulator, sdp_simulator
    from enhancement_pipeline.local.http_server import serve_in_thread

    if args.service == "sdp":
        app = sdp_simulator.create_app(sdp_simulator.SdpState(api_key=args.key))
    elif args.service == "kb":
        app = kb_simulator.create_app()
    else:
        app = llm_simulator.create_app(llm_simulator.LlmSimState(api_key=args.key))
    server = serve_in_thread(app, port=args.port, name=args.service)
    print(f"{args.service} simulator on {server.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="enhancement-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the pipeline end to end on the embedded defaults")
    demo.add_argument("--ui", action="store_true", help="also start the Dagster UI and keep it up afterwards")
    demo.add_argument("--tickets", type=int, default=24, help="new tickets to open (at least 6)")
    demo.add_argument("--interval", type=float, default=3.0,
                      help="seconds between new tickets (0.4 shows how a burst queues on a 2-core machine)")
    demo.add_argument("--no-push", action="store_true",
                      help="no push receiver: the new-ticket sensor alone finds new tickets (every ~5 s)")
    demo.set_defaults(func=_demo)
    mig = sub.add_parser("migrate", help="apply sql/ migrations to DATABASE_URL")
    mig.add_argument("--database-url", default=None)
    mig.set_defaults(func=_migrate)
    ui = sub.add_parser("ui", help="open the Dagster UI on the last demo's data")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=_ui)
    worker = sub.add_parser("worker", help="run a warm run worker (Celery) that executes Dagster runs")
    worker.add_argument("--concurrency", type=int, default=None,
                        help="runs executed at once, one process each (default: RUN_WORKER_CONCURRENCY, else the "
                             "cores)")
    worker.add_argument("--name", default=None, help="Celery node name, e.g. worker1@%%h (default: celery@host)")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=_worker)
    receiver = sub.add_parser("receiver", help="serve the push receiver for SDP's request-created webhook")
    receiver.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    receiver.add_argument("--port", type=int, default=8090)
    receiver.add_argument("--loglevel", default="INFO")
    receiver.set_defaults(func=_receiver)
    sim = sub.add_parser("simulate", help="serve a simulator: sdp, kb or llm")
    sim.add_argument("service", choices=["sdp", "kb", "llm"])
    sim.add_argument("--port", type=int, default=0)
    sim.add_argument("--key", default="dev-key", help="API key the simulator accepts (sdp, llm)")
    sim.set_defaults(func=_simulate)
    args = parser.parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
