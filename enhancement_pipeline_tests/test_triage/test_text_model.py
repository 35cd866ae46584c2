"""Each tenant's trained classifier (``triage.text_model``), blended with the similar tickets' vote: trained on real
tickets, cross-fitted for calibration, stored and read back by the runs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import dagster as dg
import pytest

from enhancement_pipeline.history.embeddings import embedding_text
from enhancement_pipeline.local.datasets import demo_split
from enhancement_pipeline.models import SimilarTicketsContext, Ticket
from enhancement_pipeline.servicedesk.payloads import html_to_text
from enhancement_pipeline.triage import classify
from enhancement_pipeline.triage.assets import train_models
from enhancement_pipeline.triage.calibration import FieldFit
from enhancement_pipeline.triage.calibration_store import load_models, save_calibration, save_models
from enhancement_pipeline.triage.classify import Neighbour
from enhancement_pipeline.triage.text_model import MIN_TRAINING, TextModel, blend


@pytest.fixture(scope="module")
def labelled():
    """The demo history's tickets with a category (real Microsoft support articles, their product area as the
    category), split by a hash of the id: about 80 % to train, 20 % to test."""
    history, _ = demo_split()
    rows = [(embedding_text(t.subject, html_to_text(t.description_html)), t.category, t.article_id)
            for t in history if t.category]
    test = [r for r in rows if int(hashlib.sha256(r[2].encode()).hexdigest()[:4], 16) % 5 == 0]
    train = [r for r in rows if r not in test]
    return train, test


@pytest.fixture(scope="module")
def model(labelled):
    train, _ = labelled
    return TextModel.fit("category", [t for t, _, _ in train], [y for _, y, _ in train])


def test_a_model_trained_on_real_tickets_beats_the_majority_label(labelled, model):
    _, test = labelled
    predicted = [max(s, key=s.get) for s in model.scores([t for t, _, _ in test])]
    accuracy = sum(p == y for p, (_, y, _) in zip(predicted, test, strict=True)) / len(test)
    majority = max(sum(y == label for _, y, _ in test) for label in model.labels) / len(test)
    assert accuracy > majority + 0.2, (accuracy, majority)
    assert all(abs(sum(s.values()) - 1) < 1e-6 for s in model.scores([test[0][0], "printer jam"]))


def test_numpy_scores_what_scikit_learns_pipeline_predicts(labelled, model):
    """The runs score without scikit-learn: the same tokens, weights and softmax as its predict_proba."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from enhancement_pipeline.triage.text_model import MAX_FEATURES

    train, test = labelled
    reference = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2,
                                              max_features=MAX_FEATURES),
                              LogisticRegression(C=10.0, max_iter=2000))
    reference.fit([t for t, _, _ in train], [y for _, y, _ in train])
    texts = [t for t, _, _ in test[:50]] + ["Outlook keeps asking for my password", "", "zzz qqq"]
    ours = model.scores(texts)
    for row, theirs in zip(ours, reference.predict_proba(texts), strict=True):
        assert [row[label] for label in reference.classes_] == pytest.approx(list(theirs), abs=1e-4)


def test_two_labels_score_as_scikit_learns_binary_model():
    texts = [f"printer {i} paper jam" for i in range(120)] + [f"vpn {i} tunnel drops" for i in range(120)]
    labels = ["Hardware"] * 120 + ["Network"] * 120
    model = TextModel.fit("category", texts, labels)
    assert model.coef.shape[0] == 1
    hardware = model.scores(["the printer has a paper jam"])[0]
    assert hardware["Hardware"] > 0.9 and abs(sum(hardware.values()) - 1) < 1e-9


def test_a_model_survives_the_round_trip_through_bytes_without_pickle(model):
    data = model.to_bytes()
    again = TextModel.from_bytes("category", data, model.samples)
    text = ["Outlook keeps asking for my password"]
    assert again.scores(text) == model.scores(text) and again.labels == model.labels
    with pytest.raises(ValueError, match="cannot be read"):
        TextModel.from_bytes("category", b"not a model", 1)


def test_too_few_tickets_or_one_label_train_nothing():
    assert TextModel.fit("category", ["a b"] * (MIN_TRAINING - 1), ["X", "Y"] * ((MIN_TRAINING - 1) // 2) + ["X"]) \
        is None
    assert TextModel.fit("priority", ["a b"] * MIN_TRAINING, ["High"] * MIN_TRAINING) is None


def test_the_blend_lets_a_sure_model_outvote_a_weak_vote_within_the_taxonomy():
    weak = [Neighbour("1", 0.70, {"category": "Network"}), Neighbour("2", 0.65, {"category": "Email"})]
    sure = {"category": {"Email": 0.9, "Network": 0.05, "Plumbing": 0.05}}
    alone = classify.suggest(weak, min_confidence=0.0)["category"]
    both = classify.suggest(weak, min_confidence=0.0, model_scores=sure)["category"]
    assert (alone.label, both.label) == ("Network", "Email")
    assert both.reason == "the classifier and 1 of 2 similar resolved tickets"
    # The taxonomy's test applies to the model's labels as to the vote's.
    only_known = classify.suggest(weak, min_confidence=0.0, model_scores={"category": {"Plumbing": 1.0}},
                                  allowed=lambda f, label, parents: label != "Plumbing")["category"]
    assert only_known.label == "Network"
    assert blend({"A": 0.5}, {"A": 0.2, "B": 0.8}, weight=0.5) == {"A": 0.35, "B": 0.4}


def test_calibration_tickets_are_scored_by_models_that_never_saw_them(labelled):
    train, _ = labelled
    rows = [(str(i), text, "", label, None, None) for i, (text, label, _) in enumerate(train)]
    # A label only one calibration ticket carries: a model trained without that ticket cannot know it.
    rows[0] = ("0", rows[0][1], "", "Only here", None, None)
    sample = [(r[0], r[1], r[2], r[3], None, None, None, None) for r in rows[:200]]
    models, scores = train_models(rows, sample)
    assert set(models) == {"category"} and "Only here" in models["category"].labels
    assert len(scores["category"]) == 200 and "Only here" not in scores["category"][0]
    assert all(abs(sum(s.values()) - 1) < 1e-6 for s in scores["category"])


def _ticket(text: str) -> Ticket:
    return Ticket(tenant_id="acme", ticket_id="7", subject=text)


def _suggest(db, resources):
    from enhancement_pipeline.triage import ops

    similar = SimilarTicketsContext(neighbours=[Neighbour("1", 0.7, {"category": "Network"}),
                                                Neighbour("2", 0.69, {"category": "Email"})])
    context = dg.build_op_context()
    out = ops.suggest_triage(context, ticket=_ticket("Outlook asks for my password again and again"),
                             similar=similar, postgres=resources["postgres"], notes=resources["notes"])
    return out, context.get_output_metadata("result")


def test_the_run_reads_the_tenants_model_and_its_curve_together(db, resources, model):
    identity = classify.Calibration(((0.0, 0.0), (1.0, 0.99)))
    with db.transaction():
        save_calibration(db, "acme", [FieldFit("category", identity, 500, 0.8, 0.02)])
        save_models(db, "acme", [model])
    loaded, errors = load_models(db, "acme")
    assert errors == {} and loaded["category"].labels == model.labels
    triage, meta = _suggest(db, resources)
    assert meta["classifiers"] == f"category ({model.samples:,} tickets)"
    assert meta["calibration"].startswith("category (tenant's, 500 tickets)")
    category = triage.get("category")
    assert "the classifier and" in category.reason  # the blend decided, whichever label won

    # A model that cannot be read takes its curve along: the vote alone, on the shipped curve, says so.
    db.execute("UPDATE triage_models SET model = %s, fitted_at = %s WHERE tenant_id = 'acme'",
               (b"damaged", datetime.now(UTC)))
    triage, meta = _suggest(db, resources)
    assert meta["classifiers"] == "none" and "cannot be read" in meta["classifier_errors"]
    assert meta["calibration"].startswith("shipped curve")
    assert "classifier" not in triage.get("category").reason


def _inconsistent() -> TextModel:
    """A stored model whose arrays do not hold together: coefficients for one term of its two."""
    import numpy as np

    return TextModel("category", {"outlook": 0, "password": 1}, np.ones(2, dtype=np.float32),
                     np.ones((3, 1), dtype=np.float32), np.zeros(3, dtype=np.float32), ("Email", "Network", "X"), 300)


def test_a_model_that_does_not_hold_together_costs_its_field_only(db, resources):
    identity = classify.Calibration(((0.0, 0.0), (1.0, 0.99)))
    with db.transaction():
        save_calibration(db, "acme", [FieldFit("category", identity, 500, 0.8, 0.02)])
        save_models(db, "acme", [_inconsistent()])
    triage, meta = _suggest(db, resources)
    assert triage.error is None and "category: stored category model is inconsistent" in meta["classifier_errors"]
    assert meta["classifiers"] == "none" and meta["calibration"].startswith("shipped curve")
    assert triage.get("category").label in (None, "Network", "Email")  # the vote alone, on the shipped curve
