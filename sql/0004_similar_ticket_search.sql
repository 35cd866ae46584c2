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

-- Sentence embeddings of each resolved ticket's subject and description, written at import when the
-- optional `embeddings` extra is installed. Needs pgvector; a server without it skips this table and the
-- search stays lexical.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
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
        RAISE NOTICE 'pgvector is not available: similar-ticket search stays lexical';
    END IF;
END
$$;
