"""Retrieval quality of similar-ticket search on real data, every method in one run, against BM25.

Tasks:

- **Known-item** (shipped Microsoft support articles, CC BY 4.0): the corpus is every article's symptoms and
  cause (as the ticket description) and resolution, without its title; the query is the article's ``h1``,
  the headline phrased as a user reports the problem; the one right answer is the article itself. Reports
  Recall@1, Recall@5 and MRR@10 over every article that has body text.
- **Category consistency** (Endava help-desk tickets, ``../shared/data/tickets-endava``, licence unclear, so
  not shipped): 2,000 sampled tickets (fixed seed) each query all the other 47,836; reports P@5, the share
  of the top 5 with the query's ``Topic_group``, and the chance level (a random other ticket's). When that
  folder is absent the task is skipped with a message saying where to put it.
- **KB search** (known-item again, over the 4,850 shipped KB documents with their titles): the KB
  simulator's ranking against BM25, so the demo's knowledge base answers as a good one would.
- **Floor calibration**: the top hit's ``term_match`` and cosine for known-item queries answered right,
  against off-topic queries (GNOME Help and tldr page titles asked of the Microsoft corpus); prints what
  share of each the production floor (``history.search.LEXICAL_FLOOR``/``SEMANTIC_FLOOR``) keeps.

Methods: ``seed`` (the issue-3 query: OR-ed lexemes, ``ts_rank_cd``), ``lexical`` (production without
embeddings), ``semantic`` (pgvector cosine alone), ``hybrid`` (production: the two fused, see
``history.search``; ``hybrid_rrf`` the reciprocal rank fusion it replaced), and ``bm25`` (``bm25s``, Lucene
BM25 k1=1.5 b=0.75, English stop words and Snowball stemming, as the reference peer). The semantic methods
run once per installed encoder backend (``history.embeddings``), labelled ``hybrid[onnx]`` (the default
install: all-MiniLM-L6-v2 with int8 weights on onnxruntime) and ``hybrid[torch]`` (the ``embeddings-torch``
extra: the same model in fp32 on PyTorch): before a backend's queries the tenant's tickets are embedded
again with it (each backend stores its own ``model_name``), the default backend last. Every project method
runs the production code (``history.search``) against the project's own PostgreSQL, loaded through
``history.store.merge_tickets`` and embedded through ``history.search.embed_missing``, with the relevance
floor off so that ranking is measured. The floor calibration uses the default backend.

Embeddings are cached per model in ``.cache/retrieval_quality/<model_name>.npz`` (first run: several minutes
per backend on 2 cores for the 50k texts).

How to run: ``make bench-quality`` (installs the ``embeddings-torch`` and ``bench`` extras first, so both
backends are measured), or::

    .venv/bin/python benchmarks/retrieval_quality.py                 # both tasks, ~10 minutes
    .venv/bin/python benchmarks/retrieval_quality.py --queries 300   # quick

The last line is ``known_item_mrr10=<x> bm25_mrr10=<y> category_p5=<z> bm25_category_p5=<w>``, the
production method (hybrid on the default backend) against BM25. Goal: +10 % relative on both.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from _measure import (  # benchmarks/ is on sys.path when a script in it runs
    CachedEncoder,
    migrated_postgres,
    remove_postgres,
)

ROOT = Path(__file__).resolve().parents[1]
ENDAVA = ROOT.parent / "shared" / "data" / "tickets-endava" / "all_tickets_processed_improved_v3.csv.gz"
CACHE = ROOT / ".cache" / "retrieval_quality"
METHODS = ("seed", "lexical", "semantic", "hybrid_rrf", "hybrid", "bm25")
# Run once per encoder backend, as "<method>[<backend>]".
SEMANTIC_METHODS = ("semantic", "hybrid_rrf", "hybrid")

_SEED_SQL = """
WITH q AS (SELECT replace(plainto_tsquery('english', %(text)s)::text, ' & ', ' | ')::tsquery AS query)
SELECT h.ticket_id FROM ticket_history AS h, q
WHERE h.tenant_id = %(tenant)s AND h.resolution IS NOT NULL AND h.search_vector @@ q.query
  AND NOT (h.ticket_id = ANY(%(exclude)s))
ORDER BY ts_rank_cd(h.search_vector, q.query, 32) DESC, h.resolved_at DESC
LIMIT %(limit)s
"""

Search = Callable[[str, str], list[str]]  # (query text, id to leave out) -> ranked ids


def say(message: str) -> None:
    print(f"[retrieval_quality] {message}", flush=True)


def known_item_corpus() -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """((id, description, resolution, h1) per article with body text, off-topic queries)."""
    from enhancement_pipeline.local.datasets import kb_documents, markdown_to_html, ms_articles
    from enhancement_pipeline.servicedesk.payloads import html_to_text

    def plain(markdown: str | None) -> str:
        return html_to_text(markdown_to_html(markdown)) if markdown else ""

    corpus = []
    for i, article in enumerate(ms_articles()):
        description = "\n\n".join(p for p in (plain(article.get("symptoms")), plain(article.get("cause"))) if p)
        resolution = plain(article.get("resolution"))
        if description or resolution:
            corpus.append((f"ms{i:05d}", description, resolution, article["h1"].strip()))
    off_topic = [d.title for d in kb_documents() if not d.article_id.startswith("ms-")]
    return corpus, off_topic


def endava_tickets() -> list[tuple[str, str]] | None:
    """(Document, Topic_group) per Endava ticket, or None when the file is absent."""
    if not ENDAVA.exists():
        return None
    with gzip.open(ENDAVA, "rt", encoding="utf-8", newline="") as fh:
        return [(row["Document"], row["Topic_group"]) for row in csv.DictReader(fh)]


def load_tenant(resource, tenant: str, rows: list[tuple[str, str, str]]) -> float:
    """Merge ``(id, description, resolution)`` rows as resolved tickets, refresh stats; seconds taken."""
    from enhancement_pipeline.history.search import refresh_lexeme_stats
    from enhancement_pipeline.history.store import merge_tickets
    from enhancement_pipeline.models import Ticket

    resolved = datetime(2025, 6, 1, tzinfo=UTC)
    t = time.perf_counter()
    with resource.connection() as conn:
        merge_tickets(conn, tenant, (Ticket(tenant_id=tenant, ticket_id=i, subject="", description=d,
                                            resolution=r, resolved_at=resolved) for i, d, r in rows),
                      "bulk_import")
        refresh_lexeme_stats(conn, tenant)
    return time.perf_counter() - t


def embed_tenant(resource, tenant: str, encoder) -> float:
    """(Re-)embed the tenant's tickets with this encoder (another model's vectors are replaced); seconds."""
    from enhancement_pipeline.history.search import embed_missing

    t = time.perf_counter()
    with resource.connection() as conn:
        embed_missing(conn, tenant, encoder, batch_size=1024)
    encoder.save()
    return time.perf_counter() - t


def project_methods(resource, tenant: str) -> dict[str, Search]:
    """The methods that need no encoder."""
    def seed(text: str, exclude: str) -> list[str]:
        with resource.connection() as conn:
            return [r[0] for r in conn.execute(_SEED_SQL, {"text": text[:2000], "tenant": tenant, "limit": 10,
                                                           "exclude": [exclude]})]

    return {"seed": seed, "lexical": production(resource, tenant, "lexical", None)}


def production(resource, tenant: str, method: str, encoder) -> Search:
    from enhancement_pipeline.history.search import find_similar

    def search(text: str, exclude: str) -> list[str]:
        with resource.connection() as conn:
            return [t.ticket_id for t in find_similar(conn, tenant, text, 10, encoder=encoder, method=method,
                                                      floor=False, exclude_ids=[exclude])]
    return search


def evaluate(resource, tenant: str, label: str, methods: dict[str, Search], encoders: dict,
             methods_wanted: Sequence[str], queries: list[tuple[str, str]],
             score: Callable[[list[list[str]], float], dict]) -> dict[str, dict]:
    """Every wanted method's scores: those without an encoder once, the semantic ones once per backend
    (``"hybrid[onnx]"``), each after the tenant is embedded with that backend's encoder."""
    results = {}

    def measure(name: str, search: Search) -> None:
        ranked, ms = run_queries(search, queries)
        results[name] = score(ranked, ms)
        say(f"{label} {name}: {results[name]}")

    for name in methods_wanted:
        if name in methods:
            measure(name, methods[name])
    for backend, encoder in encoders.items():
        wanted = [m for m in methods_wanted if m in SEMANTIC_METHODS]
        if not wanted:
            break
        seconds = embed_tenant(resource, tenant, encoder)
        say(f"{label}: embedded with {encoder.model_name} ({backend}) in {seconds:.1f} s")
        for name in wanted:
            measure(f"{name}[{backend}]", production(resource, tenant, name, encoder))
    return results


def bm25_method(ids: list[str], texts: list[str]) -> Search:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)

    def search(text: str, exclude: str) -> list[str]:
        tokens = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, show_progress=False)
        if not tokens.vocab:
            return []
        docs, _ = retriever.retrieve(tokens, k=11, show_progress=False, n_threads=1)
        return [ids[d] for d in docs[0] if ids[d] != exclude][:10]
    return search


def run_queries(search: Search, queries: list[tuple[str, str]]) -> tuple[list[list[str]], float]:
    """Ranked ids per ``(text, exclude_id)`` query, and the mean milliseconds per query."""
    t = time.perf_counter()
    results = [search(text, exclude) for text, exclude in queries]
    return results, (time.perf_counter() - t) / max(len(queries), 1) * 1000


def known_item_metrics(ranked: list[list[str]], targets: list[str], ms: float) -> dict[str, float]:
    """Recall@1, Recall@5 and MRR@10 of ranked id lists against the one right id per query."""
    ranks = [r.index(t) + 1 if t in r else None for r, t in zip(ranked, targets, strict=True)]
    return {
        "R@1": sum(1 for r in ranks if r == 1) / len(ranks),
        "R@5": sum(1 for r in ranks if r and r <= 5) / len(ranks),
        "MRR@10": sum(1 / r for r in ranks if r and r <= 10) / len(ranks),
        "ms/query": ms,
    }


def load_known_item(resource) -> list[tuple[str, str, str, str]]:
    corpus, _ = known_item_corpus()
    load_s = load_tenant(resource, "known_item", [(i, d, r) for i, d, r, _ in corpus])
    say(f"known-item: {len(corpus):,} articles loaded in {load_s:.1f} s")
    return corpus


def known_item(resource, encoders: dict, corpus: list[tuple[str, str, str, str]], methods_wanted: Sequence[str],
               limit: int | None) -> dict[str, dict]:
    queries = [(h1, "") for _, _, _, h1 in corpus][:limit]
    targets = [i for i, *_ in corpus][:limit]
    methods = project_methods(resource, "known_item")
    methods["bm25"] = bm25_method([i for i, *_ in corpus], [f"{d}\n{r}" for _, d, r, _ in corpus])
    return evaluate(resource, "known_item", "known-item", methods, encoders, methods_wanted, queries,
                    lambda ranked, ms: known_item_metrics(ranked, targets, ms))


def load_category(resource) -> list[tuple[str, str]] | None:
    tickets = endava_tickets()
    if tickets is None:
        say(f"category task skipped: {ENDAVA} is absent. The Endava tickets are not shipped (licence unclear); "
            "put the shared/ data folder beside the project checkout (see shared/data/tickets-endava/README.md).")
        return None
    load_s = load_tenant(resource, "category", [(f"en{i:05d}", doc, "") for i, (doc, _) in enumerate(tickets)])
    say(f"category: {len(tickets):,} Endava tickets loaded in {load_s:.1f} s")
    return tickets


def category(resource, encoders: dict, tickets: list[tuple[str, str]], methods_wanted: Sequence[str],
             n_queries: int, seed: int) -> dict[str, dict]:
    ids = [f"en{i:05d}" for i in range(len(tickets))]
    sample = random.Random(seed).sample(range(len(tickets)), n_queries)
    queries = [(tickets[q][0], ids[q]) for q in sample]
    groups = dict(zip(ids, (g for _, g in tickets), strict=True))
    sizes = Counter(groups.values())
    chance = statistics.fmean((sizes[tickets[q][1]] - 1) / (len(tickets) - 1) for q in sample)
    methods = project_methods(resource, "category")
    # The seed query ORs every lexeme of a long ticket and ranks by cover density: one Endava query took
    # over 20 s at this size (measured), so it is left out of this task.
    methods.pop("seed")
    methods["bm25"] = bm25_method(ids, [doc for doc, _ in tickets])

    def score(ranked: list[list[str]], ms: float) -> dict:
        p5 = [sum(1 for t in r[:5] if groups[t] == tickets[q][1]) / 5 for r, q in zip(ranked, sample, strict=True)]
        return {"P@5": statistics.fmean(p5), "chance": chance, "ms/query": ms}
    return evaluate(resource, "category", "category", methods, encoders, methods_wanted, queries, score)


def calibrate_floor(resource, encoder) -> None:
    """Top-hit scores of right known-item answers against off-topic queries, and what the floor keeps."""
    from enhancement_pipeline.history.search import (
        LEXICAL_FLOOR,
        SEMANTIC_FLOOR,
        lexical_search,
        semantic_search,
    )

    corpus, off_topic = known_item_corpus()
    rng = random.Random(7)
    right = rng.sample(corpus, min(600, len(corpus)))
    wrong = rng.sample(off_topic, min(600, len(off_topic)))

    def top(text: str) -> tuple[str | None, float, float]:
        with resource.connection() as conn:
            lex = lexical_search(conn, "known_item", text, 1)
            sem = semantic_search(conn, "known_item", encoder.encode([text])[0], 1) if encoder else []
        best = (lex or sem or [(None, 0.0)])[0][0]
        return best, (lex[0][1] if lex else 0.0), (sem[0][1] if sem else 0.0)

    hits = [top(h1) for i, _, _, h1 in right]
    right_scores = [(lex, sem) for (best, lex, sem), (i, *_) in zip(hits, right, strict=True) if best == i]
    wrong_scores = [top(q)[1:] for q in wrong]

    def kept(scores: list[tuple[float, float]], lexical: float, semantic: float) -> float:
        return sum(1 for lex, sem in scores if lex >= lexical or sem >= semantic) / max(len(scores), 1)

    def kept_production(scores: list[tuple[float, float]], hybrid: bool) -> float:
        # As rank_similar applies it: the cosine where there is one (here every ticket has an embedding).
        return sum(1 for lex, sem in scores if (sem >= SEMANTIC_FLOOR if hybrid else lex >= LEXICAL_FLOOR)
                   ) / max(len(scores), 1)

    pct = lambda xs, p: xs[min(int(p * len(xs)), len(xs) - 1)] if xs else float("nan")  # noqa: E731
    for label, scores in (("right answers", right_scores), ("off-topic", wrong_scores)):
        lex, sem = sorted(s[0] for s in scores), sorted(s[1] for s in scores)
        say(f"floor: {label} ({len(scores)}): term_match p5/p50/p95 {pct(lex, .05):.2f}/{pct(lex, .5):.2f}/"
            f"{pct(lex, .95):.2f}; cosine p5/p50/p95 {pct(sem, .05):.2f}/{pct(sem, .5):.2f}/{pct(sem, .95):.2f}")
    # The calibration: the pair that keeps at least 95 % of right answers and the fewest off-topic hits
    # (lexical only: the semantic floor out of reach, as without the extra).
    grid = [round(0.05 * i, 2) for i in range(1, 21)]
    for label, semantic_grid in (("hybrid", grid), ("lexical only", [2.0])):
        best = max(((kept(right_scores, lx, sx) - kept(wrong_scores, lx, sx), lx, sx)
                    for lx in grid for sx in semantic_grid if kept(right_scores, lx, sx) >= 0.95), default=None)
        if best:
            say(f"floor calibration, {label}: term_match >= {best[1]}"
                + (f" or cosine >= {best[2]}" if best[2] <= 1 else "")
                + f" keeps {kept(right_scores, best[1], best[2]):.1%} of right top hits and "
                f"{kept(wrong_scores, best[1], best[2]):.1%} of off-topic ones")
    print(f"production floor: hybrid (cosine >= {SEMANTIC_FLOOR}) keeps {kept_production(right_scores, True):.1%} "
          f"of right top hits and {kept_production(wrong_scores, True):.1%} of off-topic ones; lexical only "
          f"(term_match >= {LEXICAL_FLOOR}) {kept_production(right_scores, False):.1%} and "
          f"{kept_production(wrong_scores, False):.1%}")


def kb_known_item(limit: int | None) -> dict[str, dict]:
    """The KB simulator's search (``local.kb_simulator.KbIndex``, what the demo and tests query over HTTP)
    against BM25 on the same 4,850 documents (title, summary, body): each Microsoft article's ``h1`` should
    find that article. Titles are indexed here (a KB is searched by title), and differ from the h1."""
    from enhancement_pipeline.local.datasets import kb_documents, ms_articles
    from enhancement_pipeline.local.kb_simulator import KbIndex

    documents = kb_documents()
    queries = [(a["h1"].strip(), a["id"]) for a in ms_articles()][:limit]
    index = KbIndex(documents)
    peers: dict[str, Search] = {
        "kb simulator": lambda text, _: [a["id"] for a in index.search(text, 10)],
        "bm25": bm25_method([d.article_id for d in documents],
                            [f"{d.title}\n{d.summary}\n{d.body}" for d in documents]),
    }
    results = {}
    for name, search in peers.items():
        ranked, ms = run_queries(search, [(q, "") for q, _ in queries])
        results[name] = known_item_metrics(ranked, [t for _, t in queries], ms)
        say(f"kb known-item {name}: {results[name]}")
    return results


def print_table(known: dict[str, dict], cat: dict[str, dict] | None, backends: Sequence[str]) -> None:
    print()
    print(f"{'method':<17} {'R@1':>6} {'R@5':>6} {'MRR@10':>7} {'ms/q':>6} | {'P@5':>6} {'chance':>6} {'ms/q':>6}")
    rows = []
    for base in METHODS:
        rows += [f"{base}[{b}]" for b in backends] if base in SEMANTIC_METHODS else [base]
    for name in rows:
        k = known.get(name)
        c = (cat or {}).get(name)
        if not k and not c:
            continue
        left = f"{k['R@1']:>6.3f} {k['R@5']:>6.3f} {k['MRR@10']:>7.3f} {k['ms/query']:>6.1f}" if k else " " * 28
        right = f"{c['P@5']:>6.3f} {c['chance']:>6.3f} {c['ms/query']:>6.1f}" if c else "     (skipped)"
        print(f"{name:<17} {left} | {right}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000, help="sampled Endava queries")
    parser.add_argument("--known-items", type=int, default=None, help="limit the known-item queries")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--no-embeddings", action="store_true", help="leave the semantic methods out")
    parser.add_argument("--backends", default=None,
                        help="encoder backends to measure (default: every installed one of onnx,torch)")
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()
    methods = args.methods.split(",")

    from enhancement_pipeline.history.embeddings import BACKENDS, configured_backend, encoder_for
    from enhancement_pipeline.history.search import find_similar
    from enhancement_pipeline.storage.postgres import PostgresResource, close_pools

    # The default backend last: its vectors are the ones left in the tables for the floor calibration.
    default = configured_backend() or "onnx"
    wanted = [] if args.no_embeddings else (args.backends.split(",") if args.backends else list(BACKENDS))
    encoders = {}
    for backend in sorted(wanted, key=lambda b: b == default):
        loaded = encoder_for(backend)
        if loaded is None:
            say(f"encoder backend {backend} is not installed: its semantic and hybrid rows are left out")
        else:
            encoders[backend] = CachedEncoder(loaded, CACHE / f"{loaded.model_name}.npz")
    encoder = encoders.get(default) or next(reversed(encoders.values()), None)
    production = (f"hybrid[{next(b for b, e in encoders.items() if e is encoder)}]" if encoder is not None
                  else "lexical")
    names = ", ".join(f"{b} ({e.model_name})" for b, e in encoders.items()) or "none"
    say(f"machine: {os.cpu_count()} cores; encoders: {names}; production method here: {production} "
        f"({find_similar.__module__})")

    postgres, db_url = migrated_postgres("ep-bench-quality-")
    try:
        resource = PostgresResource(database_url=db_url)
        known = known_item(resource, encoders, load_known_item(resource), methods, args.known_items)
        tickets = load_category(resource)
        cat = category(resource, encoders, tickets, methods, args.queries, args.seed) if tickets else None
        if encoder is not None:  # (a no-op unless --methods left the semantic ones out)
            embed_tenant(resource, "known_item", encoder)
        calibrate_floor(resource, encoder)
        kb = kb_known_item(args.known_items)
        print_table(known, cat, list(encoders))
        for name, row in kb.items():
            print(f"KB search, {name}: R@1 {row['R@1']:.3f}, MRR@10 {row['MRR@10']:.3f}, "
                  f"{row['ms/query']:.1f} ms/query")
        print()
        cat_line = (f"category_p5={cat[production]['P@5']:.3f} bm25_category_p5={cat['bm25']['P@5']:.3f}"
                    if cat and production in cat and "bm25" in cat else "category_p5=nan bm25_category_p5=nan")
        print(f"known_item_mrr10={known[production]['MRR@10']:.3f} bm25_mrr10={known['bm25']['MRR@10']:.3f} "
              f"{cat_line}")
    finally:
        close_pools()
        remove_postgres(postgres)


if __name__ == "__main__":
    main()
