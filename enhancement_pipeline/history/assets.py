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
                return merge_tickets(conn, tenant_id, tickets, "bulk_import", window=(month.start, month.end),
                                     listed_ids=listed_ids, fresh_since=month.listed_at)

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
        }
        if failures:
            metadata["failures"] = dg.MetadataValue.md("\n".join(f"- {f}" for f in failures[:50]))
        if listed and len(failures) > MAX_FAILED_FRACTION * listed:
            raise dg.Failure(f"{len(failures)} of {listed} tickets could not be imported (first: {failures[0]}); "
                             "the months were written without them", metadata=metadata)
        return dg.MaterializeResult(metadata=metadata)

    return ticket_history


def _month_metadata(month: MonthImport) -> dict:
    return {"listed": month.listed, "imported": month.load.written, "inserted": month.load.inserted,
            "updated": month.load.updated, "deleted": month.load.deleted, "failed": len(month.failures),
            "seconds": round(month.seconds, 2)}


def _months_table(months: list[MonthImport]) -> str:
    lines = ["| month | listed | imported | new | changed | removed | failed |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {m.start:%Y-%m} | {m.listed} | {m.load.written} | {m.load.inserted} | {m.load.updated} | "
              f"{m.load.deleted} | {len(m.failures)} |" for m in months]
    return "\n".join(lines)
