"""The triage vote (triage/classify.py) and the note's suggestion line (triage/suggestions.py): pure."""

import pytest

from enhancement_pipeline.triage import classify
from enhancement_pipeline.triage.classify import Calibration, Neighbour, suggest, vote
from enhancement_pipeline.triage.suggestions import FieldSuggestion, TriageSuggestions, suggestion_line

SURE = Calibration(((0.0, 0.0), (1.0, 1.0)))


def n(ticket_id: str, similarity: float, **labels: str | None) -> Neighbour:
    return Neighbour(ticket_id, similarity, labels)


def test_a_close_neighbour_outweighs_two_distant_ones():
    v = vote([n("1", 0.92, group="Messaging"), n("2", 0.70, group="Network"), n("3", 0.69, group="Network")], "group")
    assert v.label == "Messaging"
    assert (v.support, v.voters, v.among) == (1, 3, 3)


def test_share_counts_the_prior_so_weak_agreement_is_not_certainty():
    strong = vote([n("1", 0.95, category="Hardware"), n("2", 0.94, category="Hardware")], "category")
    weak = vote([n("1", 0.55, category="Hardware"), n("2", 0.54, category="Hardware")], "category")
    assert strong.label == weak.label == "Hardware"
    assert strong.share > 0.8
    assert weak.share < 0.5


def test_labels_the_taxonomy_does_not_know_lose_their_votes():
    near = [n("1", 0.9, category="Retired category"), n("2", 0.8, category="Software")]
    assert vote(near, "category", allowed=lambda label: label != "Retired category").label == "Software"
    assert vote(near, "category", allowed=lambda label: False).label is None


def test_only_the_first_neighbours_vote_and_ties_go_to_the_closer_one():
    near = [n(str(i), 0.9, priority="Low") for i in range(classify.NEIGHBOURS)] + [
        n(f"x{i}", 0.99, priority="High") for i in range(20)]
    assert vote(near, "priority").label == "Low"
    assert vote([n("1", 0.8, priority="High"), n("2", 0.8, priority="Low")], "priority").label == "High"


def test_empty_labels_do_not_vote():
    v = vote([n("1", 0.9, group=None), n("2", 0.9, group=""), n("3", 0.7, group="Network")], "group")
    assert (v.label, v.support, v.voters) == ("Network", 1, 1)


def test_subcategory_and_item_follow_the_chosen_parent():
    near = [n("1", 0.95, category="Hardware", subcategory="Printer", item="Laser"),
            n("2", 0.94, category="Hardware", subcategory="Printer", item="Laser"),
            n("3", 0.96, category="Software", subcategory="Outlook", item=None)]
    got = suggest(near, calibration={f: SURE for f in classify.LABEL_FIELDS}, min_confidence=0.5)
    assert got["category"].label == "Hardware"
    # Outlook's neighbour is the closest, but not a Hardware ticket: it does not vote on the subcategory.
    assert got["subcategory"].label == "Printer"
    assert got["item"].label == "Laser"


def test_an_unsure_parent_leaves_its_children_without_suggestion():
    near = [n("1", 0.9, category="Hardware", subcategory="Printer"), n("2", 0.9, category="Software",
                                                                        subcategory="Printer")]
    got = suggest(near, calibration={f: SURE for f in classify.LABEL_FIELDS}, min_confidence=0.6)
    assert got["category"].label is None
    assert "no confident suggestion (Hardware at" in got["category"].reason
    assert got["subcategory"].label is None and got["subcategory"].reason == "no confident category"


def test_allowed_sees_the_chosen_parents():
    seen = []

    def allowed(field, label, parents):
        seen.append((field, label, dict(parents)))
        return True

    suggest([n("1", 0.99, category="Hardware", subcategory="Printer")], allowed=allowed,
            calibration={f: SURE for f in classify.LABEL_FIELDS}, min_confidence=0.5)
    assert ("subcategory", "Printer", {"category": "Hardware"}) in seen


def test_no_neighbours_means_no_suggestion_with_a_reason():
    got = suggest([])
    assert all(s.label is None for s in got.values())
    assert got["category"].reason == "no similar resolved tickets"
    assert got["priority"].reason == "no similar resolved tickets"


def test_calibration_interpolates_and_clamps():
    curve = Calibration(((0.2, 0.1), (0.6, 0.5), (0.9, 0.95)))
    assert curve(0.0) == 0.1
    assert curve(0.4) == pytest.approx(0.3)
    assert curve(1.0) == 0.95
    with pytest.raises(ValueError):
        Calibration(((0.2, 0.5), (0.6, 0.4)))
    with pytest.raises(ValueError):
        Calibration(())


def test_the_default_calibration_is_monotone_and_in_range():
    knots = classify.DEFAULT_CALIBRATION.knots
    assert all(0.0 <= y <= 1.0 for _, y in knots)
    shares = [i / 20 for i in range(21)]
    values = [classify.DEFAULT_CALIBRATION(s) for s in shares]
    assert values == sorted(values)


def test_the_line_shows_a_path_with_its_reason_and_says_when_unsure():
    triage = TriageSuggestions(fields=[
        FieldSuggestion(field="category", label="Hardware", confidence=0.91, reason="4 of 5 similar resolved "
                        "tickets", source="history"),
        FieldSuggestion(field="subcategory", label="Printer", confidence=0.8, reason="3 of 4 similar resolved "
                        "tickets", source="history"),
        FieldSuggestion(field="item", reason="no confident subcategory"),
        FieldSuggestion(field="priority", reason="no similar resolved ticket has a known priority"),
        FieldSuggestion(field="group", label="Print_*team*", confidence=0.7, reason="2 of 3 similar resolved "
                        "tickets", source="history")])
    line = suggestion_line(triage, escape=lambda s: s.replace("*", r"\*").replace("_", r"\_"))
    assert line.startswith("**Suggested triage:** Category Hardware (91%: 4 of 5 similar resolved tickets) › "
                           "Printer (80%) · ")
    assert "Priority: no confident suggestion" in line
    assert r"Group Print\_\*team\* (70%: 2 of 3 similar resolved tickets)" in line


def test_no_line_when_triage_could_not_run():
    assert suggestion_line(TriageSuggestions(error="taxonomy unavailable: OperationalError")) is None
