"""Which knowledge-base answers a note shows: a relevance floor of our own, at most three. Pure functions.

A KB search API always answers with its best matches, relevant or not, and its scores are its own (BM25
of some engine, a vendor's percentage): no floor on them carries from one KB to another. So the project
judges every answer itself, on one scale for every KB: the cosine between the ticket's sentence embedding
and the article's title and summary (``history.embeddings``, the model the similar-ticket search uses).
The KB's order is kept among the articles that clear ``KB_FLOOR``; ``MAX_ARTICLES`` are shown (the spec's
top 3). ``KB_FLOOR`` was calibrated by ``benchmarks/floor_calibration.py`` (Microsoft tickets against the
demo KB, off-topic GNOME/tldr tickets against its Microsoft articles).

Without an encoder (``EMBEDDINGS_BACKEND=off``) there is no common scale: the KB's first three are shown
and the op's metadata says that no floor was applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from enhancement_pipeline.models import KbArticle

if TYPE_CHECKING:
    import numpy as np

    from enhancement_pipeline.history.embeddings import Encoder

# Articles asked of the KB: enough below its first three for the floor to have a choice.
KB_CANDIDATES = 10
MAX_ARTICLES = 3
# Calibrated by benchmarks/floor_calibration.py (KB task): see its table in the issue note.
KB_FLOOR = 0.45
MAX_QUERY_CHARS = 2000


def article_text(article: KbArticle) -> str:
    """What is embedded of an article: its title and summary (what every KB answer carries)."""
    return f"{article.title}\n{article.summary}".strip()


def relevances(encoder: Encoder, ticket_text: str, articles: Sequence[KbArticle],
               encode_articles: Callable[[list[str]], np.ndarray] | None = None) -> list[float]:
    """Cosine of ``ticket_text`` (first ``MAX_QUERY_CHARS``) to each article's text, in ``articles``' order.
    ``encode_articles``: how the articles' texts become vectors (default ``encoder.encode``; the run's ops pass
    ``knowledge.vectors.SharedArticleVectors``, which remembers them across processes)."""
    if not articles:
        return []
    ticket = encoder.encode([ticket_text[:MAX_QUERY_CHARS]])[0]
    vectors = (encode_articles or encoder.encode)([article_text(a) for a in articles])
    return [float(v) for v in vectors @ ticket]


def shown_articles(articles: Sequence[KbArticle], scores: Sequence[float] | None, floor: float = KB_FLOOR,
                   limit: int = MAX_ARTICLES) -> list[KbArticle]:
    """The articles to show, in the KB's order: those whose relevance clears ``floor`` (each with its
    ``relevance`` set, rounded to 3 places), at most ``limit``; with ``scores`` None, the KB's first
    ``limit`` unjudged."""
    if scores is None:
        return list(articles[:limit])
    kept = [a.model_copy(update={"relevance": round(s, 3)}) for a, s in zip(articles, scores, strict=True)
            if s >= floor]
    return kept[:limit]
