-- One row per ticket that got an enhancement note: the guard that makes posting idempotent across
-- retries and re-executions (see enhancement/posting.py).
CREATE TABLE IF NOT EXISTS posted_notes (
    tenant_id   text        NOT NULL,
    ticket_id   text        NOT NULL,
    note_id     text        NOT NULL,   -- SDP note id
    run_id      text,                   -- Dagster run that posted it
    mode        text,                   -- llm / deterministic
    posted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, ticket_id)
);
