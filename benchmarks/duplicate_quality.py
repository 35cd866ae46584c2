"""Duplicate detection quality (issue 14, item 8): precision and recall of the cosine floors in
``triage/duplicates.py`` on pairs of real tickets that describe one problem, against near misses.

Pairs are built from the shipped Microsoft support articles (CC BY 4.0, ``local/data``): every article with
symptoms gives **two phrasings of one problem**, a short ticket (its ``h1``, the headline as a user reports
the problem) and a full one (its title and symptoms). Its **near miss** is the full ticket of another article
of the same product area (the article's product and first SAP category: "Exchange / Mail Flow") that is
closest to the short ticket: the hardest wrong answer a 72-hour window of one customer's tickets could hold.
Both are embedded with the production encoder (all-MiniLM-L6-v2 on ONNX Runtime, ``history.embeddings``), as
``suggest_triage`` embeds tickets.

For each floor from 0.40 to 0.95: *precision* = true pairs at or above it / all pairs at or above it (true
pairs and near misses, one of each per article), *recall* = true pairs at or above it / true pairs. It then
names the lowest floor with precision >= 0.90 (the floor for two strangers' tickets, ``DUPLICATE_FLOOR``) and
>= 0.75 (with a shared requester or site, ``RELATED_FLOOR``), and prints the production floors' figures.

    .venv/bin/python benchmarks/duplicate_quality.py        # ~2 min on 2 cores

Last line: ``duplicates precision=<p> recall=<r> related_precision=<p2> related_recall=<r2>`` at the
production floors.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np


def say(message: str) -> None:
    print(f"[duplicates] {message}", flush=True)


def area(article: dict) -> str:
    first = (article.get("sap_category") or [""])[0] or ""
    return f"{article.get('product') or ''} / {first.split(chr(92))[0]}"


def main() -> None:
    from enhancement_pipeline.history.embeddings import load_encoder
    from enhancement_pipeline.local.datasets import ms_articles
    from enhancement_pipeline.triage.duplicates import DUPLICATE_FLOOR, RELATED_FLOOR

    encoder = load_encoder()
    if encoder is None:
        raise SystemExit("no sentence encoder installed: install the project's default dependencies")
    articles = [a for a in ms_articles() if a.get("symptoms") and a.get("h1") and a.get("title")]
    by_area: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(articles):
        by_area[area(a)].append(i)
    usable = [i for i in range(len(articles)) if len(by_area[area(articles[i])]) >= 2]
    say(f"{len(articles):,} articles with symptoms, {len(usable):,} in a product area with another article")
    t = time.perf_counter()
    short = encoder.encode([articles[i]["h1"] for i in range(len(articles))])
    full = encoder.encode([f"{a['title']}\n{a['symptoms'][:2000]}" for a in articles])
    say(f"embedded {2 * len(articles):,} texts in {time.perf_counter() - t:.0f} s")

    positives, negatives = [], []
    for i in usable:
        positives.append(float(short[i] @ full[i]))
        others = [j for j in by_area[area(articles[i])] if j != i]
        negatives.append(max(float(short[i] @ full[j]) for j in others))
    pos, neg = np.asarray(positives), np.asarray(negatives)
    say(f"{len(pos):,} true pairs (median cosine {np.median(pos):.3f}) and {len(neg):,} near misses "
        f"(median {np.median(neg):.3f})")

    def at(floor: float) -> tuple[float, float]:
        tp, fp = int((pos >= floor).sum()), int((neg >= floor).sum())
        return (tp / (tp + fp) if tp + fp else 1.0), tp / len(pos)

    print()
    print("| floor | precision | recall |")
    print("|---|---|---|")
    floors = [round(0.40 + 0.05 * k, 2) for k in range(12)]
    for floor in floors:
        p, r = at(floor)
        print(f"| {floor:.2f} | {p:.3f} | {r:.3f} |")
    fine = [round(0.40 + 0.01 * k, 2) for k in range(56)]
    for target in (0.90, 0.75):
        lowest = next((f for f in fine if at(f)[0] >= target), None)
        say(f"lowest floor with precision >= {target:.2f}: {lowest}"
            + (f" (recall {at(lowest)[1]:.3f})" if lowest is not None else ""))
    p, r = at(DUPLICATE_FLOOR)
    p2, r2 = at(RELATED_FLOOR)
    print(f"duplicates precision={p:.3f} recall={r:.3f} related_precision={p2:.3f} related_recall={r2:.3f}")


if __name__ == "__main__":
    main()
