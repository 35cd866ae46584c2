"""Pure ranking logic for similar-ticket search: term weights, candidate terms, fusion and the relevance floor.

No I/O here: ``history.search`` feeds these functions what Postgres returned. The constants were chosen on
``benchmarks/retrieval_quality.py`` (real Microsoft support articles and Endava tickets); the figures that
justify each one are next to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Where a lexeme occurs in a resolved ticket decides how much it counts: the subject names the problem,
# the description shows it, and a word that only appears in the resolution is weak evidence of the same
# problem. Postgres labels them A (subject), B (description) and D (resolution), see sql/0001. These three
# are a judgement, not a measurement: neither harness corpus has separate subjects.
FIELD_WEIGHTS: Mapping[str, float] = {"A": 1.0, "B": 0.6, "D": 0.25}

# A query keeps its most distinctive lexemes only: the rest are common words that cost time and add noise
# (on the harness 16 ranks as well as 32, and a little better on long tickets).
MAX_QUERY_TERMS = 16

# Candidate tickets are those sharing at least one of the query's rarest terms, taken rarest first until
# their document frequencies add up to this many postings (and never more candidates than this), so the
# scored set stays bounded at any corpus size while the other terms still score the candidates. Measured
# (hybrid MRR@10 / P@5 on the harness; p95 at 100k tickets): 2,000 gives 0.902 / 0.742, 1,000 0.902 / 0.740
# and 18 ms, 500 0.903 / 0.735 and 12 ms; 20,000 ranks no better than 2,000.
CANDIDATE_POSTINGS = 500

# The lexical side's weight when the two rankings' scores are mixed (convex fusion). Measured (MRR@10 /
# P@5): 0.5 gives 0.909 / 0.662, 0.3 gives 0.887 / 0.746, against BM25's 0.881 / 0.706; 0.4 beats BM25 on
# both (0.905 / 0.735). Ranking by query length did not help: Endava tickets are as short as headlines.
FUSION_ALPHA = 0.4

# Reciprocal rank fusion's damping constant, as Cormack, Clarke & Buettcher (2009) use it.
RRF_K = 60


@dataclass(frozen=True)
class QueryTerm:
    """One lexeme of the new ticket's text with its document frequency in the tenant's history."""

    lexeme: str
    ndoc: int


def idf(ndoc: int, n_docs: int) -> float:
    """BM25's inverse document frequency (always > 0): rare lexemes weigh more. ``ndoc`` <= ``n_docs``."""
    return math.log(1.0 + (n_docs - ndoc + 0.5) / (ndoc + 0.5))


def select_terms(terms: Iterable[QueryTerm], n_docs: int, max_terms: int | None = None,
                 candidate_postings: int | None = None) -> tuple[list[tuple[str, float]], list[str]]:
    """(scoring terms as ``(lexeme, idf)`` rarest first, candidate-generating lexemes).

    Lexemes no resolved ticket has (``ndoc`` 0) are dropped: they can match nothing, and would only dilute
    the share of the query a ticket matches (chatty words, names, typos). The candidate lexemes are
    a prefix of the scoring terms whose summed ``ndoc`` stays within ``candidate_postings`` (at least one).
    """
    max_terms = MAX_QUERY_TERMS if max_terms is None else max_terms
    candidate_postings = CANDIDATE_POSTINGS if candidate_postings is None else candidate_postings
    present = sorted((t for t in terms if t.ndoc > 0), key=lambda t: (t.ndoc, t.lexeme))[:max_terms]
    scoring = [(t.lexeme, idf(t.ndoc, n_docs)) for t in present]
    candidates: list[str] = []
    postings = 0
    for term in present:
        if candidates and postings + term.ndoc > candidate_postings:
            break
        candidates.append(term.lexeme)
        postings += term.ndoc
    return scoring, candidates


def tsquery_literal(lexeme: str, weights: str = "") -> str:
    """One lexeme as tsquery text, quoted so that any character is literal: ``'it''s':AB``."""
    quoted = "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"
    return f"{quoted}:{weights}" if weights else quoted


def or_query(lexemes: Sequence[str]) -> str:
    """A tsquery matching any of ``lexemes`` (each quoted); empty string when there are none."""
    return " | ".join(tsquery_literal(lexeme) for lexeme in lexemes)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Fused score per id: the sum over rankings of ``1 / (k + rank)``, ranks from 1. Higher is better.

    Uses ranks only, so it needs no score calibration; the harness found ``convex_fusion`` better here.
    """
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def min_max(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores rescaled to 0..1 within this list (all 1.0 when they are equal)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    return {k: (v - low) / (high - low) if high > low else 1.0 for k, v in scores.items()}


def convex_fusion(lexical: Mapping[str, float], semantic: Mapping[str, float], alpha: float) -> dict[str, float]:
    """``alpha * lexical + (1 - alpha) * semantic``, each min-max rescaled over its list; absent counts 0."""
    lex, sem = min_max(lexical), min_max(semantic)
    return {k: alpha * lex.get(k, 0.0) + (1 - alpha) * sem.get(k, 0.0) for k in lex.keys() | sem.keys()}

