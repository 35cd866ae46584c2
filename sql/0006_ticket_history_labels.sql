-- The labels a dispatcher sets (issue 14): what triage learns from. Filled by the history import and the
-- resolved-ticket sync from the request as SDP holds it; rows imported before this migration get them when
-- their month is re-imported (a row whose labels differ is updated). Names as SDP shows them, ids where SDP
-- identifies a person (the requester: names are not unique).
ALTER TABLE ticket_history ADD COLUMN IF NOT EXISTS category text;
ALTER TABLE ticket_history ADD COLUMN IF NOT EXISTS subcategory text;
ALTER TABLE ticket_history ADD COLUMN IF NOT EXISTS item text;
ALTER TABLE ticket_history ADD COLUMN IF NOT EXISTS priority text;
ALTER TABLE ticket_history ADD COLUMN IF NOT EXISTS support_group text;
ALTER TABLE ticket_history ADD COLUMN IF NOT EXISTS technician text;
ALTER TABLE ticket_history ADD COLUMN IF NOT EXISTS site text;
ALTER TABLE ticket_history ADD COLUMN IF NOT EXISTS requester_id text;
CREATE INDEX IF NOT EXISTS ticket_history_requester_idx ON ticket_history (tenant_id, requester_id);
