"""Similar resolved tickets from ``ticket_history``: weighted term overlap, fused with sentence embeddings.

Lexical: the new ticket's text is parsed by Postgres (``english`` configuration, as the stored vectors are);
its most distinctive lexemes (by document frequency in ``ticket_lexeme_stats``) are the query. Candidates
are the tickets sharing one of its rarest terms (GIN index, bounded postings); each is scored by the summed
inverse document frequency of the query terms it holds, weighted by the field they occur in (subject above
description above resolution, ``ranking.FIELD_WEIGHTS``). ``term_match`` is that score over the most a
ticket could get (every query term in its subject): a share in 0..1.

Semantic (with the default install's encoder, once the tenant's tickets are embedded): nearest
``ticket_embeddings`` by cosine (pgvector HNSW). The two rankings' scores are mixed after min-max rescaling
(``ranking.convex_fusion``); reciprocal rank fusion is kept as ``method="hybrid_rrf"`` because the harness
compares it: it ranked worse on both tasks (benchmarks/retrieval_quality.py).

The relevance floor (``SEMANTIC_FLOOR`` on the cosine where a ticket has an embedding, else
``LEXICAL_FLOOR`` on term_match) drops candidates that share too little with the ticket; both values were
calibrated by benchmarks/floor_calibration.py on related tickets (same product area) against off-topic ones.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql

from enhancement_pipeline.history import ranking
from enhancement_pipeline.history.embeddings import (
    Encoder,
    content_md5,
    embedding_text,
    load_encoder,
    vector_literal,
)
from enhancement_pipeline.models import SimilarTicket
from enhancement_pipeline.triage.classify import LABEL_FIELDS, Neighbour

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000
# Each ranking contributes this many candidates to the fusion.
FUSION_DEPTH = 50
# The relevance floors, calibrated by benchmarks/floor_calibration.py on *related* tickets (each demo history
# ticket asked as a new one with itself left out, related = same product area; Endava tickets, related = same
# Topic_group) against off-topic ones (GNOME Help and tldr pages phrased as tickets): the lowest value that
# shows the top hit of at most 2 % of off-topic queries. A ticket with an embedding is shown from this cosine
# up (Microsoft: top hit shown for 91.6 % of queries, 55.4 % related; off-topic 0.8 %; on Endava's
# pre-processed text off-topic reaches 4.4 %, 0.55 would hold it to 0.8 %)...
SEMANTIC_FLOOR = 0.5
# ...and one without (no encoder, or not embedded yet) from this share of the query's weighted terms
# (Microsoft: shown for 64.8 %, off-topic 1.0 %; Endava 83 % and 0.4 %; the old 0.35, calibrated on the same
# article only, showed 33 %).
LEXICAL_FLOOR = 0.225

Method = Literal["auto", "lexical", "semantic", "hybrid", "hybrid_rrf"]
LABEL_COLUMNS = LABEL_FIELDS
"""The triage fields, in the order ``_DETAILS`` reads their columns (``group`` is ``support_group``)."""

_QUERY_TERMS = """
SELECT q.lexeme, coalesce(s.ndoc, 0), (SELECT n_docs FROM ticket_corpus_stats WHERE tenant_id = %(tenant)s)
  FROM unnest(to_tsvector('english', %(text)s)) AS q
  LEFT JOIN ticket_lexeme_stats AS s ON s.tenant_id = %(tenant)s AND s.lexeme = q.lexeme
"""

# The per-term weights are computed once (MATERIALIZED), then each candidate is tested for each term: absent,
# or in its subject (A), else description (B), else resolution (D, the only label left).
_LEXICAL = """
WITH q AS MATERIALIZED (
    SELECT qany::tsquery AS qany, qa::tsquery AS qa, qb::tsquery AS qb, wa, wb, wd
      FROM unnest(%(qany)s::text[], %(qa)s::text[], %(qb)s::text[], %(wa)s::float8[], %(wb)s::float8[],
                  %(wd)s::float8[]) AS t(qany, qa, qb, wa, wb, wd)
), candidates AS MATERIALIZED (
    -- Materialised so that each vector is read (and decompressed) once, not once per term test.
    SELECT h.ticket_id, h.resolved_at, h.search_vector || ''::tsvector AS v
      FROM ticket_history AS h
     WHERE h.tenant_id = %(tenant)s AND h.resolution IS NOT NULL
       AND h.search_vector @@ %(candidates)s::tsquery
       AND NOT (h.ticket_id = ANY(%(exclude)s))
     LIMIT %(candidate_limit)s  -- a query of common words only: bounded work, an arbitrary sample of them
)
SELECT c.ticket_id, s.score
  FROM candidates AS c
 CROSS JOIN LATERAL (
       -- Most terms are absent from a given ticket: one test rules them out.
       SELECT sum(CASE WHEN NOT c.v @@ q.qany THEN 0
                       WHEN c.v @@ q.qa THEN q.wa
                       WHEN c.v @@ q.qb THEN q.wb
                       ELSE q.wd END) AS score
         FROM q) AS s
 ORDER BY s.score DESC, c.resolved_at DESC NULLS LAST, c.ticket_id
 LIMIT %(limit)s
"""

_SEMANTIC = """
SELECT e.ticket_id, 1 - (e.embedding <=> %(vector)s::halfvec) AS cosine
  FROM ticket_embeddings AS e
 WHERE e.tenant_id = %(tenant)s AND NOT (e.ticket_id = ANY(%(exclude)s))
 ORDER BY e.embedding <=> %(vector)s::halfvec
 LIMIT %(limit)s
"""

_DETAILS = """
SELECT h.ticket_id, h.subject, h.resolution, h.resolved_at,
       h.category, h.subcategory, h.item, h.priority, h.support_group
  FROM ticket_history AS h
 WHERE h.tenant_id = %(tenant)s AND h.ticket_id = ANY(%(ids)s)
"""


class _Query:
    """The new ticket's lexical query: scoring terms with their idf, and the candidate tsquery."""

    def __init__(self, conn: psycopg.Connection, tenant_id: str, text: str) -> None:
        rows = conn.execute(_QUERY_TERMS, {"tenant": tenant_id, "text": text}).fetchall()
        n_docs = max((rows[0][2] or 1) if rows else 1, 1)
        terms = [ranking.QueryTerm(lexeme, min(ndoc, n_docs)) for lexeme, ndoc, *_ in rows]
        self.scoring, candidates = ranking.select_terms(terms, n_docs)
        self.candidates = ranking.or_query(candidates)
        # Normaliser for term_match: every term found in a subject. Words no ticket has cannot be searched
        # for, but still count here as the rarest: a ticket that shares only "today" with "iPhone cannot
        # sync contacts today" matches little of it (without them the floor kept 92 % of off-topic hits).
        unknown = min(sum(1 for t in terms if t.ndoc == 0), ranking.MAX_QUERY_TERMS)
        self.best = (sum(weight for _, weight in self.scoring) + unknown * ranking.idf(0, n_docs)
                     ) * ranking.FIELD_WEIGHTS["A"]

    def params(self) -> dict:
        w = ranking.FIELD_WEIGHTS
        return {
            "qa": [ranking.tsquery_literal(lex, "A") for lex, _ in self.scoring],
            "qb": [ranking.tsquery_literal(lex, "B") for lex, _ in self.scoring],
            "qany": [ranking.tsquery_literal(lex) for lex, _ in self.scoring],
            "wa": [idf * w["A"] for _, idf in self.scoring],
            "wb": [idf * w["B"] for _, idf in self.scoring],
            "wd": [idf * w["D"] for _, idf in self.scoring],
            "candidates": self.candidates,
            "candidate_limit": ranking.CANDIDATE_POSTINGS,
        }


def lexical_search(conn: psycopg.Connection, tenant_id: str, text: str, limit: int = FUSION_DEPTH,
                   exclude_ids: Collection[str] = ()) -> list[tuple[str, float]]:
    """``(ticket_id, term_match)`` best first, at most ``limit``; term_match in 0..1 (see module docstring)."""
    query = _Query(conn, tenant_id, text[:MAX_QUERY_CHARS])
    if not query.scoring:
        return []
    rows = conn.execute(_LEXICAL, {**query.params(), "tenant": tenant_id, "limit": limit,
                                   "exclude": list(exclude_ids)}).fetchall()
    return [(ticket_id, float(score) / query.best) for ticket_id, score in rows]


def has_embeddings(conn: psycopg.Connection) -> bool:
    """Whether this database has the ``ticket_embeddings`` table (pgvector was available at migration)."""
    return conn.execute("SELECT to_regclass('ticket_embeddings') IS NOT NULL").fetchone()[0]


def semantic_search(conn: psycopg.Connection, tenant_id: str, vector: np.ndarray, limit: int = FUSION_DEPTH,
                    exclude_ids: Collection[str] = ()) -> list[tuple[str, float]]:
    """``(ticket_id, cosine similarity)`` best first from the HNSW index, at most ``limit``."""
    with conn.transaction():
        # Without iterative scans a tenant filter could leave fewer than `limit` of the index's first answers.
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        conn.execute(f"SET LOCAL hnsw.ef_search = {max(limit, 40)}")
        rows = conn.execute(_SEMANTIC, {"tenant": tenant_id, "vector": vector_literal(vector), "limit": limit,
                                        "exclude": list(exclude_ids)}).fetchall()
    rows.sort(key=lambda r: -r[1])  # relaxed_order may return neighbours slightly out of order
    return [(ticket_id, float(cosine)) for ticket_id, cosine in rows]


def cosines_of(conn: psycopg.Connection, tenant_id: str, vector: np.ndarray, ticket_ids: Sequence[str]
               ) -> dict[str, float]:
    """Cosine similarity of ``vector`` to each of these tickets that has an embedding (by primary key)."""
    if not ticket_ids:
        return {}
    rows = conn.execute("SELECT ticket_id, 1 - (embedding <=> %s::halfvec) FROM ticket_embeddings"
                        " WHERE tenant_id = %s AND ticket_id = ANY(%s)",
                        (vector_literal(vector), tenant_id, list(ticket_ids))).fetchall()
    return {ticket_id: float(cosine) for ticket_id, cosine in rows}


def rank_similar(lexical: Sequence[tuple[str, float]], semantic: Sequence[tuple[str, float]] | None,
                 limit: int, floor: bool = True, fusion: Literal["convex", "rrf"] = "convex",
                 cosines: dict[str, float] | None = None) -> list[tuple[str, float]]:
    """Fuse the two rankings and apply the relevance floor: ``(ticket_id, score)`` best first.

    ``lexical`` is ``(ticket_id, term_match)``, ``semantic`` ``(ticket_id, cosine)`` (None: lexical only).
    ``cosines`` adds the cosine of candidates the semantic ranking did not return (tickets without one have
    no embedding). The score shown, and held against the floor, is the cosine where the ticket has an
    embedding (``SEMANTIC_FLOOR``), else its term_match (``LEXICAL_FLOOR``); both in 0..1.
    """
    term_match = dict(lexical)
    cosine = {**(cosines or {}), **dict(semantic or ())}
    if semantic is None:
        order = [ticket_id for ticket_id, _ in lexical]
    else:
        if fusion == "convex":
            fused = ranking.convex_fusion(term_match, dict(semantic), ranking.FUSION_ALPHA)
        else:
            fused = ranking.reciprocal_rank_fusion([[t for t, _ in lexical], [t for t, _ in semantic]])
        order = sorted(fused, key=lambda t: (-fused[t], t))
    ranked = []
    for ticket_id in order:
        if ticket_id in cosine:
            score, bar = cosine[ticket_id], SEMANTIC_FLOOR
        else:
            score, bar = term_match.get(ticket_id, 0.0), LEXICAL_FLOOR
        if floor and score < bar:
            continue
        ranked.append((ticket_id, score))
        if len(ranked) == limit:
            break
    return ranked


def find_similar(conn: psycopg.Connection, tenant_id: str, text: str, limit: int = 5, *,
                 encoder: Encoder | None = None, method: Method = "auto", floor: bool = True,
                 exclude_ids: Collection[str] = ()) -> list[SimilarTicket]:
    """Up to ``limit`` resolved tickets of ``tenant_id`` like ``text`` (subject + description), best first.

    ``method`` "auto" is hybrid when ``encoder`` is given and the database holds embeddings, else lexical;
    "lexical", "semantic", "hybrid" and "hybrid_rrf" force one (the harness compares them; all but "lexical"
    need an encoder). ``floor`` False returns the top ``limit`` however weak (the harness measures ranking with it).
    An empty text returns []. Raises ``psycopg.Error`` on database failures.
    """
    similar, _ = find_similar_and_neighbours(conn, tenant_id, text, limit, neighbours=0, encoder=encoder,
                                             method=method, floor=floor, exclude_ids=exclude_ids)
    return similar


def find_similar_and_neighbours(conn: psycopg.Connection, tenant_id: str, text: str, limit: int = 5, *,
                                neighbours: int = 10, encoder: Encoder | None = None, method: Method = "auto",
                                floor: bool = True, exclude_ids: Collection[str] = ()
                                ) -> tuple[list[SimilarTicket], list[Neighbour]]:
    """``find_similar``'s tickets and, from the same search, the first ``neighbours`` resolved tickets
    however weak (no relevance floor), each with its labels (category, subcategory, item, priority, group),
    for the triage vote (``triage.classify``). Raises ``psycopg.Error`` on database failures."""
    text = text.strip()[:MAX_QUERY_CHARS]
    if not text:
        return [], []
    if method == "auto":
        method = "hybrid" if encoder is not None and has_embeddings(conn) else "lexical"
    if method != "lexical" and encoder is None:
        raise ValueError(f"method {method!r} needs an encoder")
    wanted = max(limit, neighbours)
    depth = max(wanted, FUSION_DEPTH) if method.startswith("hybrid") else wanted * 4
    lexical = [] if method == "semantic" else lexical_search(conn, tenant_id, text, depth, exclude_ids)
    semantic = None
    if method != "lexical":
        vector = encoder.encode([text])[0]
        try:
            semantic = semantic_search(conn, tenant_id, vector, depth, exclude_ids)
        except psycopg.Error as exc:  # an old pgvector, a lost index: the lexical ranking still stands
            log.warning("semantic search failed, ranking by words only: %s: %s", type(exc).__name__, exc)
    cosines = None
    if semantic is not None:  # (the cosine lookup needs the same pgvector that just answered)
        returned = {t for t, _ in semantic}
        cosines = cosines_of(conn, tenant_id, vector, [t for t, _ in lexical if t not in returned])
    fusion = "rrf" if method == "hybrid_rrf" else "convex"
    ranked = rank_similar(lexical, semantic, limit, floor, fusion, cosines)
    voters = rank_similar(lexical, semantic, neighbours, False, fusion, cosines) if neighbours else []
    if not ranked and not voters:
        return [], []
    ids = list(dict.fromkeys(t for t, _ in [*ranked, *voters]))
    details = {r[0]: r for r in conn.execute(_DETAILS, {"tenant": tenant_id, "ids": ids})}
    similar = [SimilarTicket(ticket_id=t, subject=details[t][1], resolution=details[t][2] or "",
                             resolved_at=details[t][3], score=round(score, 3))
               for t, score in ranked if t in details]
    near = [Neighbour(ticket_id=t, similarity=round(score, 4),
                      labels=dict(zip(LABEL_COLUMNS, details[t][4:9], strict=True)))
            for t, score in voters if t in details]
    return similar, near


_ADD_LEXEMES = """
WITH added AS (
    INSERT INTO ticket_lexeme_stats AS s (tenant_id, lexeme, ndoc)
    SELECT %(tenant)s, lexeme, count(*)
      FROM ticket_history AS h, unnest(tsvector_to_array(h.search_vector)) AS lexeme
     WHERE h.tenant_id = %(tenant)s AND h.ticket_id = ANY(%(ids)s) AND h.resolution IS NOT NULL
     GROUP BY lexeme
    ON CONFLICT (tenant_id, lexeme) DO UPDATE SET ndoc = s.ndoc + excluded.ndoc
)
INSERT INTO ticket_corpus_stats AS c (tenant_id, n_docs) VALUES (%(tenant)s, %(n)s)
ON CONFLICT (tenant_id) DO UPDATE SET n_docs = c.n_docs + excluded.n_docs
"""


def add_to_lexeme_stats(conn: psycopg.Connection, tenant_id: str, ticket_ids: Sequence[str]) -> None:
    """Count these (just written) tickets' lexemes in the statistics, so their words are searchable now.

    What the resolved-ticket sensor calls between imports; a ticket written again is counted again, so the
    figures drift up slightly until the next ``refresh_lexeme_stats`` rebuilds them.
    """
    if ticket_ids:
        conn.execute(_ADD_LEXEMES, {"tenant": tenant_id, "ids": list(ticket_ids), "n": len(ticket_ids)})


def refresh_lexeme_stats(conn: psycopg.Connection, tenant_id: str) -> int:
    """Rebuild ``tenant_id``'s lexeme document frequencies from its resolved tickets; returns the ticket count.

    One pass over the tenant's search vectors (``ts_stat``), in one transaction: searches see the old
    statistics until it commits.
    """
    inner = sql.SQL(
        "SELECT search_vector FROM ticket_history WHERE tenant_id = {} AND resolution IS NOT NULL"
    ).format(sql.Literal(tenant_id)).as_string(conn)
    with conn.transaction():
        conn.execute("DELETE FROM ticket_lexeme_stats WHERE tenant_id = %s", (tenant_id,))
        # The sensor may add a lexeme between the DELETE and this INSERT: the recount wins.
        conn.execute("INSERT INTO ticket_lexeme_stats (tenant_id, lexeme, ndoc) "
                     "SELECT %s, word, ndoc FROM ts_stat(%s) "
                     "ON CONFLICT (tenant_id, lexeme) DO UPDATE SET ndoc = excluded.ndoc", (tenant_id, inner))
        n_docs = conn.execute("SELECT count(*) FROM ticket_history WHERE tenant_id = %s AND resolution IS NOT NULL",
                              (tenant_id,)).fetchone()[0]
        conn.execute("INSERT INTO ticket_corpus_stats (tenant_id, n_docs) VALUES (%s, %s) "
                     "ON CONFLICT (tenant_id) DO UPDATE SET n_docs = excluded.n_docs, refreshed_at = now()",
                     (tenant_id, n_docs))
    return n_docs


_MISSING_EMBEDDINGS = """
SELECT h.ticket_id, h.subject, h.description
  FROM ticket_history AS h
  LEFT JOIN ticket_embeddings AS e ON e.tenant_id = h.tenant_id AND e.ticket_id = h.ticket_id
 WHERE h.tenant_id = %(tenant)s AND h.resolution IS NOT NULL
   AND (h.subject <> '' OR h.description <> '')
   AND (%(start)s::timestamptz IS NULL OR (h.resolved_at >= %(start)s AND h.resolved_at < %(end)s))
   AND (%(ids)s::text[] IS NULL OR h.ticket_id = ANY(%(ids)s))
   AND (e.ticket_id IS NULL OR e.model <> %(model)s OR e.content_md5 <> md5(h.subject || E'\\n' || h.description))
 ORDER BY h.ticket_id
"""


def embed_missing(conn: psycopg.Connection, tenant_id: str, encoder: Encoder,
                  window: tuple[datetime, datetime] | None = None, ticket_ids: Sequence[str] | None = None,
                  batch_size: int = 256) -> int:
    """Embed the tenant's resolved tickets that have no embedding, or a stale one; returns how many.

    Incremental: a ticket is embedded again only when its subject or description changed, or the model did.
    ``window`` limits it to tickets resolved in ``[start, end)`` (a backfill's range), ``ticket_ids`` to those
    tickets (what the resolved-ticket sensor wrote). Commits per batch, so an interrupted run keeps what it did.
    Tickets with neither subject nor description are left to the lexical search.
    """
    start, end = window or (None, None)
    rows = conn.execute(_MISSING_EMBEDDINGS, {"tenant": tenant_id, "start": start, "end": end,
                                              "ids": None if ticket_ids is None else list(ticket_ids),
                                              "model": encoder.model_name}).fetchall()
    conn.commit()  # end the read's transaction, so that each batch below commits on its own
    for i in range(0, len(rows), batch_size):
        batch = rows[i:i + batch_size]
        vectors = encoder.encode([embedding_text(subject, description) for _, subject, description in batch])
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ticket_embeddings (tenant_id, ticket_id, model, content_md5, embedding)"
                " VALUES (%s, %s, %s, %s, %s::halfvec) ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET"
                " model = excluded.model, content_md5 = excluded.content_md5, embedding = excluded.embedding,"
                " embedded_at = now()",
                [(tenant_id, ticket_id, encoder.model_name, content_md5(subject, description), vector_literal(v))
                 for (ticket_id, subject, description), v in zip(batch, vectors, strict=True)])
    return len(rows)


def embed_if_available(conn: psycopg.Connection, tenant_id: str, logger: logging.Logger | Any, *,
                       window: tuple[datetime, datetime] | None = None,
                       ticket_ids: Sequence[str] | None = None) -> int | None:
    """``embed_missing`` when the ``embeddings`` extra and pgvector are there; None when either is not.

    What the import and the resolved-ticket sensor call. A failure of the model or of the write is logged as a
    warning and returns None, never raises: those tickets stay findable by the lexical search.
    """
    if not has_embeddings(conn):
        return None
    conn.commit()  # what the caller wrote is kept whatever happens below
    try:
        encoder = load_encoder()
        if encoder is None:
            return None
        return embed_missing(conn, tenant_id, encoder, window=window, ticket_ids=ticket_ids)
    except Exception as exc:  # noqa: BLE001 - the history is written; embeddings only add recall
        conn.rollback()
        logger.warning(f"embedding {tenant_id}'s tickets failed, they are found by words only until the next "
                    f"import: {type(exc).__name__}: {exc}")
        return None
