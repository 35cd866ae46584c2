"""system_inventory: validation with polars, load into Postgres, lookup by host and subnet, the folder sensor."""

from __future__ import annotations

import dagster as dg
import pytest

from enhancement_pipeline.inventory.lookup import lookup_systems
from enhancement_pipeline.inventory.validation import (
    InventoryFileError,
    read_inventory_file,
    validate_inventory,
)
from enhancement_pipeline_tests.conftest import TENANT
from enhancement_pipeline_tests.helpers import inventory_asset

CSV = """ip_address,hostname,role,client,location
10.0.0.0/24,,Office LAN,Contoso,Leeds
10.0.0.5,CD-DC01,Domain controller,Contoso,Leeds
10.0.0.300,BAD-01,typo,Contoso,Leeds
10.0.0.7/24,AMBIG,host with a mask,Contoso,Leeds
,EMPTY,,Contoso,Leeds
10.0.0.5,DUP,duplicate,Contoso,Leeds
2001:db8::10,V6-HOST,Web server,Fabrikam,London
"""


def materialize(resources, tenant, path=None, **kw):
    config = {"ops": {f"{TENANT}__system_inventory": {"config": {"path": str(path)}}}} if path else None
    return dg.materialize([inventory_asset(tenant)], resources=resources, run_config=config, **kw)


def metadata(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(f"{TENANT}__system_inventory")[0]
            .metadata.items()}


def test_bad_rows_are_rejected_with_reasons_counted_and_checked(tmp_path, db, resources, tenant):
    path = tmp_path / "inventory.csv"
    path.write_text(CSV)
    result = materialize(resources, tenant, path)
    meta = metadata(result)
    assert meta["rows_loaded"] == 3 and meta["rows_rejected"] == 4
    table = meta["rejected_rows"]
    assert "| inventory.csv | 4 | `10.0.0.300`" in table and "duplicate of line 3" in table
    assert "ip_address is empty" in table
    assert db.execute("SELECT count(*) FROM system_inventory WHERE tenant_id = %s", (TENANT,)).fetchone()[0] == 3
    check, = result.get_asset_check_evaluations()
    assert check.check_name == "no_rejected_rows" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN and check.metadata["rows_rejected"].value == 4


def test_host_matches_its_own_record_then_its_subnet(tmp_path, db, resources, tenant):
    path = tmp_path / "inventory.csv"
    path.write_text(CSV)
    materialize(resources, tenant, path)
    found = lookup_systems(db, TENANT, ["10.0.0.5", "10.0.0.99", "2001:db8::10", "172.16.0.1"])
    assert [(s.ip_address, s.matched, s.hostname or s.role) for s in found] == [
        ("10.0.0.5", "10.0.0.5", "CD-DC01"),
        ("10.0.0.99", "10.0.0.0/24", "Office LAN"),
        ("2001:db8::10", "2001:db8::10", "V6-HOST"),
    ]
    assert lookup_systems(db, "another-tenant", ["10.0.0.5"]) == []


def test_reload_tracks_changes_and_deletions(tmp_path, db, resources, tenant):
    path = tmp_path / "inventory.csv"
    path.write_text("ip_address,hostname\n10.1.0.1,A\n10.1.0.2,B\n")
    materialize(resources, tenant, path)
    stamp = dict(db.execute("SELECT host(ip_address), updated_at FROM system_inventory").fetchall())
    path.write_text("ip_address,hostname\n10.1.0.1,A\n10.1.0.3,C-renamed\n")
    meta = metadata(materialize(resources, tenant, path))
    assert (meta["inserted"], meta["updated"], meta["unchanged"], meta["deleted"]) == (1, 0, 1, 1)
    after = dict(db.execute("SELECT host(ip_address), updated_at FROM system_inventory").fetchall())
    assert after["10.1.0.1"] == stamp["10.1.0.1"] and "10.1.0.2" not in after


def test_file_without_ip_column_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("host,role\na,b\n")
    with pytest.raises(InventoryFileError, match="missing column"):
        read_inventory_file(str(path))


def test_shipped_inventory_is_valid():
    from enhancement_pipeline.settings import PACKAGED_DATA_DIR

    accepted, rejected = validate_inventory(read_inventory_file(str(PACKAGED_DATA_DIR / "system_inventory.csv")))
    assert rejected == [] and accepted.height > 200


def folder_tenant(tenant, folder):
    return tenant.model_copy(update={"inventory_dir": folder})


def test_a_folder_of_csv_and_parquet_files_is_one_inventory(tmp_path, db, resources, tenant):
    import polars as pl

    (tmp_path / "contoso.csv").write_text("ip_address,hostname,client\n10.2.0.1,CON-DC01,Contoso\n"
                                          "10.2.0.0/16,,Contoso\n")
    pl.DataFrame({"ip_address": ["2001:DB8::20", "10.2.0.1"], "hostname": ["FAB-WEB", "CLASH"],
                  "client": ["Fabrikam", "Fabrikam"]}).write_parquet(tmp_path / "fabrikam.parquet")
    (tmp_path / ".contoso.csv.swp").write_text("not,inventory\n")
    (tmp_path / "notes.txt").write_text("ignored")
    result = materialize(resources, folder_tenant(tenant, tmp_path))
    meta = metadata(result)
    assert meta["files"] == "contoso.csv, fabrikam.parquet"
    assert meta["rows_loaded"] == 3 and meta["rows_rejected"] == 1
    assert "| fabrikam.parquet | 3 | `10.2.0.1` | duplicate of contoso.csv line 2 |" in meta["rejected_rows"]
    found = lookup_systems(db, TENANT, ["2001:db8::20", "10.2.99.9"])
    assert [(s.hostname, s.matched) for s in found] == [("FAB-WEB", "2001:db8::20"), (None, "10.2.0.0/16")]


def test_an_empty_folder_or_a_broken_file_changes_nothing(tmp_path, db, resources, tenant):
    (tmp_path / "a.csv").write_text("ip_address,hostname\n10.3.0.1,A\n")
    materialize(resources, folder_tenant(tenant, tmp_path))
    (tmp_path / "a.csv").unlink()
    empty = materialize(resources, folder_tenant(tenant, tmp_path), raise_on_error=False)
    (tmp_path / "b.csv").write_text("host,role\nx,y\n")
    broken = materialize(resources, folder_tenant(tenant, tmp_path), raise_on_error=False)
    assert not empty.success and not broken.success
    assert db.execute("SELECT host(ip_address) FROM system_inventory").fetchall() == [("10.3.0.1",)]


def test_the_sensor_materializes_once_per_state_of_the_folder(tmp_path, db, resources, tenant):
    import os
    import time

    from enhancement_pipeline.inventory.sensors import build_inventory_sensor

    sensor = build_inventory_sensor(folder_tenant(tenant, tmp_path))

    def tick(cursor=None):
        return sensor(dg.build_sensor_context(cursor=cursor))

    def age(path, seconds=60):
        stamp = time.time() - seconds
        os.utime(path, (stamp, stamp))

    empty = tick()
    assert not empty.run_requests
    path = tmp_path / "inventory.csv"
    path.write_text("ip_address\n10.4.0.1\n")
    assert not tick(empty.cursor).run_requests  # still being written, perhaps: wait for it to settle
    age(path)
    first = tick(empty.cursor)
    request, = first.run_requests
    assert request.asset_selection == [dg.AssetKey([TENANT, "system_inventory"])]
    assert request.run_key.startswith(f"{TENANT}:inventory:")
    unchanged = tick(first.cursor)
    assert not unchanged.run_requests
    path.write_text("ip_address\n10.4.0.1\n10.4.0.2\n")
    age(path, 30)
    changed = tick(first.cursor)
    assert changed.run_requests[0].run_key != request.run_key


def test_the_sensor_loads_a_folder_that_returns_to_an_earlier_state(tmp_path, db, resources, tenant):
    """A file dropped, loaded, then removed: the folder is back in its first state, whose run key a digest-only
    key would have used already (the daemon skips a run key it has seen). The removal must load."""
    import os
    import time

    from enhancement_pipeline.inventory.sensors import build_inventory_sensor

    folder = folder_tenant(tenant, tmp_path)
    sensor = build_inventory_sensor(folder)
    instance = dg.DagsterInstance.ephemeral()

    def settled(path):
        stamp = time.time() - 60
        os.utime(path, (stamp, stamp))

    def tick_and_launch(cursor):
        """One tick, and its run requests launched as the daemon does: a run key already used is skipped."""
        result = sensor(dg.build_sensor_context(cursor=cursor, instance=instance))
        launched = []
        for request in result.run_requests or []:
            if instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
                continue
            run = dg.materialize([inventory_asset(folder)], resources=resources, instance=instance,
                                 tags={**request.tags, "dagster/run_key": request.run_key})
            assert run.success
            launched.append(request.run_key)
        return result.cursor, launched

    def hosts():
        return sorted(r[0] for r in db.execute("SELECT host(ip_address) FROM system_inventory WHERE tenant_id = %s",
                                               (TENANT,)))

    (tmp_path / "a.csv").write_text("ip_address,hostname\n10.5.0.1,A\n")
    settled(tmp_path / "a.csv")
    cursor, first = tick_and_launch(None)
    assert len(first) == 1 and hosts() == ["10.5.0.1"]

    (tmp_path / "b.csv").write_text("ip_address,hostname\n10.5.0.2,B\n")
    settled(tmp_path / "b.csv")
    cursor, dropped = tick_and_launch(cursor)
    assert len(dropped) == 1 and hosts() == ["10.5.0.1", "10.5.0.2"]

    (tmp_path / "b.csv").unlink()  # the folder is exactly as it was at the first load
    cursor, removed = tick_and_launch(cursor)
    assert len(removed) == 1 and removed[0] not in first + dropped
    assert hosts() == ["10.5.0.1"]
    assert tick_and_launch(cursor)[1] == []  # and that state is loaded once, however many ticks see it
    assert len(instance.get_runs()) == 3


def test_the_inventory_cursor_reads_the_bare_digest_it_used_to_store():
    from enhancement_pipeline.inventory.sensors import FolderCursor

    old = FolderCursor.read("ab" * 32, now_ms=5)
    assert (old.digest, old.changes, old.started_ms) == ("ab" * 32, 0, 5)
    assert old.changed_to("ab" * 32) is old
    moved = old.changed_to("cd" * 32)
    assert moved.changes == 1 and FolderCursor.read(moved.model_dump_json()) == moved
    assert moved.run_key("acme") == f"acme:inventory:5.1:{'cd' * 8}"
    with pytest.raises(ValueError, match="unreadable inventory sensor cursor"):
        FolderCursor.read('{"digest": 3}')
