"""Triage suggestions from the labels of the most similar resolved tickets: a similarity-weighted vote.

The new ticket's nearest resolved tickets (``history.search.find_neighbours``, the same hybrid search the
note's "similar tickets" come from, without its relevance floor) each carry the labels a technician gave them
in SDP (category, subcategory, item, priority, support group: ``ticket_history``, sql/0006). Each neighbour
votes for its label with weight ``exp((similarity - 1) / TEMPERATURE)``: a neighbour at cosine 0.9 counts
about 1.6 times one at 0.8 (``TEMPERATURE`` = 0.2). A field's vote share is the winner's weight over the
total, plus ``PRIOR_WEIGHT`` standing for "none of these": a vote of two weak neighbours is not a sure thing
because they agree.

The share is not a probability. ``Calibration`` maps it to one: a monotone piecewise-linear curve (isotonic
regression of "the winner was right" on the share). Each tenant's own curves are fitted on its history by
the ``<tenant>/triage_calibration`` asset (``triage.calibration``); a field without one uses
``DEFAULT_CALIBRATION``, fitted by ``benchmarks/triage_quality.py`` on held-out Endava tickets (a curve
fitted on one label set is only roughly right for another: the benchmark shows by how much). Below the
tenant's ``min_confidence`` a field gets no suggestion, and the note says so.

Only labels the tenant's taxonomy knows are suggested (``allowed``): a category deleted since the neighbour
was resolved loses its votes, never reaches the note. Item and subcategory follow their parent: a
subcategory is voted only among neighbours whose category is the suggested one.

Why a vote, and a trained model beside it: the vote needs no training step, follows every change of the history
at once (a newly resolved ticket votes in the next run), explains itself in the technician's terms ("it
resolved 4 of the 5 most similar tickets"), and costs nothing beyond the search the note already does; but alone
it is less accurate than a model trained on the same tickets. Where the tenant has one (``triage.text_model``,
trained daily by ``<tenant>/triage_calibration``), category, priority and group blend the two (``with_model``):
``benchmarks/triage_quality.py`` measures the blend, the vote alone and a TF-IDF + logistic regression baseline
in one run.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

LabelField = Literal["category", "subcategory", "item", "priority", "group"]
LABEL_FIELDS: tuple[LabelField, ...] = ("category", "subcategory", "item", "priority", "group")
PARENT: dict[str, str] = {"subcategory": "category", "item": "subcategory"}

NEIGHBOURS = 10
"""How many of the most similar resolved tickets vote (benchmarks/triage_quality.py's sweep on Topic_group's
calibration split, temperature 0.2: macro-F1 0.838 with 10, 0.830 with 5, 0.831 with 20)."""
TEMPERATURE = 0.2
"""Similarity difference that multiplies a vote's weight by e. The same sweep, 10 neighbours: 0.838 at 0.2, 0.835
at 0.1, 0.828 at 0.05, 0.820 at 1.0 on Topic_group; on the 5,431-ticket subset 0.2 was best for subcategory and
within about a point of the best for category, urgency and impact."""
PRIOR_WEIGHT = 0.25
"""Weight of "none of these" in every field's share: about one neighbour at similarity 0.72."""
MIN_CONFIDENCE = 0.6
"""Default of a tenant's ``triage.min_confidence``: calibrated probability below which no suggestion is made."""


@dataclass(frozen=True)
class Neighbour:
    """A resolved ticket near the new one: its id, its similarity in 0..1 (the search's score: cosine where it
    has an embedding, else the share of the query's weighted terms it holds), and its labels by field (None
    or absent: the technician left the field empty)."""

    ticket_id: str
    similarity: float
    labels: Mapping[str, str | None]


@dataclass(frozen=True)
class Calibration:
    """A monotone piecewise-linear map from vote share (0..1) to the probability that the winner is right:
    ``knots`` are ``(share, probability)`` with both coordinates non-decreasing; shares outside the knots
    take the nearest end's probability."""

    knots: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.knots:
            raise ValueError("a calibration needs at least one knot")
        xs, ys = zip(*self.knots, strict=True)
        if list(xs) != sorted(xs) or list(ys) != sorted(ys):
            raise ValueError("calibration knots must be non-decreasing in share and probability")

    def __call__(self, share: float) -> float:
        xs = [x for x, _ in self.knots]
        i = bisect.bisect_right(xs, share)
        if i == 0:
            return self.knots[0][1]
        if i == len(self.knots):
            return self.knots[-1][1]
        (x0, y0), (x1, y1) = self.knots[i - 1], self.knots[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (share - x0) / (x1 - x0)


IDENTITY = Calibration(((0.0, 0.0), (1.0, 1.0)))
DEFAULT_CALIBRATION = Calibration((
    (0.0, 0.0), (0.2, 0.0), (0.25, 0.28), (0.3, 0.333), (0.35, 0.386), (0.4, 0.467), (0.45, 0.609), (0.5, 0.699),
    (0.55, 0.75), (0.6, 0.825), (0.65, 0.87), (0.7, 0.888), (0.75, 0.909), (0.8, 0.938), (0.85, 0.968),
    (0.9, 0.99), (1.0, 0.99)))
"""Isotonic fit of "the winner was right" on the vote share, on 2,000 held-out Endava tickets (Topic_group, 8
classes; ``benchmarks/triage_quality.py``, ``triage.calibration.fit_curve``), read off every 0.05 and capped
at 0.99: no vote is certain. What a tenant's field uses until ``<tenant>/triage_calibration`` fits its own."""


@dataclass(frozen=True)
class Vote:
    """The outcome of one field's vote: ``label`` the winner (None: no neighbour had a label the taxonomy
    allows), ``share`` its weight over all weight plus the prior (0..1), ``support`` how many of ``voters``
    (neighbours with an allowed label) chose it, and ``among`` how many neighbours were asked. ``shares`` and
    ``counts``: every voted label's share and number of voters (for blending with a trained model)."""

    label: str | None
    share: float
    support: int
    voters: int
    among: int
    shares: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Suggestion:
    """One field's triage suggestion. ``label`` None: no confident suggestion (``confidence`` below the
    threshold, or nothing to vote with); ``reason`` says why in a few words, for the note and the run's
    metadata; ``source`` is "history" (the vote), "rules" (the tenant's routing rules) or "none"."""

    field: str
    label: str | None
    confidence: float
    reason: str
    source: Literal["history", "rules", "none"] = "history"
    vote: Vote | None = None


def weight(similarity: float) -> float:
    """A neighbour's vote weight: ``exp((similarity - 1) / TEMPERATURE)``, 1.0 at similarity 1."""
    return math.exp((min(max(similarity, 0.0), 1.0) - 1.0) / TEMPERATURE)


def vote(neighbours: Sequence[Neighbour], field: str, *, allowed: Callable[[str], bool] | None = None,
         within: Mapping[str, str] | None = None) -> Vote:
    """The similarity-weighted vote of ``neighbours`` (best first; the first ``NEIGHBOURS`` vote) on
    ``field``. ``allowed(label)`` False drops a label (the taxonomy does not know it); ``within`` keeps only
    neighbours whose labels match it (``{"category": "Hardware"}`` for a subcategory vote). Ties go to the
    label of the more similar neighbour."""
    asked = list(neighbours[:NEIGHBOURS])
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for rank, n in enumerate(asked):
        if within and any(n.labels.get(k) != v for k, v in within.items()):
            continue
        label = n.labels.get(field)
        if not label or (allowed is not None and not allowed(label)):
            continue
        totals[label] = totals.get(label, 0.0) + weight(n.similarity)
        counts[label] = counts.get(label, 0) + 1
        first_seen.setdefault(label, rank)
    if not totals:
        return Vote(None, 0.0, 0, 0, len(asked))
    winner = max(totals, key=lambda label: (totals[label], -first_seen[label]))
    denominator = sum(totals.values()) + PRIOR_WEIGHT
    return Vote(winner, totals[winner] / denominator, counts[winner], sum(counts.values()), len(asked),
                shares={label: t / denominator for label, t in totals.items()}, counts=dict(counts))


def explain(field: str, v: Vote) -> str:
    """A few words on why: "4 of 5 similar resolved tickets" (of those with a ``field`` the taxonomy knows)."""
    if v.label is None:
        return f"no similar resolved ticket has a known {field}" if v.among else "no similar resolved tickets"
    return f"{v.support} of {v.voters} similar resolved tickets"


def suggest(neighbours: Sequence[Neighbour], *, allowed: Callable[[str, str, Mapping[str, str]], bool] | None = None,
            calibration: Mapping[str, Calibration] | None = None, min_confidence: float = MIN_CONFIDENCE,
            fields: Collection[str] = LABEL_FIELDS,
            model_scores: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Suggestion]:
    """A suggestion per field of ``fields`` (in ``LABEL_FIELDS`` order) from ``neighbours`` (best first).

    ``allowed(field, label, parents)`` is the taxonomy's test (None: every label), ``parents`` the labels already
    chosen above ``field`` (``{"category": "Hardware"}`` for a subcategory); ``calibration`` maps a field to its
    curve (missing: ``DEFAULT_CALIBRATION``). ``model_scores``: for a field with the tenant's trained model
    (``triage.text_model``), its probability per label; the field's share is then the blend of model and vote
    (``text_model.blend``), and its curve must be one fitted on blended shares. A subcategory is suggested only
    under a suggested category, an item only under a suggested subcategory (a child of an unsure parent is not
    offered). Pure."""
    out: dict[str, Suggestion] = {}
    chosen: dict[str, str] = {}
    for name in LABEL_FIELDS:
        if name not in fields:
            continue
        parent = PARENT.get(name)
        if parent is not None and parent not in chosen:
            out[name] = Suggestion(name, None, 0.0, f"no confident {parent}", "none")
            continue
        within = {p: chosen[p] for p in ancestors(name) if p in chosen}
        test = None if allowed is None else (lambda label, f=name, w=dict(within): allowed(f, label, w))
        v = vote(neighbours, name, allowed=test, within=within or None)
        label, share, why = v.label, v.share, explain(name, v)
        scores = (model_scores or {}).get(name)
        if scores:
            picked = with_model(v, {k: p for k, p in scores.items() if test is None or test(k)})
            if picked is not None:
                label, share = picked
                why = _explain_blend(name, v, label)
        curve = (calibration or {}).get(name, DEFAULT_CALIBRATION)
        confidence = round(curve(share), 3) if label is not None else 0.0
        if label is not None and confidence >= min_confidence:
            chosen[name] = label
            out[name] = Suggestion(name, label, confidence, why, "history", v)
        else:
            why = why if label is None else f"no confident suggestion ({label} at {confidence:.0%}: {why})"
            out[name] = Suggestion(name, None, confidence, why, "none", v)
    return out


def with_model(v: Vote, scores: Mapping[str, float]) -> tuple[str, float] | None:
    """The winner and its share when the tenant's classifier's ``scores`` (probability per allowed label) are
    blended with the vote ``v`` (``text_model.blend``); ties go to the label the vote preferred. None when
    neither names a label."""
    from enhancement_pipeline.triage.text_model import blend

    blended = blend(v.shares, scores)
    if not blended:
        return None
    label = max(blended, key=lambda k: (blended[k], v.shares.get(k, 0.0)))
    return label, blended[label]


def _explain_blend(field: str, v: Vote, label: str) -> str:
    """Why, when the tenant's classifier voted too: "the classifier and 4 of 5 similar resolved tickets"."""
    support = v.counts.get(label, 0)
    if not v.voters:
        return f"the tenant's classifier ({explain(field, v)})"
    return f"the classifier and {support} of {v.voters} similar resolved tickets"


def ancestors(field: str) -> list[str]:
    """The fields above ``field``, nearest first: ``["subcategory", "category"]`` for an item."""
    chain = []
    while field in PARENT:
        field = PARENT[field]
        chain.append(field)
    return chain
