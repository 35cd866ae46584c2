"""Each tenant's own text classifier per top-level field (category, priority, group), blended with the similar
tickets' vote (``classify.suggest``).

Why a trained model beside the vote: on real labels the vote alone is less accurate than a linear model trained
on the same history (``benchmarks/triage_quality.py``, Endava Topic_group: macro-F1 0.832 against 0.861), and the
two err differently: the vote knows the nearest cases, the model every word of every ticket. Their blend
(``MODEL_WEIGHT`` of the model's probability plus the rest of the vote's share) is the cheapest of the blends
that beat the baseline in a search over TF-IDF and character n-gram linear models, embedding classifiers, kNN
settings and blends (chosen on the calibration split; the best, a three-way blend with a word+character SVM, was
about a point better and twice the training).

The model is scikit-learn's TF-IDF (words and word pairs, sublinear term frequency, terms in at least two
tickets, at most ``MAX_FEATURES``) and a logistic regression (C=10): the benchmark's baseline, trained per tenant
by ``<tenant>/triage_calibration`` on all its labelled resolved tickets (its calibration sample is scored by
models trained without it, in folds, so that the curve is fitted on tickets the scoring model had not seen) and
stored in ``triage_models`` (sql/0012) as numpy arrays (``TextModel`` says why runs score it without
scikit-learn).
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

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
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
"""scikit-learn's default ``token_pattern``, which the model is trained with."""


@dataclass(frozen=True)
class TextModel:
    """A fitted classifier for one field, as arrays: ``vocabulary`` (term -> column), ``idf`` (per column),
    ``coef`` (labels x columns; one row for two labels) and ``intercept``, the ``labels`` it knows, and the
    ``samples`` it was trained on. ``scores(texts)`` gives each text's probability per label.

    Trained with scikit-learn; scored with numpy alone (``scores`` computes what scikit-learn's ``predict_proba``
    would: lower-cased tokens of two or more word characters, words and word pairs, 1 + ln(count) x idf, L2
    normalised, then the linear model's softmax), because importing scikit-learn costs every run worker about
    120 MB (measured) for what is one sparse dot product per ticket. Stored as numpy arrays (``to_bytes``), not
    pickles: nothing executable is read back, and any version of either library reads them.
    """

    field: str
    vocabulary: Mapping[str, int]
    idf: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    labels: tuple[str, ...]
    samples: int

    @classmethod
    def fit(cls, field: str, texts: Sequence[str], labels: Sequence[str]) -> TextModel | None:
        """Train on ``texts`` with their ``labels``; None below ``MIN_TRAINING`` texts or with fewer than two
        labels. Raises ``ValueError`` for unequal inputs. Seconds to a minute or two on tens of thousands."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if len(texts) != len(labels):
            raise ValueError("TextModel.fit needs one label per text")
        if len(texts) < MIN_TRAINING or len(set(labels)) < 2:
            return None
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=MAX_FEATURES,
                                     token_pattern=_TOKEN.pattern)
        x = vectorizer.fit_transform(list(texts))
        model = LogisticRegression(C=10.0, max_iter=2000).fit(x, list(labels))
        return cls(field, {str(t): int(i) for t, i in vectorizer.vocabulary_.items()},
                   vectorizer.idf_.astype(np.float32), model.coef_.astype(np.float32),
                   model.intercept_.astype(np.float32), tuple(str(c) for c in model.classes_), len(texts))

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per text, the probability of each label the model knows (summing to 1)."""
        return [dict(zip(self.labels, (float(p) for p in self._proba(t)), strict=True)) for t in texts]

    def _proba(self, text: str) -> np.ndarray:
        tokens = _TOKEN.findall(text.lower())
        counts = Counter(tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)])
        columns = [(self.vocabulary[t], n) for t, n in counts.items() if t in self.vocabulary]
        decision = self.intercept.astype(np.float64)
        if columns:
            idx = np.fromiter((c for c, _ in columns), dtype=np.int64)
            weights = np.fromiter(((1.0 + math.log(n)) for _, n in columns), dtype=np.float64) * self.idf[idx]
            weights /= np.linalg.norm(weights)
            decision = decision + self.coef[:, idx].astype(np.float64) @ weights
        if len(self.labels) == 2:  # one row: the second label's log-odds
            p = 1.0 / (1.0 + math.exp(-float(decision[0])))
            return np.array([1.0 - p, p])
        decision -= decision.max()
        e = np.exp(decision)
        return e / e.sum()

    def to_bytes(self) -> bytes:
        """The model as compressed numpy arrays (``np.savez_compressed``)."""
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, terms=np.array(terms, dtype=str), idf=self.idf, coef=self.coef,
                            intercept=self.intercept, labels=np.array(self.labels, dtype=str))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, field: str, data: bytes, samples: int) -> TextModel:
        """The model ``to_bytes`` stored. Raises ``ValueError`` when the bytes are not one (damaged, or another
        format)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                terms, idf, coef = arrays["terms"], arrays["idf"], arrays["coef"]
                intercept, labels = arrays["intercept"], arrays["labels"]
        except Exception as exc:
            raise ValueError(f"stored {field} model cannot be read: {type(exc).__name__}: {exc}") from exc
        rows = 1 if len(labels) == 2 else len(labels)
        if coef.shape != (rows, len(terms)) or idf.shape != (len(terms),) or intercept.shape != (rows,):
            raise ValueError(f"stored {field} model is inconsistent: {len(terms)} terms, coef {coef.shape}")
        return cls(field, {str(t): i for i, t in enumerate(terms)}, idf, coef, intercept,
                   tuple(str(x) for x in labels), samples)


def blend(vote_shares: Mapping[str, float], model_scores: Mapping[str, float], weight: float = MODEL_WEIGHT
          ) -> dict[str, float]:
    """The blended share of every label either side names: ``weight`` x the model's probability + (1 - weight) x
    the vote's share (each label's vote weight over all weight plus the prior, ``classify.Vote.shares``)."""
    labels = set(vote_shares) | set(model_scores)
    return {label: weight * model_scores.get(label, 0.0) + (1 - weight) * vote_shares.get(label, 0.0)
            for label in labels}
