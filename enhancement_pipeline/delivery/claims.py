"""Which trigger launches a new ticket's run: the first to claim it.

A new ticket is announced twice where SDP pushes (``push/``): by SDP's webhook, within a second, and by the
new-ticket sensor's next poll. Checking Dagster's run storage for an existing run leaves a window between one
trigger's check and its run's creation (the sensor's run is created by the daemon after the tick), so both
would launch. ``claim`` closes it: one row per ticket in ``ticket_launches`` (``INSERT ... ON CONFLICT DO
NOTHING``), and only the trigger whose insert landed launches a run.

A claim whose run never came (the daemon died after the tick, the receiver before launching) is not a lost
ticket: the delivery sweep enhances every ticket without a note and without a run in flight, and claims nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

SENSOR = "new_ticket_sensor"
PUSH = "push"
TRIGGER_TAG = "enhancement/trigger"
"""Run tag naming what launched an ``enhance_ticket`` run other than the new-ticket sensor: ``push`` (the push
receiver), ``delivery_sweep``."""


@dataclass(frozen=True)
class Claimed:
    """What ``claim`` found. ``held``: {ticket id: the trigger holding it}, for each id asked about (an id whose
    row was given back meanwhile is missing). ``new``: the ids this call claimed now."""

    held: dict[str, str]
    new: frozenset[str]


def claim(conn: psycopg.Connection, tenant_id: str, ticket_ids: Iterable[str], trigger: str) -> Claimed:
    """Claim ``ticket_ids`` for ``trigger``. The new-ticket sensor launches every id ``held`` by it (asking again
    for a ticket it claimed on an earlier tick is harmless: its run key dedupes); the push receiver launches only
    ``new`` ones (a webhook delivered twice must not start a second run). Commits nothing itself (the caller's
    transaction; ``PostgresResource.connection`` commits on success). Raises ``psycopg.Error`` when Postgres
    cannot be reached: a trigger then launches nothing (the other trigger or the sweep will)."""
    ids = list(dict.fromkeys(ticket_ids))
    if not ids:
        return Claimed({}, frozenset())
    won = {row[0] for row in conn.execute(
        "INSERT INTO ticket_launches (tenant_id, ticket_id, trigger) SELECT %s, unnest(%s::text[]), %s "
        "ON CONFLICT (tenant_id, ticket_id) DO NOTHING RETURNING ticket_id", (tenant_id, ids, trigger))}
    held = {ticket: trigger for ticket in won}
    if len(won) < len(ids):
        held.update(conn.execute("SELECT ticket_id, trigger FROM ticket_launches WHERE tenant_id = %s AND "
                                 "ticket_id = ANY(%s)", (tenant_id, [t for t in ids if t not in won])).fetchall())
    return Claimed(held, frozenset(won))


def release(conn: psycopg.Connection, tenant_id: str, ticket_id: str, trigger: str) -> None:
    """Give back ``trigger``'s claim on a ticket whose run could not be launched, so the other trigger may."""
    conn.execute("DELETE FROM ticket_launches WHERE tenant_id = %s AND ticket_id = %s AND trigger = %s",
                 (tenant_id, ticket_id, trigger))
