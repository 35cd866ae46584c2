"""One TLS context per process for every HTTP client (SDP, the knowledge base, the LLM endpoint).

Building a context loads the CA bundle: 26 ms of CPU each time (measured), and every ``httpx`` client built its
own (a run builds several: 6 % of a warm run worker's CPU, py-spy). An ``ssl.SSLContext`` may be shared by
threads and clients; ``httpx.create_ssl_context`` builds it as httpx would (certifi's bundle, ``SSL_CERT_FILE``
and ``SSL_CERT_DIR`` honoured).
"""

from __future__ import annotations

import ssl
from functools import lru_cache

import httpx


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The process's TLS context for verifying servers' certificates."""
    return httpx.create_ssl_context()
