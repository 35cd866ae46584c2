"""Each tenant's own text classifier per top-level field (category, priority, group), blended with the similar
tickets' vote (``classify.suggest``).

Why a trained model beside the vote: on real labels the vote alone is less accurate than a linear model trained
on the same history (``benchmarks/triage_quality.py``, Endava Topic_group: macro-F1 0.832 against 0.861), and the
two err differently: the vote knows the nearest cases, the model every word of every ticket. Their blend
(``MODEL_WEIGHT`` of the model's probability plus the rest of the vote's share) is what the benchmark measured
best among what was tried (a sweep over TF-IDF/char n-gram linear models, embedding models, kNN settings and
blends, chosen on the calibration split).

The model is scikit-learn's TF-IDF (words and word pairs, sublinear term frequency, terms in at least two
tickets, at most ``MAX_FEATURES``) and a logistic regression (C=10): the benchmark's baseline, trained per tenant
by ``<tenant>/triage_calibration`` on all its labelled resolved tickets (its calibration sample is scored by
models trained without it, in folds, so that the curve is fitted on tickets the scoring model had not seen) and
stored in ``triage_models`` (sql/0012) as pickled bytes with the scikit-learn version that wrote them (another
version's model is not used).
Pickle because that is how scikit-learn persists a fitted pipeline; the bytes are only ever read from the
project's own table, written by its own asset.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MODEL_FIELDS = ("category", "priority", "group")
"""Fields with a trained model; a subcategory and an item are voted under the chosen parent (too many classes
with too few tickets each for a per-tenant model)."""
MODEL_WEIGHT = 0.6
"""Weight of the model's probability in a blended share; the vote's share has the rest (the benchmark's choice
on the calibration split, between 0.4 and 0.8)."""
MIN_TRAINING = 200
"""Labelled tickets (with at least two labels among them) a field needs before a model is trained for it."""
MAX_FEATURES = 50_000
"""Vocabulary cap: bounds a model's size (classes x terms coefficients) in every run worker that loads it."""


@dataclass(frozen=True)
class TextModel:
    """A fitted classifier for one field: ``scores(texts)`` gives each text's probability per label.
    ``samples``: labelled tickets it was trained on; ``labels``: the labels it knows."""

    field: str
    pipeline: object
    samples: int

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.pipeline.classes_)

    @classmethod
    def fit(cls, field: str, texts: Sequence[str], labels: Sequence[str]) -> TextModel | None:
        """Train on ``texts`` with their ``labels``; None below ``MIN_TRAINING`` texts or with fewer than two
        labels. Raises ``ValueError`` for unequal inputs. Seconds to a minute or two on tens of thousands."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        if len(texts) != len(labels):
            raise ValueError("TextModel.fit needs one label per text")
        if len(texts) < MIN_TRAINING or len(set(labels)) < 2:
            return None
        pipeline = make_pipeline(
            TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=MAX_FEATURES),
            LogisticRegression(C=10.0, max_iter=2000))
        pipeline.fit(list(texts), list(labels))
        return cls(field, pipeline, len(texts))

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per text, the probability of each label the model knows (summing to 1)."""
        if not texts:
            return []
        labels = self.labels
        return [dict(zip(labels, (float(p) for p in row), strict=True))
                for row in self.pipeline.predict_proba(list(texts))]

    def to_bytes(self) -> bytes:
        return pickle.dumps(self.pipeline, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, field: str, data: bytes, samples: int) -> TextModel:
        """The model ``to_bytes`` stored. Raises ``ValueError`` when the bytes are not a fitted pipeline (written
        by another scikit-learn that cannot read them, or damaged)."""
        try:
            pipeline = pickle.loads(data)  # noqa: S301 - only the project's own triage_models rows
        except Exception as exc:
            raise ValueError(f"stored {field} model cannot be read: {type(exc).__name__}: {exc}") from exc
        if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
            raise ValueError(f"stored {field} model is not a fitted classifier")
        return cls(field, pipeline, samples)


def blend(vote_shares: Mapping[str, float], model_scores: Mapping[str, float], weight: float = MODEL_WEIGHT
          ) -> dict[str, float]:
    """The blended share of every label either side names: ``weight`` x the model's probability + (1 - weight) x
    the vote's share (each label's vote weight over all weight plus the prior, ``classify.Vote.shares``)."""
    labels = set(vote_shares) | set(model_scores)
    return {label: weight * model_scores.get(label, 0.0) + (1 - weight) * vote_shares.get(label, 0.0)
            for label in labels}
