"""Seeding helpers shared by the tests: real article text into the SDP simulator."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from enhancement_pipeline.local.datasets import ArticleTicket, demo_split
from enhancement_pipeline.local.sdp_simulator import SdpState
from enhancement_pipeline.servicedesk.payloads import datetime_to_millis


def seed_history(state: SdpState, tickets: list[ArticleTicket]) -> dict[str, str]:
    """Resolved requests in the simulator; returns {article_id: request id}."""
    ids = {}
    for t in tickets:
        record = state.add_request(subject=t.subject, description=t.description_html, requester=t.requester,
                                   technician=t.technician, status="Resolved",
                                   created_millis=datetime_to_millis(t.created_at),
                                   resolved_millis=datetime_to_millis(t.resolved_at),
                                   resolution_html=t.resolution_html, category=t.category)
        ids[t.article_id] = record["id"]
    return ids


def open_ticket(state: SdpState, t: ArticleTicket, created: datetime | None = None) -> str:
    """A new Open request from an article ticket; returns its id."""
    created_ms = datetime_to_millis(created) if created else None
    return state.add_request(subject=t.subject, description=t.description_html, requester=t.requester,
                             created_millis=created_ms)["id"]


def split(now: datetime | None = None):
    return demo_split(now=now)


def months_covering(history: list[ArticleTicket]) -> tuple[str, str]:
    """First and last monthly partition keys covering the tickets' resolution times."""
    first = min(t.resolved_at for t in history)
    last = max(t.resolved_at for t in history)
    return first.strftime("%Y-%m-01"), last.strftime("%Y-%m-01")


def materialize_range(assets, resources, start: str, end: str, instance=None):
    """A single-run backfill of ``start``..``end`` (monthly partition keys), as the UI and CLI launch it."""
    return dg.materialize(assets, resources=resources, instance=instance or dg.DagsterInstance.ephemeral(),
                          tags={"dagster/asset_partition_range_start": start,
                                "dagster/asset_partition_range_end": end})
