"""``system_inventory`` for each tenant: the data team's files, validated and loaded into Postgres."""

from pathlib import Path

import dagster as dg

from enhancement_pipeline.storage.postgres import PostgresResource
from enhancement_pipeline.tenants import Tenant

REJECTED_CHECK = "no_rejected_rows"


class InventoryConfig(dg.Config):
    """Where to read from instead of the tenant's ``inventory_dir``: a folder or one file ("" = the default)."""

    path: str = ""


def inventory_asset_key(tenant_id: str) -> dg.AssetKey:
    return dg.AssetKey([tenant_id, "system_inventory"])


def build_system_inventory(tenant: Tenant) -> dg.AssetsDefinition:
    """The tenant's ``<tenant>/system_inventory`` asset and its ``no_rejected_rows`` check."""
    tenant_id = tenant.tenant_id
    key = inventory_asset_key(tenant_id)

    @dg.asset(
        key=key,
        group_name=tenant_id,
        kinds={"postgres", "polars"},
        check_specs=[dg.AssetCheckSpec(REJECTED_CHECK, asset=key,
                                       description="Every row of the data team's files was loaded.")],
        description=f"Hosts and networks by IP (hostname, role, client, location) of tenant {tenant_id}, owned by "
                    "the data team and loaded from the CSV/Parquet files in their folder. Invalid rows are "
                    "rejected with reasons, never loaded silently.",
    )
    def system_inventory(context: dg.AssetExecutionContext, config: InventoryConfig,
                         postgres: PostgresResource) -> dg.MaterializeResult:
        # Imported here, not at module level: polars is only needed by this asset, and every enhance_ticket
        # run re-imports the code location.
        from enhancement_pipeline.inventory.store import replace_inventory
        from enhancement_pipeline.inventory.validation import inventory_files, validate_inventory_files

        location = Path(config.path) if config.path else tenant.inventory_dir
        if location is None:
            raise dg.Failure(f"tenant {tenant_id} declares no inventory_dir and no path was given")
        files = inventory_files(location)
        if not files:
            # An empty folder is far likelier a failed mount or copy than an MSP with no systems: keep the
            # inventory as it is rather than delete every record.
            raise dg.Failure(f"no inventory files (*.csv, *.parquet) in {location}; system_inventory left as it was")
        accepted, rejected = validate_inventory_files(files)
        for r in rejected[:50]:
            context.log.warning(f"{r.file} line {r.line}: rejected {r.ip_address!r}: {r.reason}")
        with postgres.connection() as conn:
            load = replace_inventory(conn, tenant_id, accepted)
        context.log.info(f"{tenant_id} inventory from {len(files)} file(s): {accepted.height} rows loaded "
                         f"({load.inserted} new, {load.updated} changed, {load.deleted} deleted), "
                         f"{len(rejected)} rejected")
        table = "| file | line | ip_address | reason |\n|---|---|---|---|\n" + "\n".join(
            f"| {r.file} | {r.line} | `{r.ip_address}` | {r.reason} |" for r in rejected[:100])
        return dg.MaterializeResult(
            metadata={
                "tenant_id": tenant_id, "location": str(location), "files": ", ".join(p.name for p in files),
                "rows_loaded": accepted.height, "rows_rejected": len(rejected), "inserted": load.inserted,
                "updated": load.updated, "unchanged": load.unchanged, "deleted": load.deleted,
                "rejected_rows": dg.MetadataValue.md(table) if rejected else "none",
            },
            check_results=[dg.AssetCheckResult(
                check_name=REJECTED_CHECK, passed=not rejected, severity=dg.AssetCheckSeverity.WARN,
                metadata={"rows_rejected": len(rejected),
                          "rejected_rows": dg.MetadataValue.md(table) if rejected else "none"})],
        )

    return system_inventory
