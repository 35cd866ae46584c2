"""Asset checks on each tenant's ``ticket_history``, per month partition (a range runs them over the range).

- ``one_row_per_ticket``: no (tenant, ticket) twice. The primary key guarantees it where the schema is ours;
  the check catches a table created or altered by hand.
- ``resolution_present``: every row in the window has resolution text (a resolved ticket without one teaches
  similar_tickets nothing). A warning: SDP lets technicians resolve without writing a resolution.
- ``count_matches_sdp``: for each month, the rows resolved in it equal SDP's count of Resolved/Closed requests
  resolved in it. A mismatch means a month to re-run (tickets reopened, deleted, or failed to import).
"""

import dagster as dg

from enhancement_pipeline.history.assets import history_asset_key, history_partitions
from enhancement_pipeline.history.importer import month_windows, resolved_criteria
from enhancement_pipeline.history.store import window_counts
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

SAMPLE = 20


def build_history_checks(tenant: Tenant) -> list[dg.AssetChecksDefinition]:
    """The three checks for ``<tenant>/ticket_history``, partitioned like the asset."""
    tenant_id = tenant.tenant_id
    key = history_asset_key(tenant_id)
    partitions = history_partitions(tenant)

    @dg.asset_check(asset=key, name="one_row_per_ticket", partitions_def=partitions, blocking=True,
                    description="No SDP request appears twice in the tenant's history.")
    def one_row_per_ticket(postgres: PostgresResource) -> dg.AssetCheckResult:
        with postgres.connection() as conn:
            repeated = conn.execute(
                "SELECT ticket_id, count(*) FROM ticket_history WHERE tenant_id = %s GROUP BY ticket_id "
                "HAVING count(*) > 1 ORDER BY ticket_id LIMIT %s", (tenant_id, SAMPLE)).fetchall()
        return dg.AssetCheckResult(passed=not repeated, metadata={
            "repeated_tickets": len(repeated), "sample": ", ".join(f"{t} ({n}x)" for t, n in repeated)})

    @dg.asset_check(asset=key, name="resolution_present", partitions_def=partitions,
                    description="Every ticket in the window has resolution text.")
    def resolution_present(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
        window = context.partition_time_window
        with postgres.connection() as conn:
            total, missing = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE coalesce(btrim(resolution), '') = '') FROM ticket_history "
                "WHERE tenant_id = %s AND resolved_at >= %s AND resolved_at < %s",
                (tenant_id, window.start, window.end)).fetchone()
            sample = [r[0] for r in conn.execute(
                "SELECT ticket_id FROM ticket_history WHERE tenant_id = %s AND resolved_at >= %s AND resolved_at < %s "
                "AND coalesce(btrim(resolution), '') = '' ORDER BY resolved_at LIMIT %s",
                (tenant_id, window.start, window.end, SAMPLE))] if missing else []
        return dg.AssetCheckResult(passed=missing == 0, severity=dg.AssetCheckSeverity.WARN, metadata={
            "rows": total, "without_resolution": missing, "sample": ", ".join(sample)})

    @dg.asset_check(asset=key, name="count_matches_sdp", partitions_def=partitions,
                    description="Rows per month equal SDP's count of requests resolved in that month.")
    def count_matches_sdp(context: dg.AssetCheckExecutionContext, sdp: ServiceDeskResource,
                          postgres: PostgresResource) -> dg.AssetCheckResult:
        window = context.partition_time_window
        with postgres.connection() as conn:
            ours = window_counts(conn, tenant_id, window.start, window.end)
        rows, mismatched = [], []
        with sdp.client(tenant_id, budgeted=True) as client:
            for start, end in month_windows(window.start, window.end):
                month = start.strftime("%Y-%m-%d")
                theirs = client.count_requests(resolved_criteria(start, end))
                rows.append(f"| {start:%Y-%m} | {theirs} | {ours.get(month, 0)} |")
                if theirs != ours.get(month, 0):
                    mismatched.append(start.strftime("%Y-%m"))
        return dg.AssetCheckResult(passed=not mismatched, metadata={
            "months_checked": len(rows), "months_mismatched": ", ".join(mismatched) or "none",
            "counts": dg.MetadataValue.md("| month | SDP | ticket_history |\n|---|---|---|\n" + "\n".join(rows)),
        })

    return [one_row_per_ticket, resolution_present, count_matches_sdp]
