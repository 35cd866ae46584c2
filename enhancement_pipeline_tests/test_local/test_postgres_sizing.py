"""The embedded PostgreSQL's memory settings: the PGTune-style rules, where the memory figure comes from
(parameter, ``EMBEDDED_POSTGRES_MEMORY``, cgroup limit, RAM), and that a started server runs with them."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from enhancement_pipeline.local import services
from enhancement_pipeline.local.services import (
    EmbeddedPostgres,
    GiB,
    MiB,
    parse_memory,
    postgres_memory_settings,
)


def test_a_24_gib_machine_gets_a_quarter_as_shared_buffers() -> None:
    assert postgres_memory_settings(24 * GiB) == {
        "shared_buffers": "6144MB",           # 25 %
        "effective_cache_size": "18432MB",    # 75 %
        "maintenance_work_mem": "1536MB",     # 1/16
        "work_mem": "30MB",                   # 18 GiB / (200 connections * 3)
    }


def test_maintenance_work_mem_stops_at_2_gb_and_work_mem_follows_connections() -> None:
    big = postgres_memory_settings(128 * GiB)
    assert big["maintenance_work_mem"] == "2048MB"
    assert big["shared_buffers"] == "32768MB"
    assert postgres_memory_settings(24 * GiB, max_connections=100)["work_mem"] == "61MB"


def test_a_small_server_never_goes_below_postgres_defaults() -> None:
    small = postgres_memory_settings(256 * MiB)
    assert small == {"shared_buffers": "128MB", "effective_cache_size": "192MB", "maintenance_work_mem": "64MB",
                     "work_mem": "4MB"}


def test_settings_grow_with_memory() -> None:
    def mb(settings: dict[str, str]) -> list[int]:
        return [int(v.removesuffix("MB")) for v in settings.values()]

    sizes = [mb(postgres_memory_settings(n * GiB)) for n in (1, 2, 4, 8, 16, 32, 64)]
    for smaller, larger in zip(sizes, sizes[1:], strict=False):
        assert all(a <= b for a, b in zip(smaller, larger, strict=True))


@pytest.mark.parametrize(("text", "expected"), [
    ("2GB", 2 * GiB), ("512MB", 512 * MiB), ("640kB", 640 * 1024), ("1048576", MiB), (" 3 gb ", 3 * GiB),
])
def test_parse_memory(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "2.5GB", "lots", "-1GB", "2 GiB"])
def test_parse_memory_rejects_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        parse_memory(text)


def _cgroup_files(tmp_path: Path, proc_lines: str, files: dict[str, str]) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "cgroup"
    proc.write_text(proc_lines)
    root = tmp_path / "sys"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    return proc, root


def test_cgroup_v2_limit_is_the_tightest_on_the_way_to_the_root(tmp_path: Path) -> None:
    proc, root = _cgroup_files(tmp_path, "0::/app/worker\n", {
        "memory.max": "max", "app/memory.max": str(8 * GiB), "app/worker/memory.max": "max"})
    assert services._cgroup_memory_limit(proc, root) == 8 * GiB


def test_cgroup_v1_limit_and_no_limit(tmp_path: Path) -> None:
    proc, root = _cgroup_files(tmp_path / "v1", "4:memory:/box\n3:cpu:/box\n", {
        "memory/memory.limit_in_bytes": "9223372036854771712", "memory/box/memory.limit_in_bytes": str(3 * GiB)})
    assert services._cgroup_memory_limit(proc, root) == 3 * GiB
    # A container sees its own cgroup as the root: the named path is not mounted, the root file is read.
    proc, root = _cgroup_files(tmp_path / "ns", "4:memory:/elsewhere/abc\n0::/\n", {
        "memory/memory.limit_in_bytes": str(2 * GiB)})
    assert services._cgroup_memory_limit(proc, root) == 2 * GiB
    proc, root = _cgroup_files(tmp_path / "none", "0::/\n", {"memory.max": "max"})
    assert services._cgroup_memory_limit(proc, root) is None
    assert services._cgroup_memory_limit(tmp_path / "missing", root) is None


def test_machine_memory_respects_a_cgroup_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    monkeypatch.setattr(services, "_cgroup_memory_limit", lambda: None)
    assert services.machine_memory_bytes() == ram
    monkeypatch.setattr(services, "_cgroup_memory_limit", lambda: 2 * GiB)
    assert services.machine_memory_bytes() == min(ram, 2 * GiB)


def test_memory_comes_from_the_parameter_then_the_environment_then_the_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "machine_memory_bytes", lambda: 64 * GiB)
    monkeypatch.delenv(services.POSTGRES_MEMORY_ENV, raising=False)
    assert EmbeddedPostgres(tmp_path).memory_settings() == postgres_memory_settings(64 * GiB)
    monkeypatch.setenv(services.POSTGRES_MEMORY_ENV, "2GB")
    assert EmbeddedPostgres(tmp_path).memory_settings() == postgres_memory_settings(2 * GiB)
    assert EmbeddedPostgres(tmp_path, memory_bytes=GiB).memory_settings() == postgres_memory_settings(GiB)


def test_the_started_server_runs_with_its_settings(postgres: EmbeddedPostgres) -> None:
    # The session's server (conftest) is sized for 1 GB.
    with psycopg.connect(postgres.url()) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in postgres.memory_settings()}
    assert shown == postgres_memory_settings(GiB) == {
        "shared_buffers": "256MB", "effective_cache_size": "768MB", "maintenance_work_mem": "64MB",
        "work_mem": "4MB"}
