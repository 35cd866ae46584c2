"""system_inventory: validation with polars, load into Postgres, lookup by host and subnet."""

from __future__ import annotations

import dagster as dg
import pytest

from enhancement_pipeline.inventory.assets import system_inventory
from enhancement_pipeline.inventory.lookup import lookup_systems
from enhancement_pipeline.inventory.validation import (
    InventoryFileError,
    read_inventory_file,
    validate_inventory,
)
from enhancement_pipeline_tests.conftest import TENANT

CSV = """ip_address,hostname,role,client,location
10.0.0.0/24,,Office LAN,Contoso,Leeds
10.0.0.5,CD-DC01,Domain controller,Contoso,Leeds
10.0.0.300,BAD-01,typo,Contoso,Leeds
10.0.0.7/24,AMBIG,host with a mask,Contoso,Leeds
,EMPTY,,Contoso,Leeds
10.0.0.5,DUP,duplicate,Contoso,Leeds
2001:db8::10,V6-HOST,Web server,Fabrikam,London
"""


def materialize(resources, path, tenant=TENANT):
    return dg.materialize([system_inventory], resources=resources,
                          run_config={"ops": {"system_inventory": {"config": {"path": str(path),
                                                                              "tenant_id": tenant}}}})


def test_bad_rows_are_rejected_with_reasons_and_counted(tmp_path, db, resources):
    path = tmp_path / "inventory.csv"
    path.write_text(CSV)
    result = materialize(resources, path)
    meta = result.asset_materializations_for_node("system_inventory")[0].metadata
    assert meta["rows_loaded"].value == 3 and meta["rows_rejected"].value == 4
    table = meta["rejected_rows"].value
    assert "| 4 | `10.0.0.300`" in table and "duplicate of line 3" in table and "ip_address is empty" in table
    assert db.execute("SELECT count(*) FROM system_inventory WHERE tenant_id = %s", (TENANT,)).fetchone()[0] == 3


def test_host_matches_its_own_record_then_its_subnet(tmp_path, db, resources):
    path = tmp_path / "inventory.csv"
    path.write_text(CSV)
    materialize(resources, path)
    found = lookup_systems(db, TENANT, ["10.0.0.5", "10.0.0.99", "2001:db8::10", "172.16.0.1"])
    assert [(s.ip_address, s.matched, s.hostname or s.role) for s in found] == [
        ("10.0.0.5", "10.0.0.5", "CD-DC01"),
        ("10.0.0.99", "10.0.0.0/24", "Office LAN"),
        ("2001:db8::10", "2001:db8::10", "V6-HOST"),
    ]
    assert lookup_systems(db, "another-tenant", ["10.0.0.5"]) == []


def test_reload_tracks_changes_and_deletions(tmp_path, db, resources):
    path = tmp_path / "inventory.csv"
    path.write_text("ip_address,hostname\n10.1.0.1,A\n10.1.0.2,B\n")
    materialize(resources, path)
    stamp = dict(db.execute("SELECT host(ip_address), updated_at FROM system_inventory").fetchall())
    path.write_text("ip_address,hostname\n10.1.0.1,A\n10.1.0.3,C-renamed\n")
    meta = materialize(resources, path).asset_materializations_for_node("system_inventory")[0].metadata
    assert (meta["inserted"].value, meta["updated"].value, meta["unchanged"].value, meta["deleted"].value) == (1, 0, 1, 1)
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
