"""Fitting a tenant's triage confidence curves (triage/calibration.py): pure."""

import random

import pytest

from enhancement_pipeline.triage.calibration import (
    MAX_PROBABILITY,
    MIN_SAMPLES,
    expected_calibration_error,
    fit_curve,
    fit_field,
    outcomes,
)
from enhancement_pipeline.triage.classify import Neighbour


def simulated(n: int, seed: int = 7) -> tuple[list[float], list[bool]]:
    """Votes whose winner is right with probability share ** 0.5: a curve above the diagonal, as real ones are."""
    rng = random.Random(seed)
    shares = [rng.random() for _ in range(n)]
    return shares, [rng.random() < s ** 0.5 for s in shares]


def test_the_curve_learns_how_often_a_share_is_right_and_is_calibrated_on_unseen_votes():
    shares, right = simulated(4000)
    curve = fit_curve(shares, right)
    assert curve(0.25) == pytest.approx(0.5, abs=0.08)
    assert curve(0.81) == pytest.approx(0.9, abs=0.06)
    values = [curve(x / 100) for x in range(101)]
    assert values == sorted(values) and max(values) <= MAX_PROBABILITY
    test_shares, test_right = simulated(4000, seed=8)
    calibrated = expected_calibration_error([curve(s) for s in test_shares], test_right)
    raw = expected_calibration_error(test_shares, test_right)  # the share taken as a probability
    assert calibrated < 0.03 < raw


def test_calibration_error():
    assert expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert expected_calibration_error([0.9] * 4, [True, False, False, False]) == pytest.approx(0.65)
    with pytest.raises(ValueError):
        expected_calibration_error([0.5], [])
    with pytest.raises(ValueError):
        fit_curve([], [])


def test_a_field_needs_enough_labelled_tickets_for_its_own_curve():
    shares, right = simulated(MIN_SAMPLES - 1)
    assert fit_field("group", shares, right) is None
    shares, right = simulated(1000)
    fit = fit_field("group", shares, right)
    # Scored on 500 votes, even the true curve shows an ECE of about 0.045 (sampling noise in 10 bins).
    assert fit.samples == 1000 and 0 < fit.accuracy < 1 and fit.heldout_ece < 0.12


def test_outcomes_vote_as_suggest_does():
    near = [Neighbour("1", 0.9, {"category": "Hardware", "subcategory": "Printer"}),
            Neighbour("2", 0.9, {"category": "Hardware", "subcategory": "Scanner"}),
            Neighbour("3", 0.95, {"category": "Software", "subcategory": "Printer"})]
    got = outcomes(near, {"category": "Hardware", "subcategory": "Scanner", "priority": "High"})
    assert got["category"][1] is True
    # Among the Hardware neighbours only; a tie goes to the closer (Printer, ranked first): wrong here.
    assert got["subcategory"][1] is False
    assert "priority" not in got  # no neighbour has one: nothing to learn from
    assert "item" not in got
