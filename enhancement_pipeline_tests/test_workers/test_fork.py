"""The run worker loads the sentence encoder before Celery forks its pool (``workers/celery_app._preload``): a
forked process must get the same vectors as the process that loaded it, and not hang."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
import os, sys
os.environ["EMBEDDINGS_THREADS"] = "1"
os.environ["EMBEDDINGS_MEMORY_ARENA"] = "0"
import numpy as np
from enhancement_pipeline.history.embeddings import OnnxEncoder
encoder = OnnxEncoder(cache_size=0)  # loaded, nothing encoded: as the worker's main process leaves it
texts = ["Outlook asks for the password again and again", "VPN drops every hour " * 40]
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        vectors = encoder.encode(texts)
        np.save(f"{sys.argv[1]}/{os.getpid()}.npy", vectors)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
reference = encoder.encode(texts)
for pid in pids:
    np.testing.assert_allclose(np.load(f"{sys.argv[1]}/{pid}.npy"), reference, atol=1e-6)
print("ok", len(pids))
"""


def test_a_forked_pool_process_encodes_with_the_parents_session(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ})
    assert done.returncode == 0 and done.stdout.strip() == "ok 2", done.stderr[-2000:]
