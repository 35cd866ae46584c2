"""The operating figures of one tenant over a window, computed from what the pipeline recorded. Pure.

Inputs are rows as ``metrics.collect`` reads them: the notes posted in the window (``posted_notes``, with the
ticket's creation time, how the note was written and what it cost) and the tenant's ``enhance_ticket`` runs
created in the window (Dagster's run storage: status and tags). Seconds to note run from SDP's
``created_time`` to the moment the ledger recorded the note as posted.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

RETRY_TAG = "dagster/retry_number"
"""Dagster's tag on a run launched by run retries (its value: which retry)."""


@dataclass(frozen=True)
class PostedNoteRow:
    """One ``posted_notes`` row: when posted, when the ticket was created (None: not recorded), ``mode``
    ("llm" / "deterministic"), the fallback reason, tokens and estimated cost (US dollars)."""

    ticket_id: str
    posted_at: datetime
    ticket_created_at: datetime | None
    mode: str | None
    fallback_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class RunRow:
    """One ``enhance_ticket`` run: its Dagster status name ("SUCCESS", "FAILURE", "QUEUED", ...) and tags."""

    ticket_id: str | None
    status: str
    tags: dict[str, str]


class OperatingFigures(BaseModel):
    """What one tenant's pipeline did in the ``window_h`` hours before ``measured_at`` (UTC).

    Notes: ``notes_posted`` (of which ``notes_llm`` and ``notes_deterministic``, the latter by reason in
    ``deterministic_reasons``), ``notes_posted_last_hour``; ``seconds_to_note_p50`` / ``_p95`` over the notes whose
    ticket creation time is known (None when there is none); ``llm_*`` tokens and estimated cost. Runs:
    ``runs`` created in the window by status (``runs_by_status``), ``runs_failed``, ``runs_failed_for_good``
    (failed with a reason no retry fixes), ``runs_retried`` (launched by run retries); ``tickets_waiting``:
    tickets claimed in the window with no note posted, no successful run (shadow mode posts no note) and no run
    failed for good: still owed a note.
    """

    tenant_id: str
    measured_at: datetime
    window_h: int
    notes_posted: int = 0
    notes_posted_last_hour: int = 0
    notes_llm: int = 0
    notes_deterministic: int = 0
    deterministic_reasons: dict[str, int] = Field(default_factory=dict)
    seconds_to_note_p50: float | None = None
    seconds_to_note_p95: float | None = None
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    llm_cost_usd: float = 0.0
    runs: int = 0
    runs_by_status: dict[str, int] = Field(default_factory=dict)
    runs_failed: int = 0
    runs_failed_for_good: int = 0
    runs_retried: int = 0
    tickets_waiting: int = 0

    @property
    def deterministic_share(self) -> float | None:
        """Share of the window's notes written without the model, or None without notes."""
        return self.notes_deterministic / self.notes_posted if self.notes_posted else None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (a value that was observed), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * pct / 100)) - 1]


def reason_kind(reason: str | None) -> str:
    """A fallback reason without its particulars, so that reasons count together: "daily token budget spent
    (1,234 of 1,000 tokens)" -> "daily token budget spent"; "LLM failed: APITimeoutError: ..." -> "LLM failed"."""
    text = " ".join((reason or "unknown").split())
    head = re.split(r"[(:;]", text, maxsplit=1)[0].strip().rstrip(".,")
    return (head or "unknown")[:80]


def summarize(tenant_id: str, measured_at: datetime, window_h: int, notes: Iterable[PostedNoteRow],
              runs: Iterable[RunRow], claimed: Iterable[str], failure_tag: str) -> OperatingFigures:
    """The figures of ``tenant_id`` from the window's ``notes`` and ``runs`` and the ``claimed`` ticket ids
    (every ticket whose first run was launched in the window). ``failure_tag``: the run tag that marks a run
    failed for good (``delivery.failures.FAILURE_TAG``)."""
    notes, runs = list(notes), list(runs)
    waits = [(n.posted_at - n.ticket_created_at).total_seconds() for n in notes if n.ticket_created_at is not None]
    waits = [w for w in waits if w >= 0]  # a clock skew between SDP and us must not make a negative wait
    deterministic = [n for n in notes if n.mode == "deterministic"]
    statuses = Counter(r.status for r in runs)
    for_good = {r.ticket_id for r in runs if r.status == "FAILURE" and r.tags.get(failure_tag)}
    # A run that succeeded owes nothing more, whether its note is in the ledger or not (shadow mode posts none).
    done = {r.ticket_id for r in runs if r.status == "SUCCESS"}
    posted = {n.ticket_id for n in notes}
    hour_ago = measured_at.timestamp() - 3600
    return OperatingFigures(
        tenant_id=tenant_id, measured_at=measured_at, window_h=window_h,
        notes_posted=len(notes), notes_posted_last_hour=sum(n.posted_at.timestamp() > hour_ago for n in notes),
        notes_llm=sum(n.mode == "llm" for n in notes), notes_deterministic=len(deterministic),
        deterministic_reasons=dict(Counter(reason_kind(n.fallback_reason) for n in deterministic).most_common()),
        seconds_to_note_p50=percentile(waits, 50), seconds_to_note_p95=percentile(waits, 95),
        llm_prompt_tokens=sum(n.prompt_tokens for n in notes),
        llm_completion_tokens=sum(n.completion_tokens for n in notes),
        llm_cost_usd=round(sum(n.cost_usd for n in notes), 6),
        runs=len(runs), runs_by_status=dict(sorted(statuses.items())), runs_failed=statuses.get("FAILURE", 0),
        runs_failed_for_good=sum(r.status == "FAILURE" and bool(r.tags.get(failure_tag)) for r in runs),
        runs_retried=sum(RETRY_TAG in r.tags for r in runs),
        tickets_waiting=len(set(claimed) - posted - done - for_good),
    )
