-- Similar-ticket search (history/search.py): lexeme statistics for term weighting, and optional sentence
-- embeddings for hybrid retrieval.

-- How many resolved tickets of a tenant contain each lexeme: the inverse document frequency that weights a
-- query's terms. Rebuilt from ticket_history by history.search.refresh_lexeme_stats after each import.
CREATE TABLE IF NOT EXISTS ticket_lexeme_stats (
    tenant_id text    NOT NULL,
    lexeme    text    NOT NULL,
    ndoc      integer NOT NULL,
    PRIMARY KEY (tenant_id, lexeme)
);

CREATE TABLE IF NOT EXISTS ticket_corpus_stats (
    tenant_id    text        PRIMARY KEY,
    n_docs       integer     NOT NULL,   -- resolved tickets counted by the last refresh
    refreshed_at timestamptz NOT NULL DEFAULT now()
);

-- Seed both from the history already there, so an upgraded database searches before its next import.
INSERT INTO ticket_lexeme_stats (tenant_id, lexeme, ndoc)
SELECT tenant_id, lexeme, count(*)
  FROM ticket_history, unnest(tsvector_to_array(search_vector)) AS lexeme
 WHERE resolution IS NOT NULL
 GROUP BY tenant_id, lexeme
ON CONFLICT DO NOTHING;
INSERT INTO ticket_corpus_stats (tenant_id, n_docs)
SELECT tenant_id, count(*) FROM ticket_history WHERE resolution IS NOT NULL GROUP BY tenant_id
ON CONFLICT DO NOTHING;

-- Sentence embeddings of each resolved ticket's subject and description, written at import when the
-- optional `embeddings` extra is installed. Needs pgvector; a server without it skips this table and the
-- search stays lexical.
-- halfvec needs pgvector 0.7 and iterative index scans 0.8; an older one, or a role that may not create the
-- extension, leaves the search lexical instead of failing the migration.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector'
                AND string_to_array(default_version, '.')::int[] >= '{0,8,0}') THEN
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE IF NOT EXISTS ticket_embeddings (
            tenant_id    text        NOT NULL,
            ticket_id    text        NOT NULL,
            model        text        NOT NULL,       -- which encoder wrote it; another model re-embeds
            content_md5  text        NOT NULL,       -- md5(subject || E'\n' || description) when embedded
            embedding    halfvec(384) NOT NULL,      -- unit length (all-MiniLM-L6-v2: 384 dimensions)
            embedded_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, ticket_id),
            FOREIGN KEY (tenant_id, ticket_id) REFERENCES ticket_history ON DELETE CASCADE
        );
        CREATE INDEX IF NOT EXISTS ticket_embeddings_hnsw
            ON ticket_embeddings USING hnsw (embedding halfvec_cosine_ops);
    ELSE
        RAISE NOTICE 'pgvector 0.8 or later is not available: similar-ticket search stays lexical';
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pgvector could not be set up (%): similar-ticket search stays lexical', SQLERRM;
END
$$;
