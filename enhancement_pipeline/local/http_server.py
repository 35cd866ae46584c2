"""Serve an ASGI app with uvicorn on a background thread (the simulators in tests and in the demo)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn

from enhancement_pipeline.local.services import LocalServiceError, free_port


@dataclass
class BackgroundServer:
    """A running uvicorn server on 127.0.0.1; ``url`` has no trailing slash. ``stop()`` joins the thread."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(app, port: int = 0, name: str = "server") -> BackgroundServer:
    """Start ``app`` on 127.0.0.1:``port`` (free port if 0) and wait until it accepts connections (10 s)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"{name}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise LocalServiceError(f"{name} did not start on port {port}")
        time.sleep(0.01)
    return BackgroundServer(server, thread, port)
