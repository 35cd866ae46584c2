-- Resolved tickets imported from ServiceDesk Plus: the corpus that similar_tickets searches.
CREATE TABLE IF NOT EXISTS ticket_history (
    tenant_id    text        NOT NULL,
    ticket_id    text        NOT NULL,          -- SDP request id (string; cloud ids are 18 digits)
    subject      text        NOT NULL,
    description  text        NOT NULL DEFAULT '',  -- plain text (SDP sends HTML)
    resolution   text,                          -- plain text of the request's resolution
    resolved_at  timestamptz,
    tags         text[]      NOT NULL DEFAULT '{}',
    source       text        NOT NULL CHECK (source IN ('bulk_import', 'sensor_resolved')),
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    -- Subject weighs most, then the symptoms, then the fix: a match in the resolution alone is weak evidence.
    search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(subject, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(description, '')), 'B') ||
        setweight(to_tsvector('english', coalesce(resolution, '')), 'D')
    ) STORED,
    PRIMARY KEY (tenant_id, ticket_id)
);

CREATE INDEX IF NOT EXISTS ticket_history_search_idx ON ticket_history USING gin (search_vector);
CREATE INDEX IF NOT EXISTS ticket_history_resolved_at_idx ON ticket_history (tenant_id, resolved_at);
