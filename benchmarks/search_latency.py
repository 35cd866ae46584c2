"""Latency of the production similar-ticket query at 10k, 100k and 1M resolved tickets.

What it measures: ``history.search.find_similar(conn, tenant, text, 5)`` on a pooled connection, as the
``similar_tickets`` op calls it, wall time per call from the client (so it includes the query-terms lookup,
the scoring query and the details query; loopback round trips included). Two methods:

- ``lexical``: the production query without a sentence encoder (``EMBEDDINGS_BACKEND=off``);
- ``hybrid``: the default production query (lexical + pgvector HNSW + fusion). The query's embedding is
  computed before the timer starts (one MiniLM encode, printed separately); it is the database side that
  grows with the table.

On what: the project's PostgreSQL (temporary folder) filled through ``history.store.merge_tickets`` with
tickets generated from the shipped Microsoft support articles exactly as ``history_load.py`` does (subject =
title + a variant suffix, description and resolution = varied slices of the article's text), grown
10k -> 100k -> 1M. Embeddings are synthetic: each article gets a random unit vector and each ticket that
vector plus noise (cosine ~0.9 to its article's), because embedding 1M texts would take ~2 hours here; an
HNSW search's cost depends on the vectors' number and dimension, not on what they mean. After each size:
``refresh_lexeme_stats``, ``VACUUM ANALYZE``, then ``--queries`` (default 300) queries, new tickets generated
from rows that are not in the table, after 20 warm-up queries. The server runs with the project's memory
settings for this machine (``local.services.postgres_memory_settings``: ``shared_buffers`` a quarter of RAM,
``maintenance_work_mem`` 1/16 up to 2 GB for the index build, ...; printed at the start), as a production
server would; ``EMBEDDED_POSTGRES_MEMORY=4GB`` measures a server sized for less.

How to run: ``make bench-latency`` (about 13 minutes on 2 cores, most of it loading 1M rows and building the
HNSW index), or::

    .venv/bin/python benchmarks/search_latency.py
    .venv/bin/python benchmarks/search_latency.py --sizes 10000,100000   # quick

The last line is ``p95_ms_1m=<n>``: the hybrid method's p95 at 1M rows (lexical when ``--no-vectors``).
Goal: <= 20 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from _measure import migrated_postgres, remove_postgres
from history_load import ID_BASE, TENANT, article_texts, month_windows, tickets_for  # benchmarks/ is on sys.path

NEW_TICKET_BASE = 50_000_000  # generator rows used as new tickets: never loaded


def say(message: str) -> None:
    print(f"[search_latency] {message}", flush=True)


class SyntheticVectors:
    """Clustered unit vectors: article ``k``'s centre plus per-row noise (see the module docstring)."""

    model_name = "synthetic"

    def __init__(self, n_articles: int, dimensions: int = 384, noise: float = 0.45, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((n_articles, dimensions)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.noise, self.dimensions = noise, dimensions
        self.by_text: dict[str, np.ndarray] = {}

    def row_vectors(self, rows: range, n_articles: int) -> np.ndarray:
        rng = np.random.default_rng(rows.start)
        vectors = self.centres[[(i * 7_753) % n_articles for i in rows]] + \
            self.noise * rng.standard_normal((len(rows), self.dimensions)).astype(np.float32) / np.sqrt(self.dimensions)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def encode(self, texts):
        return np.stack([self.by_text[t] for t in texts])


def fill(resource, texts, first: int, last: int, windows, vectors: SyntheticVectors | None) -> float:
    """Merge rows ``first..last-1`` (spread over the windows) and their vectors; seconds taken."""
    from enhancement_pipeline.history.store import merge_tickets

    t = time.perf_counter()
    per_window = (last - first + len(windows) - 1) // len(windows)
    for w, (start, end) in enumerate(windows):
        rows = range(first + w * per_window, min(first + (w + 1) * per_window, last))
        if rows:
            with resource.connection() as conn:
                merge_tickets(conn, TENANT, tickets_for(rows, start, end, texts), "bulk_import")
    if vectors is not None:
        # Formatting 384 floats per row in Python would take longer than the load: the server adds one of
        # its noise vectors to the row's centre (the recipe of row_vectors, with a pool of noise).
        with resource.connection() as conn:
            conn.execute(_VECTORS, {"tenant": TENANT, "base": ID_BASE, "n": len(texts), "first": first,
                                    "last": last})
    return time.perf_counter() - t


_VECTORS = """
INSERT INTO ticket_embeddings (tenant_id, ticket_id, model, content_md5, embedding)
SELECT %(tenant)s, (%(base)s::numeric + i)::text, 'synthetic', '-', l2_normalize(c.centre + n.noise)::halfvec
  FROM generate_series(%(first)s::bigint, %(last)s::bigint - 1) AS i
  JOIN centres AS c ON c.k = (i * 7753) %% %(n)s
  JOIN noises AS n ON n.j = (i * 7919) %% 10007
"""


def load_centres(db_url: str, vectors: SyntheticVectors) -> None:
    """The articles' centres, and 10,007 noise vectors drawn by the server (a ticket adds one to its centre)."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE TABLE centres (k int PRIMARY KEY, centre vector(384))")
        with conn.cursor().copy("COPY centres (k, centre) FROM STDIN") as copy:
            for k, centre in enumerate(vectors.centres):
                copy.write_row((k, "[" + ",".join(map(str, centre.tolist())) + "]"))
        conn.execute("CREATE TABLE noises AS SELECT g.j, a.noise::vector(384) AS noise"
                     "  FROM generate_series(0, 10006) AS g(j)"
                     "  CROSS JOIN LATERAL (SELECT array_agg(%s * random_normal()) AS noise"
                     "                        FROM generate_series(1, 384) WHERE g.j >= 0) AS a",
                     (vectors.noise / float(np.sqrt(vectors.dimensions)),))
        conn.execute("ALTER TABLE noises ADD PRIMARY KEY (j)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--no-vectors", action="store_true", help="lexical only (no pgvector table filled)")
    parser.add_argument("--candidate-postings", type=int, default=None,
                        help="override history.ranking.CANDIDATE_POSTINGS (to measure the trade-off)")
    args = parser.parse_args()
    if args.candidate_postings:
        from enhancement_pipeline.history import ranking

        ranking.CANDIDATE_POSTINGS = args.candidate_postings
    sizes = [int(s) for s in args.sizes.split(",")]

    from enhancement_pipeline.history.search import find_similar, refresh_lexeme_stats
    from enhancement_pipeline.storage.postgres import PostgresResource, close_pools

    texts = article_texts()
    windows = month_windows(24)
    vectors = None if args.no_vectors else SyntheticVectors(len(texts))
    queries = [t for t in tickets_for(range(NEW_TICKET_BASE, NEW_TICKET_BASE + args.queries + 20), *windows[-1],
                                      texts)]
    query_texts = [f"{q.subject}\n{q.description}" for q in queries]
    if vectors is not None:
        vectors.by_text = dict(zip(query_texts, vectors.row_vectors(range(NEW_TICKET_BASE,
                                                                          NEW_TICKET_BASE + len(queries)),
                                                                    len(texts)), strict=True))
    say(f"machine: {os.cpu_count()} cores; sizes {sizes}; {args.queries} queries (+20 warm-up) per size")

    try:
        from enhancement_pipeline.history.embeddings import load_encoder

        encoder = load_encoder()
    except Exception:  # noqa: BLE001 - only for the printed encode time
        encoder = None
    if encoder is not None:
        encoder.encode(["warm up"])
        t = time.perf_counter()
        for text in query_texts[:50]:
            encoder.encode([text])
        say(f"query embedding (MiniLM, CPU): {(time.perf_counter() - t) / 50 * 1000:.1f} ms per ticket")

    postgres, db_url = migrated_postgres("ep-bench-latency-")
    results: dict[tuple[str, int], tuple[float, float]] = {}
    try:
        resource = PostgresResource(database_url=db_url)
        with psycopg_autocommit(db_url) as conn:
            # What the server runs with, not what was asked for (a -c that did not take would show here).
            shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in postgres.memory_settings()}
            say("postgres: " + ", ".join(f"{name} {value}" for name, value in shown.items()))
            if vectors is not None:
                load_centres(db_url, vectors)
        loaded = 0
        for size in sizes:
            if vectors is not None:
                with resource.connection() as conn:  # rebuilt below: one build beats a million inserts into it
                    conn.execute("DROP INDEX IF EXISTS ticket_embeddings_hnsw")
            seconds = fill(resource, texts, loaded, size, windows, vectors)
            say(f"{size:,} rows: loaded {size - loaded:,} more in {seconds:.0f} s")
            loaded = size
            with resource.connection() as conn:
                t = time.perf_counter()
                refresh_lexeme_stats(conn, TENANT)
                say(f"{size:,} rows: refresh_lexeme_stats in {time.perf_counter() - t:.1f} s")
                if vectors is not None:
                    t = time.perf_counter()
                    # pgvector says when the graph outgrows maintenance_work_mem (the build then slows down).
                    def notice(diag) -> None:
                        say(f"postgres: {diag.message_primary}")

                    conn.add_notice_handler(notice)
                    try:
                        conn.execute("CREATE INDEX ticket_embeddings_hnsw ON ticket_embeddings "
                                     "USING hnsw (embedding halfvec_cosine_ops)")
                    finally:
                        conn.remove_notice_handler(notice)  # a pooled connection: the next user's notices
                    say(f"{size:,} rows: HNSW index built in {time.perf_counter() - t:.0f} s")
            with psycopg_autocommit(db_url) as conn:
                for table in ("ticket_history",) + (("ticket_embeddings",) if vectors is not None else ()):
                    conn.execute(f"VACUUM ANALYZE {table}")
            for method in ("lexical",) + (("hybrid",) if vectors is not None else ()):
                timings = []
                found = 0
                with resource.connection() as conn:
                    for n, text in enumerate(query_texts):
                        t = time.perf_counter()
                        hits = find_similar(conn, TENANT, text, 5, encoder=vectors, method=method)
                        if n >= 20:
                            timings.append((time.perf_counter() - t) * 1000)
                            found += bool(hits)
                timings.sort()
                p50 = statistics.median(timings)
                p95 = timings[int(0.95 * (len(timings) - 1))]
                results[(method, size)] = (p50, p95)
                say(f"{size:,} rows, {method}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {timings[-1]:.1f} ms; "
                    f"{found}/{len(timings)} queries found similar tickets")
        print()
        print(f"{'rows':>10} " + " ".join(f"{m + ' p50':>12} {m + ' p95':>12}" for m in ("lexical", "hybrid")))
        for size in sizes:
            cells = [f"{results[(m, size)][0]:>12.1f} {results[(m, size)][1]:>12.1f}" if (m, size) in results
                     else f"{'-':>12} {'-':>12}" for m in ("lexical", "hybrid")]
            print(f"{size:>10,} " + " ".join(cells))
        print()
        method = "lexical" if vectors is None else "hybrid"
        if (method, 1_000_000) in results:
            print(f"p95_ms_1m={results[(method, 1_000_000)][1]:.1f}")
        else:
            print(f"p95_ms_{sizes[-1]}={results[(method, sizes[-1])][1]:.1f}")
    finally:
        close_pools()
        remove_postgres(postgres)


def psycopg_autocommit(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


if __name__ == "__main__":
    main()
