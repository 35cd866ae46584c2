-- Questions posted to the requester of a vague ticket (issue 15, item 1; clarification/asking.py): at most once per
-- ticket. A row is claimed ('sending') before the POST; 'sent' with SDP's note id after it; 'unknown' when SDP may
-- have stored it without saying so (never sent again: a requester must not be asked twice). A POST SDP refused
-- removes the row.
CREATE TABLE IF NOT EXISTS requester_questions (
    tenant_id   text        NOT NULL,
    ticket_id   text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('sending', 'sent', 'unknown')),
    note_id     text,
    run_id      text,
    questions   integer     NOT NULL,
    asked_at    timestamptz NOT NULL DEFAULT now(),
    detail      text,
    PRIMARY KEY (tenant_id, ticket_id)
);
