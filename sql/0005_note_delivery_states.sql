-- At most once even when SDP is slow (delivery/posting.py): a row is written *before* the POST, in state
-- 'unknown', and becomes 'posted' with SDP's note id once SDP answers. A row left 'unknown' (the POST timed
-- out, SDP answered 5xx, the worker died) makes later attempts look for the note on the ticket first, and
-- post again only after a grace period with no note there.
ALTER TABLE posted_notes ALTER COLUMN note_id DROP NOT NULL;
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'posted'
    CHECK (state IN ('posted', 'unknown'));
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS attempted_at timestamptz;   -- when the last POST was sent
ALTER TABLE posted_notes ADD COLUMN IF NOT EXISTS detail text;                 -- why the outcome is unknown
