"""Which recent tickets still need a note, and why the others do not. Pure functions, no I/O.

The delivery sweep (``delivery/sensors.py``) lists the tickets SDP created in the last hours and gives each
one a ``Verdict``: ``enhance`` (another ``enhance_ticket`` run, with a run key that says it is a retry) or
``skip`` with the reason, which the sensor writes in its tick's log. It is the last line of the guarantee that
every ticket gets its note: whatever lost the first run (its retries exhausted, run storage lost, a daemon
down for an hour), a ticket with neither a posted note nor a run in flight is tried again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from enhancement_pipeline.servicedesk.polling import StreamCursor

FINISHED_FOR_GOOD = frozenset({"ticket_not_found", "unreadable_ticket"})
"""``FAILURE_TAG`` values after which another attempt cannot help (a 401/403 can: the key may be fixed)."""


DEFER_AGES = 6
"""A ticket the live new-ticket sensor has not reached is left to it until it is this many minimum ages old (an
hour by default): a sensor that ticks but never gets to a ticket must not keep the sweep away for ever."""


@dataclass(frozen=True)
class SweepPolicy:
    """``min_age_s``: a ticket younger than this is the new-ticket path's (no sweep yet). ``retry_wait_s``: after
    an attempt ended, wait this long before the next. ``max_attempts``: runs per ticket (run retries included)
    after which the sweep gives up and says so."""

    min_age_s: float = 600.0
    retry_wait_s: float = 600.0
    max_attempts: int = 9


@dataclass(frozen=True)
class TicketSeen:
    """A request as the SDP listing shows it (``created_ms``: epoch milliseconds; ``status``: its name)."""

    ticket_id: str
    created_ms: int
    status: str | None = None
    display_id: str | None = None


@dataclass(frozen=True)
class Attempts:
    """The ticket's ``enhance_ticket`` runs in Dagster: how many, whether one is queued or running, when the
    last one ended (epoch seconds) and its ``FAILURE_TAG`` if it failed for good."""

    count: int = 0
    in_flight: bool = False
    last_ended_s: float | None = None
    last_failure: str | None = None


@dataclass(frozen=True)
class NewTicketPath:
    """Where the tenant's new-ticket sensor stands, as Dagster's sensor storage shows it.

    ``cursor``: its ``StreamCursor`` (None before its first tick, or when unreadable). ``alive``: it is not
    stopped and its latest tick either is still running or ended without an error, within ``stale_s`` (see
    ``path_alive``). While it is alive, a ticket beyond its cursor is still on its way to a run: the sweep leaves
    it alone (a burst of hundreds of tickets takes the sensor several ticks, and more than the sweep's minimum age,
    to queue), up to ``DEFER_AGES`` minimum ages. When it is not alive (stopped, failing, or its daemon down),
    the sweep takes every ticket older than its minimum age."""

    cursor: StreamCursor | None
    alive: bool
    state: str
    """A few words for the sweep's log: ``latest tick SUCCESS 4 s ago``, ``stopped``..."""

    def will_reach(self, ticket: TicketSeen) -> bool:
        """Whether the new-ticket sensor is alive and has not yet passed ``ticket``."""
        return self.alive and (self.cursor is None or not self.cursor.handled(ticket.created_ms, ticket.ticket_id))


def path_alive(*, stopped: bool, tick_status: str | None, tick_s: float | None, now_s: float,
               stale_s: float) -> bool:
    """Whether a sensor is doing its job: not ``stopped``, its latest tick (``tick_status``: Dagster's
    ``TickStatus`` name; ``tick_s``: when it ended, or started while ``STARTED``, epoch seconds) is no
    ``FAILURE`` and is younger than ``stale_s``. No tick at all: not alive."""
    if stopped or tick_status is None or tick_s is None or tick_status == "FAILURE":
        return False
    return now_s - tick_s < stale_s


@dataclass(frozen=True)
class Verdict:
    action: Literal["enhance", "skip", "done"]
    reason: str


def judge(ticket: TicketSeen, *, posted: bool, attempts: Attempts, finished_statuses: frozenset[str],
          now_s: float, policy: SweepPolicy = SweepPolicy(), new_ticket_path: NewTicketPath | None = None) -> Verdict:
    """What the sweep does with ``ticket``: ``done`` (it has its note), ``skip`` (with the reason) or
    ``enhance`` (with the reason the new run carries in its tags). ``new_ticket_path``: where the new-ticket
    sensor stands (None: not known, the sweep judges by age alone)."""
    if posted:
        return Verdict("done", "has its note")
    age_s = now_s - ticket.created_ms / 1000
    minutes = f"{age_s / 60:.0f} min"
    if ticket.status in finished_statuses:
        return Verdict("skip", f"{ticket.status} in SDP {minutes} after creation, before it got a note: left alone")
    if attempts.in_flight:
        return Verdict("skip", "a run is queued or in progress")
    if (attempts.count == 0 and new_ticket_path is not None and new_ticket_path.will_reach(ticket)
            and age_s < policy.min_age_s * DEFER_AGES):
        return Verdict("skip", f"not yet reached by the new-ticket sensor ({new_ticket_path.state}): "
                               "still the new-ticket sensor's")
    if attempts.last_failure in FINISHED_FOR_GOOD:
        return Verdict("skip", f"its last run failed for good ({attempts.last_failure}): see that run")
    if age_s < policy.min_age_s:
        return Verdict("skip", f"created {minutes} ago: still the new-ticket sensor's")
    if attempts.count >= policy.max_attempts:
        return Verdict("skip", f"no note after {attempts.count} runs: given up; re-execute its last run by hand "
                               "once the cause is fixed")
    if attempts.last_ended_s is not None and now_s - attempts.last_ended_s < policy.retry_wait_s:
        return Verdict("skip", f"its last run ended {(now_s - attempts.last_ended_s) / 60:.0f} min ago; next try "
                               f"after {policy.retry_wait_s / 60:.0f} min")
    if attempts.count == 0:
        return Verdict("enhance", f"no note and no run {minutes} after creation")
    return Verdict("enhance", f"no note {minutes} after creation, after {attempts.count} run(s)"
                              + (f" (last failure: {attempts.last_failure})" if attempts.last_failure else ""))
