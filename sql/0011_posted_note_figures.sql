-- What each posted note cost and how long the ticket waited for it (issue 15, item 5): written with the ledger
-- row by delivery/posting.py, read by the <tenant>/pipeline_metrics asset (metrics/). NULL for notes posted
-- before this migration.
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS ticket_created_at timestamptz;   -- SDP's created_time
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS model text;                      -- NULL: deterministic
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS fallback_reason text;            -- why deterministic
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS prompt_tokens integer;
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS completion_tokens integer;
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS cost_usd double precision;        -- estimated, US dollars
CREATE INDEX IF NOT EXISTS posted_notes_tenant_posted_at ON posted_notes (tenant_id, posted_at);
