"""The questions a technician asks the requester of a vague ticket, and the note's block that lists them. Pure.

One question per facet the ticket leaves out (``vagueness.FACETS``), most useful first: what happens (the exact
message), what is affected, who, since when; at least ``MIN_QUESTIONS`` (a screenshot or the steps otherwise),
at most ``MAX_QUESTIONS``. Worded for a technician to ask as they are, and for a requester to answer without
knowing IT words.
"""

from __future__ import annotations

from enhancement_pipeline.clarification.vagueness import Assessment

MIN_QUESTIONS = 2
MAX_QUESTIONS = 4
QUESTIONS = {
    "symptom": "What exactly happens, and what does the message on the screen say (the exact words, or a "
               "screenshot)?",
    "system": "Which application, device or system is it (its name, and for a computer or printer the name or "
              "asset tag on its label)?",
    "scope": "Who is affected: only you, or colleagues too?",
    "time": "When did it start, and did anything change just before (an update, a new password, a move)?",
}
EXTRA = "What were you doing when it happened, step by step?"


def questions_for(assessment: Assessment) -> list[str]:
    """``MIN_QUESTIONS`` to ``MAX_QUESTIONS`` questions for a vague ticket (none for one that is not)."""
    if not assessment.vague:
        return []
    asked = [QUESTIONS[f] for f in ("symptom", "system", "scope", "time") if f in assessment.missing]
    if len(asked) < MIN_QUESTIONS:
        asked.append(EXTRA)
    return asked[:MAX_QUESTIONS]


def clarification_block(assessment: Assessment, questions: list[str]) -> str | None:
    """The note's block for a vague ticket: "**Too vague to act on yet** (why). Ask the requester:" and the
    questions as a numbered list; None when there is nothing to ask."""
    if not questions:
        return None
    lines = [f"**Too vague to act on yet** ({assessment.reason}). Ask the requester:"]
    lines += [f"{i}. {q}" for i, q in enumerate(questions, start=1)]
    return "\n".join(lines)
