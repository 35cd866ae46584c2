"""Calibration of the similar-ticket relevance floors on related tickets, against off-topic ones.

A technician wants the resolved tickets that are *related* to a new one (same product area, a different
problem), not only the same ticket again. The floors (``history.search.SEMANTIC_FLOOR`` on the cosine of a
ticket with an embedding, ``LEXICAL_FLOOR`` on the term share of one without) are chosen here:

- **Related** (shipped Microsoft support articles, CC BY 4.0, as the demo seeds them): the history is the
  demo's 1,693 resolved tickets; each of them is asked as a new ticket (its article's ``h1`` as the subject,
  its symptoms as the description) with itself left out, which is the demo's situation: the new ticket's own
  article is never in the history. Its top hit is *related* when it shares the query's product area (the
  first two parts of the article id, e.g. ``Exchange/ExchangeServer``, ``Office/Client``, or the same
  ``sap_category``).
- **Related, help-desk** (Endava tickets, ``../shared/data/tickets-endava``, licence unclear, not shipped):
  a sample of tickets as history, other tickets as queries; related = same ``Topic_group``. Skipped with a
  message when the folder is absent.
- **Off-topic**: GNOME Help pages and tldr pages (title as the subject, summary and opening text as the
  description) asked of each history: none has a right answer there, so any top hit shown is a false alarm.

For each candidate floor the table gives the share of queries whose top hit clears it and is related,
clears it and is not, and of off-topic queries whose top hit clears it. The floor chosen is the lowest
whose off-topic share stays within 2 %. The production values are printed beside the choice.

Run: ``make bench-floors`` or ``.venv/bin/python benchmarks/floor_calibration.py [--endava 8000]``.
Last line: ``floor_calibration semantic_floor=<x> related_shown=<a> offtopic_shown=<b> lexical_floor=<y>
lexical_related_shown=<c> lexical_offtopic_shown=<d>`` (shares at the production floors, Microsoft task).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _measure import migrated_postgres, remove_postgres  # benchmarks/ is on sys.path when a script in it runs

ROOT = Path(__file__).resolve().parents[1]
ENDAVA = ROOT.parent / "shared" / "data" / "tickets-endava" / "all_tickets_processed_improved_v3.csv.gz"
OFF_TOPIC_LIMIT = 0.02
SEMANTIC_GRID = [round(0.20 + 0.025 * i, 3) for i in range(21)]
LEXICAL_GRID = [round(0.05 + 0.025 * i, 3) for i in range(21)]


def say(message: str) -> None:
    print(f"[floor_calibration] {message}", flush=True)


@dataclass(frozen=True)
class TopHit:
    """The best candidate for one query: the score the floor holds (cosine on the hybrid path, term share on
    the lexical one) and whether it is related to the query (None for an off-topic query)."""

    score: float
    related: bool | None


def area_of(article: dict) -> tuple[str, str | None]:
    """(product area from the article id, sap_category or None)."""
    parts = article["id"].split("/")
    category = (article.get("sap_category") or [None])[0]
    return "/".join(parts[1:3]), category


def related(a: tuple[str, str | None], b: tuple[str, str | None]) -> bool:
    return a[0] == b[0] or (a[1] is not None and a[1] == b[1])


def load(conn, tenant: str, rows: Sequence[tuple[str, str, str, str]], encoder) -> float:
    """Merge ``(id, subject, description, resolution)`` as resolved tickets, refresh statistics, embed."""
    from enhancement_pipeline.history.search import embed_missing, refresh_lexeme_stats
    from enhancement_pipeline.history.store import merge_tickets
    from enhancement_pipeline.models import Ticket

    started = time.perf_counter()
    resolved = datetime(2025, 6, 1, tzinfo=UTC)
    merge_tickets(conn, tenant, (Ticket(tenant_id=tenant, ticket_id=i, subject=s, description=d, resolution=r,
                                        resolved_at=resolved - timedelta(minutes=n))
                                 for n, (i, s, d, r) in enumerate(rows)), "bulk_import")
    refresh_lexeme_stats(conn, tenant)
    if encoder is not None:
        embed_missing(conn, tenant, encoder, batch_size=256)
    conn.commit()
    return time.perf_counter() - started


def top_hit(conn, tenant: str, text: str, exclude: str, encoder, is_related: Callable[[str], bool] | None
            ) -> TopHit | None:
    """The production search's best candidate with the floor off: hybrid when ``encoder`` (its score is the
    cosine), else lexical (the term share); None when nothing shares a word or a neighbour."""
    from enhancement_pipeline.history.search import find_similar

    found = find_similar(conn, tenant, text, 1, encoder=encoder, floor=False, exclude_ids=[exclude])
    if not found:
        return None
    return TopHit(found[0].score, None if is_related is None else is_related(found[0].ticket_id))


Hits = dict[str, list[TopHit | None]]  # "hybrid"/"lexical" -> one top hit per query


def ask(conn, tenant: str, queries: Sequence[tuple[str, str, Callable[[str], bool] | None]], encoder) -> Hits:
    """Each ``(text, id to leave out, relatedness test)`` on both paths (hybrid only with an encoder)."""
    paths = {"lexical": None} | ({"hybrid": encoder} if encoder is not None else {})
    return {name: [top_hit(conn, tenant, text, exclude, enc, test) for text, exclude, test in queries]
            for name, enc in paths.items()}


def table(label: str, hits: list[TopHit | None], off: list[TopHit | None], grid: list[float]) -> float:
    """Print shown-related / shown-unrelated / off-topic-shown per floor; return the chosen floor."""
    def shown(h: TopHit | None, floor: float) -> bool:
        return h is not None and h.score >= floor

    say(f"{label}: {len(hits)} queries, {len(off)} off-topic queries")
    print(f"  {'floor':>6} {'top hit shown, related':>24} {'shown, other area':>18} {'off-topic shown':>16}")
    chosen = grid[-1]
    for floor in grid:
        rel = sum(1 for h in hits if shown(h, floor) and h.related) / max(len(hits), 1)
        other = sum(1 for h in hits if shown(h, floor) and not h.related) / max(len(hits), 1)
        off_rate = sum(1 for h in off if shown(h, floor)) / max(len(off), 1)
        mark = ""
        if off_rate <= OFF_TOPIC_LIMIT and chosen == grid[-1]:
            chosen, mark = floor, "  <- lowest with off-topic <= 2 %"
        print(f"  {floor:>6.3f} {rel:>24.1%} {other:>18.1%} {off_rate:>16.1%}{mark}")
    return chosen


def shares(hits: list[TopHit | None], off: list[TopHit | None], floor: float) -> tuple[float, float]:
    """(share of queries whose top hit is shown and related, share of off-topic queries with one shown)."""
    def shown(h):
        return h is not None and h.score >= floor
    return (sum(1 for h in hits if shown(h) and h.related) / max(len(hits), 1),
            sum(1 for h in off if shown(h)) / max(len(off), 1))


def off_topic_queries(limit: int, seed: int = 7) -> list[str]:
    """GNOME Help and tldr pages phrased as tickets: title, then summary and opening text."""
    from enhancement_pipeline.local.datasets import kb_documents

    docs = [d for d in kb_documents() if d.source in ("gnome", "tldr")]
    random.Random(seed).shuffle(docs)
    return [f"{d.title}\n{d.summary}\n{d.body[:600]}".strip() for d in docs[:limit]]


def microsoft_task(conn, encoder, n_queries: int, off: list[str]):
    from enhancement_pipeline.local.datasets import demo_split, ms_articles
    from enhancement_pipeline.servicedesk.payloads import html_to_text

    by_id = {a["id"]: a for a in ms_articles()}
    history, _ = demo_split()
    rows = [(t.article_id, t.subject, html_to_text(t.description_html), html_to_text(t.resolution_html or ""))
            for t in history]
    say(f"microsoft: loading {len(rows)} resolved tickets ({'hybrid' if encoder else 'lexical'})")
    say(f"microsoft: loaded in {load(conn, 'ms', rows, encoder):.0f} s")
    queries = []
    for article_id, _, description, _ in random.Random(11).sample(rows, min(n_queries, len(rows))):
        subject = (by_id[article_id].get("h1") or by_id[article_id]["title"]).strip()
        area = area_of(by_id[article_id])
        queries.append((f"{subject}\n{description}", article_id,
                        lambda t, a=area: related(area_of(by_id[t]), a)))
    return ask(conn, "ms", queries, encoder), ask(conn, "ms", [(q, "", None) for q in off], encoder)


def endava_task(conn, encoder, n_history: int, n_queries: int, off: list[str]):
    if not ENDAVA.exists():
        say(f"endava: {ENDAVA} not found, task skipped (put the Endava tickets of ../shared/data there)")
        return None
    with gzip.open(ENDAVA, "rt", encoding="utf-8", newline="") as fh:
        tickets = [(row["Document"], row["Topic_group"]) for row in csv.DictReader(fh)]
    random.Random(5).shuffle(tickets)
    history = tickets[:n_history]
    queries = tickets[n_history:n_history + n_queries]
    group = {f"e{i}": g for i, (_, g) in enumerate(history)}
    say(f"endava: loading {len(history)} tickets")
    load(conn, "endava", [(f"e{i}", "", doc, "resolved") for i, (doc, _) in enumerate(history)], encoder)
    return (ask(conn, "endava", [(doc, "", lambda t, g=g: group[t] == g) for doc, g in queries], encoder),
            ask(conn, "endava", [(q, "", None) for q in off], encoder))


def kb_task(encoder, n_queries: int, off: list[str]) -> tuple[list, list]:
    """(per Microsoft query: (relevance, relevant?) of the KB's first ten; per off-topic query: relevances
    of the first ten of a KB holding only the Microsoft articles)."""
    from enhancement_pipeline.knowledge.relevance import KB_CANDIDATES, relevances
    from enhancement_pipeline.local.datasets import kb_documents, ms_articles
    from enhancement_pipeline.local.kb_simulator import KbIndex
    from enhancement_pipeline.models import KbArticle

    docs = kb_documents()
    full, microsoft = KbIndex(docs), KbIndex([d for d in docs if d.source == "microsoft"])
    by_id = {a["id"]: a for a in ms_articles()}

    def answers(index: KbIndex, text: str) -> list[KbArticle]:
        return [KbArticle(article_id=a["id"], title=a["title"], summary=a["summary"] or "")
                for a in index.search(text, KB_CANDIDATES)]

    judged = []
    for article in random.Random(13).sample([a for a in by_id.values() if a.get("symptoms")], n_queries):
        text = f"{(article.get('h1') or article['title']).strip()}\n{article['symptoms']}"
        found = answers(full, text)
        area = area_of(article)
        judged.append([(score, a.article_id in by_id and related(area_of(by_id[a.article_id]), area))
                       for a, score in zip(found, relevances(encoder, text, found), strict=True)])
    off_judged = [relevances(encoder, q, answers(microsoft, q)) for q in off]
    return judged, off_judged


def kb_table(judged: list, off_judged: list, grid: list[float]) -> float:
    """Per floor: queries shown a relevant article among the first three kept, articles shown per query,
    share of those relevant, off-topic queries shown any; returns the lowest floor within 2 % off-topic."""
    say(f"knowledge base: {len(judged)} queries, {len(off_judged)} off-topic queries")
    print(f"  {'floor':>6} {'relevant shown':>15} {'shown/query':>12} {'precision':>10} {'off-topic shown':>16}")
    chosen = grid[-1]
    for floor in grid:
        shown = [[rel for score, rel in q if score >= floor][:3] for q in judged]
        n_shown = sum(len(q) for q in shown)
        any_relevant = sum(1 for q in shown if any(q)) / max(len(judged), 1)
        precision = sum(sum(q) for q in shown) / max(n_shown, 1)
        off_rate = sum(1 for q in off_judged if any(s >= floor for s in q)) / max(len(off_judged), 1)
        mark = ""
        if off_rate <= OFF_TOPIC_LIMIT and chosen == grid[-1]:
            chosen, mark = floor, "  <- lowest with off-topic <= 2 %"
        print(f"  {floor:>6.3f} {any_relevant:>15.1%} {n_shown / max(len(judged), 1):>12.2f} {precision:>10.1%}"
              f" {off_rate:>16.1%}{mark}")
    return chosen


def main() -> None:
    from enhancement_pipeline.history.embeddings import load_encoder
    from enhancement_pipeline.history.search import LEXICAL_FLOOR, SEMANTIC_FLOOR
    from enhancement_pipeline.storage.postgres import PostgresResource

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=600, help="related queries per task")
    parser.add_argument("--off-topic", type=int, default=600, help="off-topic queries")
    parser.add_argument("--endava", type=int, default=8000, help="Endava tickets as history (0: skip the task)")
    parser.add_argument("--kb-only", action="store_true", help="only the knowledge-base task")
    args = parser.parse_args()

    encoder = load_encoder()
    if encoder is None:
        say("no sentence encoder could be loaded: only the lexical floor is calibrated")
    if args.kb_only:
        if encoder is not None:
            kb_table(*kb_task(encoder, args.queries, off_topic_queries(args.off_topic)), SEMANTIC_GRID)
        return
    postgres, db_url = migrated_postgres("floor-calibration-")
    try:
        resource = PostgresResource(database_url=db_url)
        off = off_topic_queries(args.off_topic)
        with resource.connection() as conn:
            hits, off_hits = microsoft_task(conn, encoder, args.queries, off)
            endava = endava_task(conn, encoder, args.endava, args.queries, off) if args.endava else None
    finally:
        remove_postgres(postgres)

    tasks = {"microsoft": (hits, off_hits)} | ({"endava": endava} if endava else {})
    chosen: dict[str, float] = {}
    for path, grid, production in (("hybrid", SEMANTIC_GRID, SEMANTIC_FLOOR), ("lexical", LEXICAL_GRID, LEXICAL_FLOOR)):
        if path not in hits:
            continue
        for task, (related_hits, off_topic) in tasks.items():
            floor = table(f"{path} path ({'cosine' if path == 'hybrid' else 'term share'}), {task}",
                          related_hits[path], off_topic[path], grid)
            chosen.setdefault(path, floor)
        say(f"{path}: chosen {chosen[path]} (microsoft), production {production}")
    if encoder is not None:
        from enhancement_pipeline.knowledge.relevance import KB_FLOOR

        kb_chosen = kb_table(*kb_task(encoder, args.queries, off), SEMANTIC_GRID)
        say(f"knowledge base: chosen {kb_chosen}, production {KB_FLOOR}")
    sem = shares(hits["hybrid"], off_hits["hybrid"], SEMANTIC_FLOOR) if "hybrid" in hits else (float("nan"),) * 2
    lex = shares(hits["lexical"], off_hits["lexical"], LEXICAL_FLOOR)
    print(f"floor_calibration semantic_floor={SEMANTIC_FLOOR} related_shown={sem[0]:.3f} offtopic_shown={sem[1]:.3f}"
          f" lexical_floor={LEXICAL_FLOOR} lexical_related_shown={lex[0]:.3f} lexical_offtopic_shown={lex[1]:.3f}")


if __name__ == "__main__":
    main()
