"""``<tenant>__inventory_file_sensor``: materializes the tenant's system_inventory when its folder changes."""

import hashlib
import time
from pathlib import Path

import dagster as dg
from pydantic import BaseModel, ValidationError

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


class FolderCursor(BaseModel):
    """The inventory sensor's cursor: the folder state last seen and how many changes it has seen.

    ``digest``: ``folder_fingerprint``'s digest of the last state acted on (None before the first tick).
    ``changes``: how many times the folder's state has changed since ``started_ms``; it only ever grows, so
    a folder that returns to an earlier state (a file dropped, then removed) gets a run key never used before.
    ``started_ms``: epoch ms when this cursor was first made; part of the run key, so a cursor reset in the
    UI (``changes`` from 0 again) cannot reuse an earlier run's key either.
    """

    digest: str | None = None
    changes: int = 0
    started_ms: int

    @classmethod
    def read(cls, raw: str | None, now_ms: int | None = None) -> "FolderCursor":
        """The stored cursor; a fresh one for None; a bare digest (the cursor before ``changes`` existed) is
        taken as that digest with no changes counted. Raises ``ValueError`` for anything else."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if not raw:
            return cls(started_ms=now_ms)
        if not raw.lstrip().startswith("{"):
            return cls(digest=raw, started_ms=now_ms)
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"unreadable inventory sensor cursor {raw!r}: reset it in the UI ({exc})") from exc

    def changed_to(self, digest: str) -> "FolderCursor":
        """The cursor after the folder was seen in state ``digest`` (a change only if it differs)."""
        if digest == self.digest:
            return self
        return self.model_copy(update={"digest": digest, "changes": self.changes + 1})

    def run_key(self, tenant_id: str) -> str:
        """``<tenant>:inventory:<started_ms>.<changes>:<digest[:16]>``: unique per change, not per state."""
        return f"{tenant_id}:inventory:{self.started_ms}.{self.changes}:{(self.digest or '')[:16]}"


def build_inventory_sensor(tenant: Tenant, settings: Settings | None = None) -> dg.SensorDefinition:
    """Watches ``tenant.inventory_dir``; a new, changed or removed file launches one materialization.

    The cursor is a ``FolderCursor``: the digest of the folder's files (name, size, mtime) and a count of the
    changes seen. The run key names the change, not the state: one change is loaded once, however many ticks
    see it, and every change is loaded, also one back to an earlier state (a file dropped, then removed).
    An empty folder moves the cursor and launches nothing (the asset refuses to load an empty inventory).
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
        before = FolderCursor.read(context.cursor)
        cursor = before.changed_to(digest)
        if cursor is before:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no change in {folder}"))
        if not names:
            context.log.warning(f"{folder} holds no inventory files; system_inventory is left as it is")
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no inventory files in {folder}"),
                                   cursor=cursor.model_dump_json())
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=cursor.run_key(tenant.tenant_id), asset_selection=[key],
                                        tags={"tenant": tenant.tenant_id, "inventory_files": ", ".join(names)[:200]})],
            cursor=cursor.model_dump_json())

    return inventory_file_sensor
