"""Seeding helpers shared by the tests: real article text into the SDP simulator."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from enhancement_pipeline.enhancement.job import enhance_ticket
from enhancement_pipeline.enhancement.ops import LOOKUPS
from enhancement_pipeline.history.assets import build_ticket_history
from enhancement_pipeline.history.checks import build_history_checks
from enhancement_pipeline.inventory.assets import build_system_inventory
from enhancement_pipeline.local.datasets import ArticleTicket, history_months
from enhancement_pipeline.local.sdp_simulator import SdpState, seed_resolved_tickets
from enhancement_pipeline.servicedesk.payloads import datetime_to_millis
from enhancement_pipeline.tenants import Tenant


def open_ticket(state: SdpState, t: ArticleTicket, created: datetime | None = None) -> str:
    """A new Open request from an article ticket; returns its id."""
    created_ms = datetime_to_millis(created) if created else None
    return state.add_request(subject=t.subject, description=t.description_html, requester=t.requester,
                             created_millis=created_ms)["id"]


def materialize_range(assets, resources, start: str, end: str, instance=None, **kw):
    """A single-run backfill of ``start``..``end`` (monthly partition keys), as the UI and CLI launch it."""
    return dg.materialize(assets, resources=resources, instance=instance or dg.DagsterInstance.ephemeral(),
                          tags={"dagster/asset_partition_range_start": start,
                                "dagster/asset_partition_range_end": end}, **kw)


def history_defs(tenant: Tenant) -> list:
    """The tenant's ticket_history asset and its checks, as the definitions build them."""
    return [build_ticket_history(tenant), *build_history_checks(tenant)]


def inventory_asset(tenant: Tenant) -> dg.AssetsDefinition:
    return build_system_inventory(tenant)


def import_history(sdp_state: SdpState, resources: dict, tenant: Tenant,
                   history: list[ArticleTicket]) -> dict[str, str]:
    """``history`` stored in SDP as resolved requests and imported through the ticket_history asset, and the
    inventory loaded; returns {article_id: request id}."""
    ids = seed_resolved_tickets(sdp_state, history)
    start, end = history_months(history)
    assert materialize_range(history_defs(tenant), resources, start, end).success
    assert dg.materialize([inventory_asset(tenant)], resources=resources).success
    return ids




def step_metadata(result, step: str) -> dict:
    """The metadata values ``step`` reported with its output in an in-process run's result (a lookup's name:
    that output of ``gather_context``)."""
    output = step if step in LOOKUPS else "result"
    step = "gather_context" if step in LOOKUPS else step
    event = next(e for e in result.all_events if e.step_key == step and e.is_successful_output
                 and e.event_specific_data.step_output_handle.output_name == output)
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def output_of(result, name: str):
    """An op's output, or a lookup's section (``LOOKUPS``: an output of ``gather_context``)."""
    return result.output_for_node("gather_context", name) if name in LOOKUPS else result.output_for_node(name)


def run_enhance(resources: dict, tenant_id: str, ticket_id: str, instance: dg.DagsterInstance | None = None):
    """One ``enhance_ticket`` run for a ticket, as the sensor launches it (errors are returned, not raised)."""
    return enhance_ticket.execute_in_process(
        run_config={"ops": {"load_ticket": {"config": {"tenant_id": tenant_id, "ticket_id": ticket_id}}}},
        resources=resources, instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False)


def sensor_context(resources: dict, instance: dg.DagsterInstance, cursor: str | None = None
                   ) -> dg.SensorEvaluationContext:
    """A tick's context for the new-ticket sensor or the delivery sweep, as the daemon builds it: an instance
    (they read run history) and the resources they take."""
    return dg.build_sensor_context(cursor=cursor, instance=instance,
                                   resources={"sdp": resources["sdp"], "postgres": resources["postgres"]})
