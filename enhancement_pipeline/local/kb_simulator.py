"""A knowledge-base search API over the shipped real articles, for the demo and the tests.

``GET /api/v1/articles/search?query=<text>&limit=<n>`` answers
``{"articles": [{"id", "title", "url", "summary", "source", "score"}], "count": n}``, best first.
Ranking is SQLite FTS5's BM25 (porter-stemmed; title weighted over summary over body): a well-kept
ranking function rather than one of our own. ``GET /health`` answers ``{"ok": true, "articles": n}``.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from enhancement_pipeline.local.datasets import KbDocument, kb_documents

# Words that carry no meaning in a search (FTS5 has no stop-word list of its own).
_STOP = frozenset("""a about after again all also am an and any are as at be because been before being both but
by can cannot could did do does doing don down during each few for from further get got had has have having he
her here hers him his how i if in into is it its itself just me more most my no nor not now of off on once only
or other our out over own same she should so some such than that the their them then there these they this those
through to too under until up very was we were what when where which while who whom why will with would you your
error issue problem please thanks thank hi hello""".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")


def fts_query(text: str, max_terms: int = 40) -> str | None:
    """An FTS5 OR-query of the distinct meaningful words of ``text``; None when none remain."""
    terms: list[str] = []
    for word in _WORD.findall(text):
        w = word.lower()
        if w not in _STOP and w not in terms:
            terms.append(w)
        if len(terms) >= max_terms:
            break
    return " OR ".join(f'"{t}"' for t in terms) if terms else None


class KbIndex:
    """An in-memory FTS5 index of ``KbDocument``s; thread-safe. ``latency_s`` delays every search answer (seconds,
    without blocking other calls), as a KB across a network would."""

    latency_s: float = 0.0

    def __init__(self, documents: Iterable[KbDocument]):
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("CREATE VIRTUAL TABLE docs USING fts5(title, summary, body, article_id UNINDEXED, "
                         "url UNINDEXED, source UNINDEXED, tokenize='porter unicode61')")
        self.size = 0
        self.add(documents)

    def add(self, documents: Iterable[KbDocument]) -> None:
        """Index more articles (the tests plant articles of their own)."""
        rows = [(d.title, d.summary, d.body, d.article_id, d.url, d.source) for d in documents]
        with self._lock:
            self._db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.size += len(rows)

    def remove(self, article_ids: Iterable[str]) -> None:
        """Drop articles by id."""
        with self._lock:
            for article_id in article_ids:
                self.size -= self._db.execute("DELETE FROM docs WHERE article_id = ?", (article_id,)).rowcount

    def search(self, text: str, limit: int = 5) -> list[dict]:
        query = fts_query(text)
        if query is None:
            return []
        with self._lock:
            found = self._db.execute(
                "SELECT article_id, title, url, summary, source, -bm25(docs, 8.0, 3.0, 1.0) AS score "
                "FROM docs WHERE docs MATCH ? ORDER BY bm25(docs, 8.0, 3.0, 1.0) LIMIT ?", (query, limit),
            ).fetchall()
        return [{"id": a, "title": t, "url": u, "summary": s, "source": src, "score": round(sc, 4)}
                for a, t, u, s, src, sc in found]


def create_app(index: KbIndex | None = None) -> Starlette:
    """The ASGI app; builds the index from the shipped articles when none is given (about a second)."""
    index = index or KbIndex(kb_documents())

    async def search(request: Request) -> Response:
        query = request.query_params.get("query", "")
        try:
            limit = max(1, min(int(request.query_params.get("limit", "5")), 50))
        except ValueError:
            return JSONResponse({"error": "limit must be an integer"}, status_code=400)
        if index.latency_s:
            await asyncio.sleep(index.latency_s)
        articles = index.search(query, limit)
        return JSONResponse({"articles": articles, "count": len(articles)})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "articles": index.size})

    return Starlette(routes=[Route("/api/v1/articles/search", search), Route("/health", health)])
