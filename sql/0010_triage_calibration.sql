-- Each tenant's confidence curves for triage (issue 14, item 3): per label field, the map from the similar
-- tickets' vote share to the probability that the vote is right, fitted on the tenant's own resolved tickets
-- (each asked as a new one, itself left out) by the <tenant>/triage_calibration asset. A field without a row
-- uses the curve shipped in triage/classify.py.
CREATE TABLE IF NOT EXISTS triage_calibration (
    tenant_id   text        NOT NULL,
    field       text        NOT NULL,              -- category, subcategory, item, priority, group
    knots       jsonb       NOT NULL,              -- [[share, probability], ...], both non-decreasing
    samples     integer     NOT NULL,              -- labelled tickets the curve was fitted on
    fitted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, field)
);
