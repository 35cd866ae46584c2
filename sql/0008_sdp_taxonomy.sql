-- Each tenant's own SDP taxonomy (issue 14, item 1): categories -> subcategories -> items, priorities, urgencies,
-- impacts, levels, sites, support groups and their technicians, as the <tenant>/sdp_taxonomy asset last read
-- them through the SDP API (triage/taxonomy.py's Taxonomy as JSON). One row per tenant, replaced whole by each
-- materialization; a failed read leaves the previous one. Triage suggests only labels this document holds.
CREATE TABLE IF NOT EXISTS sdp_taxonomy (
    tenant_id   text        PRIMARY KEY,
    taxonomy    jsonb       NOT NULL,
    fetched_at  timestamptz NOT NULL,              -- when SDP was read
    stored_at   timestamptz NOT NULL DEFAULT now()
);
