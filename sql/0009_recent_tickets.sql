-- The tenant's recently opened tickets, for duplicate and incident-storm detection (issue 14, item 5): each
-- enhancement run compares its ticket with the tenant's tickets of the last 72 hours that are not resolved
-- (not in ticket_history), then adds its own. Written by the runs themselves, so no SDP call is spent on it;
-- rows older than a week are deleted as new ones arrive. Needs pgvector, as ticket_embeddings does; without
-- it the table is not created and runs say in their metadata that duplicates were not looked for.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        CREATE TABLE IF NOT EXISTS recent_tickets (
            tenant_id     text        NOT NULL,
            ticket_id     text        NOT NULL,
            display_id    text,
            created_at    timestamptz NOT NULL,          -- SDP's created_time
            requester_id  text,
            requester     text,                          -- the name, for the note's "by the same requester"
            site          text,
            subject       text        NOT NULL DEFAULT '',
            model         text,                          -- the encoder that wrote embedding
            embedding     halfvec(384),                  -- subject + description, unit length; NULL: no encoder
            seen_at       timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, ticket_id)
        );
        CREATE INDEX IF NOT EXISTS recent_tickets_created_idx ON recent_tickets (tenant_id, created_at);
    ELSE
        RAISE NOTICE 'pgvector is not installed: duplicate and storm detection is off';
    END IF;
END
$$;
