"""``ticket_history`` for each tenant: resolved SDP requests, one monthly partition per month of resolution."""

import time

import dagster as dg

from enhancement_pipeline.history.importer import MonthImport, import_months, month_windows
from enhancement_pipeline.history.search import embed_if_available, refresh_lexeme_stats
from enhancement_pipeline.history.store import HistoryLoad, merge_tickets
from enhancement_pipeline.models import Ticket
from enhancement_pipeline.servicedesk.resource import ServiceDeskResource
from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

MAX_FAILED_FRACTION = 0.1
"""A backfill in which more tickets than this failed is failed itself: the cause is systemic (a revoked key, an
SDP upgrade), and a green run that imported little would hide it. Its good months are still written."""


def history_partitions(tenant: Tenant) -> dg.MonthlyPartitionsDefinition:
    """Monthly partitions from the tenant's ``history_start_date`` through the current month (end_offset=1)."""
    return dg.MonthlyPartitionsDefinition(start_date=tenant.history_start_date.isoformat(), end_offset=1)


def history_asset_key(tenant_id: str) -> dg.AssetKey:
    return dg.AssetKey([tenant_id, "ticket_history"])


def build_ticket_history(tenant: Tenant) -> dg.AssetsDefinition:
    """The tenant's ``<tenant>/ticket_history`` asset: a backfill of any range of months is one run."""
    tenant_id = tenant.tenant_id

    @dg.asset(
        key=history_asset_key(tenant_id),
        partitions_def=history_partitions(tenant),
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=tenant_id,
        kinds={"postgres"},
        description=f"Resolved ServiceDesk Plus requests of tenant {tenant_id} (subject, description, resolution) "
                    "that similar_tickets searches. A partition is a month of resolved_time; a backfill of any "
                    "range is one run, and re-running a month makes it equal to what SDP lists.",
    )
    def ticket_history(context: dg.AssetExecutionContext, sdp: ServiceDeskResource,
                       postgres: PostgresResource) -> dg.MaterializeResult:
        window = context.partition_time_window
        windows = month_windows(window.start, window.end)
        endpoint = sdp.endpoint(tenant_id)
        started = time.perf_counter()
        totals = {"months": 0, "written": 0}

        def write(month: MonthImport, tickets: list[Ticket], listed_ids: list[str]) -> HistoryLoad:
            if not listed_ids:
                # SDP listing nothing for a month is likelier a narrowed API key or a glitch than a month whose
                # every ticket was deleted: keep what history has (count_matches_sdp will show the gap).
                return HistoryLoad()
            with postgres.connection() as conn:
                # A listing not shown complete (out of order, rows outside the month, a count that differs
                # from SDP's) may have missed rows still in SDP: write what it listed, delete nothing.
                return merge_tickets(conn, tenant_id, tickets, "bulk_import", window=(month.start, month.end),
                                     listed_ids=listed_ids, fresh_since=month.listed_at,
                                     delete_unlisted=month.complete)

        def progress(month: MonthImport) -> None:
            totals["months"] += 1
            totals["written"] += month.load.written
            elapsed = time.perf_counter() - started
            context.log.info(
                f"{tenant_id} {month.start:%Y-%m}: listed {month.listed}, written {month.load.written} "
                f"(+{month.load.inserted} new, {month.load.updated} changed, {month.load.deleted} removed), "
                f"failed {len(month.failures)}; {totals['months']}/{len(windows)} months, "
                f"{totals['written']} tickets in {elapsed:.1f} s ({totals['written'] / max(elapsed, 1e-9):.0f}/s)")
            for failure in month.failures[:5]:
                context.log.warning(f"not imported: {failure}")
            if not month.complete:
                context.log.warning(
                    f"{tenant_id} {month.start:%Y-%m}: SDP's listing could not be shown complete, so nothing "
                    f"was deleted from the month ({month.untrusted} row(s) left out, SDP counts "
                    f"{month.sdp_total}): {'; '.join(month.problems[:5])}")
            if month.moved:
                context.log.warning(f"{tenant_id} {month.start:%Y-%m}: {month.moved} listed ticket(s) were no "
                                    "longer resolved when fetched; their rows were kept as they were")
            # An observation per month shows the backfill's progress on the asset's page while it runs.
            context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=month.partition_key,
                                                  metadata=_month_metadata(month)))

        context.log.info(f"importing {len(windows)} month(s) of {tenant_id}'s resolved requests from "
                         f"{endpoint.base_url} with {endpoint.import_concurrency} fetches at once, at most "
                         f"{endpoint.request_budget_per_s} requests/s")
        budget = sdp.budget(tenant_id)
        waited_before = budget.waited_s
        months = import_months(lambda: sdp.client(tenant_id, budgeted=True), tenant_id, windows, write,
                               concurrency=endpoint.import_concurrency, on_month=progress)
        with postgres.connection() as conn:
            # Term statistics over the whole tenant (they weight every query), embeddings for this range.
            search_docs = refresh_lexeme_stats(conn, tenant_id)
            embedded = embed_if_available(conn, tenant_id, context.log, window=(window.start, window.end))
        elapsed = time.perf_counter() - started
        load = sum((m.load for m in months), HistoryLoad())
        failures = [f for m in months for f in m.failures]
        listed = sum(m.listed for m in months)
        unproven = [m for m in months if not m.complete]
        metadata = {
            "tenant_id": tenant_id, "months": len(months), "listed": listed, "imported": load.written,
            "inserted": load.inserted, "updated": load.updated, "unchanged": load.unchanged, "deleted": load.deleted,
            "failed": len(failures), "without_resolution": sum(m.without_resolution for m in months),
            "seconds": round(elapsed, 2), "tickets_per_s": round(load.written / elapsed, 1) if elapsed > 0 else 0.0,
            "budget_wait_thread_s": round(budget.waited_s - waited_before, 2),  # summed over the fetch threads
            "window": f"{window.start:%Y-%m-%d} .. {window.end:%Y-%m-%d}",
            "search_docs": search_docs,
            # None: the `embeddings` extra (or pgvector) is not installed, search is lexical only.
            "embedded": embedded if embedded is not None else dg.MetadataValue.text("off"),
            "by_month": dg.MetadataValue.md(_months_table(months)),
            # Months whose listing was not shown complete: imported as listed, nothing deleted (re-run them).
            "months_unproven": ", ".join(f"{m.start:%Y-%m}" for m in unproven) or "none",
            "untrusted_rows": sum(m.untrusted for m in months),
            "reopened_before_fetch": sum(m.moved for m in months),
        }
        if unproven:
            metadata["listing_problems"] = dg.MetadataValue.md("\n".join(
                f"- {m.start:%Y-%m}: {problem}" for m in unproven for problem in m.problems[:5]))
        if failures:
            metadata["failures"] = dg.MetadataValue.md("\n".join(f"- {f}" for f in failures[:50]))
        if listed and len(failures) > MAX_FAILED_FRACTION * listed:
            raise dg.Failure(f"{len(failures)} of {listed} tickets could not be imported (first: {failures[0]}); "
                             "the months were written without them", metadata=metadata)
        return dg.MaterializeResult(metadata=metadata)

    return ticket_history


def _month_metadata(month: MonthImport) -> dict:
    metadata = {"listed": month.listed, "imported": month.load.written, "inserted": month.load.inserted,
                "updated": month.load.updated, "deleted": month.load.deleted, "failed": len(month.failures),
                "seconds": round(month.seconds, 2), "listing_complete": month.complete,
                "sdp_total": month.sdp_total if month.sdp_total is not None else dg.MetadataValue.text("none"),
                "untrusted_rows": month.untrusted}
    if month.problems:
        metadata["listing_problems"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in month.problems))
    return metadata


def _months_table(months: list[MonthImport]) -> str:
    lines = ["| month | listed | SDP count | imported | new | changed | removed | failed | listing |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {m.start:%Y-%m} | {m.listed} | {m.sdp_total if m.sdp_total is not None else '-'} | "
              f"{m.load.written} | {m.load.inserted} | {m.load.updated} | {m.load.deleted} | {len(m.failures)} | "
              f"{'complete' if m.complete else 'unproven: nothing deleted'} |" for m in months]
    return "\n".join(lines)
