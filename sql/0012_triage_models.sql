-- Each tenant's trained triage classifiers (triage/text_model.py): per top-level field (category, priority,
-- group), a scikit-learn pipeline fitted on the tenant's labelled resolved tickets by <tenant>/triage_calibration,
-- written in the same transaction as its curves (triage_calibration): a field with a model here has a curve
-- fitted on the blend of model and vote.
CREATE TABLE IF NOT EXISTS triage_models (
    tenant_id   text        NOT NULL,
    field       text        NOT NULL,
    model       bytea       NOT NULL,              -- numpy arrays (np.savez_compressed): TF-IDF terms and idf,
                                                   -- logistic-regression coefficients, labels
    samples     integer     NOT NULL,              -- labelled tickets it was trained on
    labels      integer     NOT NULL,              -- classes it knows
    sklearn     text        NOT NULL,              -- scikit-learn version that trained it (for the record)
    fitted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, field)
);
