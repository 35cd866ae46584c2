"""Fitting a tenant's triage confidence curves on its own history (the ``<tenant>/triage_calibration`` asset).

Each sampled resolved ticket with labels is asked as if it were new: the production search finds its
neighbours (itself left out), they vote (``classify.vote``), blended with the tenant's classifier where it has
one (scored by a classifier trained without the ticket), and the winner's share is paired with whether the
winner is the ticket's own label. Per field, an isotonic regression (scikit-learn) of "right" on the share is
the curve, read off every 0.05 of share so it stays a short list of knots; its quality is reported as the
expected calibration error on the half of the sample it was not fitted on (the stored curve is then fitted on
all of it). A field with fewer than ``MIN_SAMPLES`` labelled tickets keeps the shipped curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from enhancement_pipeline.triage.classify import Calibration

MIN_SAMPLES = 100
"""Labelled tickets a field needs before its own curve replaces the shipped one."""
GRID = tuple(round(0.05 * k, 2) for k in range(21))
MAX_PROBABILITY = 0.99
"""No vote is certain: a curve never says more."""


@dataclass(frozen=True)
class FieldFit:
    """One field's fitted curve; ``samples`` labelled tickets, ``accuracy`` of the vote's winner among them,
    ``heldout_ece`` the curve's expected calibration error on the half it was not fitted on (None: too few)."""

    field: str
    curve: Calibration
    samples: int
    accuracy: float
    heldout_ece: float | None


def fit_curve(shares: Sequence[float], right: Sequence[bool]) -> Calibration:
    """The isotonic fit of ``right`` (the vote's winner was the label) on ``shares`` (0..1), as knots every 0.05
    of share, capped at ``MAX_PROBABILITY``. Raises ``ValueError`` for empty or unequal inputs."""
    from sklearn.isotonic import IsotonicRegression

    if not shares or len(shares) != len(right):
        raise ValueError("fit_curve needs as many outcomes as shares, at least one")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit([float(s) for s in shares], [1.0 if r else 0.0 for r in right])
    knots, top = [], 0.0
    for x, y in zip(GRID, iso.predict(list(GRID)), strict=True):
        top = max(top, min(round(float(y), 3), MAX_PROBABILITY))  # rounding must not break monotonicity
        knots.append((x, top))
    return Calibration(tuple(knots))


def expected_calibration_error(confidences: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Sum over ``bins`` equal-width confidence bins of |accuracy - mean confidence|, weighted by each bin's
    share of the predictions (0: perfectly calibrated). Raises ``ValueError`` for unequal inputs."""
    if len(confidences) != len(right):
        raise ValueError("expected_calibration_error needs as many outcomes as confidences")
    groups: dict[int, list[tuple[float, bool]]] = {}
    for c, r in zip(confidences, right, strict=True):
        groups.setdefault(min(int(c * bins), bins - 1), []).append((c, r))
    total = len(confidences) or 1
    return sum(len(g) / total * abs(sum(r for _, r in g) / len(g) - sum(c for c, _ in g) / len(g))
               for g in groups.values())


def fit_field(field: str, shares: Sequence[float], right: Sequence[bool]) -> FieldFit | None:
    """The field's curve from its ``(share, right)`` pairs, or None below ``MIN_SAMPLES``. The held-out error
    is measured fitting on the even-numbered pairs and scoring the odd ones."""
    if len(shares) < MIN_SAMPLES:
        return None
    half = fit_curve(shares[0::2], right[0::2])
    heldout = expected_calibration_error([half(s) for s in shares[1::2]], right[1::2])
    return FieldFit(field, fit_curve(shares, right), len(shares), sum(right) / len(right), round(heldout, 4))


def outcomes(neighbours: Sequence, labels: dict[str, str | None],
             model_scores: dict[str, dict[str, float]] | None = None) -> dict[str, tuple[float, bool]]:
    """For one resolved ticket asked as new: per field it has a label for, the share of the winner and whether
    it is that label, as ``classify.suggest`` decides (a subcategory among the neighbours of the category chosen,
    an item under the chosen subcategory; a child whose parent chose nothing is left out; with ``model_scores``,
    the blend of the tenant's classifier and the vote): ``suggest`` itself, with every winner taken (identity
    curve, no threshold)."""
    from enhancement_pipeline.triage.classify import IDENTITY, LABEL_FIELDS, suggest

    every = suggest(neighbours, calibration={f: IDENTITY for f in LABEL_FIELDS}, min_confidence=0.0,
                    model_scores=model_scores)
    # The identity curve makes the confidence the share (rounded to 3 places, as the runs see it).
    return {f: (s.confidence, s.label == labels[f]) for f, s in every.items()
            if s.label is not None and labels.get(f)}
