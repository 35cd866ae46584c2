"""``<tenant>__inventory_file_sensor``: materializes the tenant's system_inventory when its folder changes."""

import hashlib
import time
from pathlib import Path

import dagster as dg

from enhancement_pipeline.inventory.assets import inventory_asset_key
from enhancement_pipeline.settings import Settings, get_settings
from enhancement_pipeline.tenants import Tenant

SETTLE_S = 5.0
"""A file modified more recently than this may still be being copied; the sensor waits for it to settle."""


def folder_fingerprint(folder: Path, now: float | None = None,
                       settle_s: float = SETTLE_S) -> tuple[str, list[str]] | None:
    """(digest of the inventory files' names, sizes and mtimes, their names), or None while one is too fresh.

    A folder that does not exist has no files (fingerprint of nothing). Pure apart from reading the folder.
    """
    from enhancement_pipeline.inventory.validation import inventory_files

    now = time.time() if now is None else now
    files = inventory_files(folder) if folder.is_dir() else []
    parts = []
    for path in files:
        stat = path.stat()
        if now - stat.st_mtime < settle_s:
            return None
        parts.append(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest(), [p.name for p in files]


def build_inventory_sensor(tenant: Tenant, settings: Settings | None = None) -> dg.SensorDefinition:
    """Watches ``tenant.inventory_dir``; a new, changed or removed file launches one materialization.

    The cursor is the digest of the folder's files (name, size, mtime); the run key is the tenant plus that
    digest, so one state of the folder is loaded once, however many ticks see it.
    """
    if tenant.inventory_dir is None:
        raise ValueError(f"tenant {tenant.tenant_id} has no inventory_dir to watch")
    folder = tenant.inventory_dir
    key = inventory_asset_key(tenant.tenant_id)

    @dg.sensor(name=f"{tenant.tenant_id}__inventory_file_sensor", asset_selection=[key],
               minimum_interval_seconds=(settings or get_settings()).inventory_sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Materializes {tenant.tenant_id}/system_inventory when the data team adds, changes or "
                           f"removes a CSV/Parquet file in {folder}.")
    def inventory_file_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        fingerprint = folder_fingerprint(folder)
        if fingerprint is None:
            return dg.SensorResult(skip_reason=dg.SkipReason(
                f"a file in {folder} changed in the last {SETTLE_S:g} s; waiting for it to settle"))
        digest, names = fingerprint
        if digest == context.cursor:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no change in {folder}"))
        if not names:
            context.log.warning(f"{folder} holds no inventory files; system_inventory is left as it is")
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no inventory files in {folder}"), cursor=digest)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{tenant.tenant_id}:inventory:{digest[:16]}", asset_selection=[key],
                                        tags={"tenant": tenant.tenant_id, "inventory_files": ", ".join(names)[:200]})],
            cursor=digest)

    return inventory_file_sensor
