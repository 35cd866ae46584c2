"""``system_inventory``: the data team's inventory file, validated and loaded into Postgres."""

from pathlib import Path

import dagster as dg

from enhancement_pipeline.storage.postgres import PostgresResource


class InventoryConfig(dg.Config):
    """Which file to load (defaults to INVENTORY_PATH) and for which tenant."""

    path: str = ""
    tenant_id: str = ""


@dg.asset(
    group_name="inventory",
    kinds={"postgres", "polars"},
    description="Hosts and networks by IP (hostname, role, client, location), owned by the data team and loaded "
                "from their CSV/Parquet file. Invalid rows are rejected with reasons, never loaded silently.",
)
def system_inventory(context: dg.AssetExecutionContext, config: InventoryConfig,
                     postgres: PostgresResource) -> dg.MaterializeResult:
    # Imported here, not at module level: polars is only needed by this asset, and every enhance_ticket
    # run re-imports the code location.
    from enhancement_pipeline.inventory.store import replace_inventory
    from enhancement_pipeline.inventory.validation import read_inventory_file, validate_inventory
    from enhancement_pipeline.settings import get_settings

    settings = get_settings()
    path = Path(config.path or settings.inventory_path)
    tenant_id = config.tenant_id or settings.tenant_id
    accepted, rejected = validate_inventory(read_inventory_file(str(path)))
    for r in rejected[:50]:
        context.log.warning(f"{path.name} line {r.line}: rejected {r.ip_address!r}: {r.reason}")
    with postgres.connection() as conn:
        load = replace_inventory(conn, tenant_id, accepted)
    rejected_md = "\n".join(f"| {r.line} | `{r.ip_address}` | {r.reason} |" for r in rejected[:100])
    return dg.MaterializeResult(metadata={
        "file": str(path), "tenant_id": tenant_id, "rows_loaded": accepted.height, "rows_rejected": len(rejected),
        "inserted": load.inserted, "updated": load.updated, "unchanged": load.unchanged, "deleted": load.deleted,
        "rejected_rows": dg.MetadataValue.md("| line | ip_address | reason |\n|---|---|---|\n" + rejected_md)
        if rejected else "none",
    })
