"""Validation of the data team's inventory files (polars): files in, accepted rows and rejections out.

The data team drops CSV or Parquet files in the tenant's inventory folder; together they are the inventory
(one file per client or site is fine). An address that appears twice, in one file or across files, keeps its
first row in file-name order and the others are rejected, so which row wins never depends on the filesystem.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

INVENTORY_SUFFIXES = (".csv", ".parquet")

REQUIRED_COLUMNS = ("ip_address",)
OPTIONAL_COLUMNS = ("hostname", "role", "client", "location")


class InventoryFileError(ValueError):
    """The file as a whole is unusable (unreadable, or a required column is missing)."""


@dataclass(frozen=True)
class Rejection:
    """A row that was not loaded: ``line`` is the 1-based line in ``file`` (header = line 1; for Parquet,
    the row number + 1, the line it would have in a CSV)."""

    line: int
    ip_address: str | None
    reason: str
    file: str = ""


def inventory_files(location: Path) -> list[Path]:
    """The inventory files at ``location``: the file itself, or a folder's ``*.csv``/``*.parquet`` by name.

    Hidden files and editors' or copiers' temporaries (``.x.csv``, ``x.csv~``, ``x.csv.part``) are not
    inventory. Raises ``InventoryFileError`` when ``location`` does not exist.
    """
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise InventoryFileError(f"inventory location {location} does not exist")
    return sorted(p for p in location.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in INVENTORY_SUFFIXES)


def parse_address(value: str) -> str:
    """A host (``10.0.0.5``, ``fe80::1``) or a network (``10.0.0.0/24``) in canonical form.

    Raises ``ValueError`` with the reason for anything else, including a host address with a prefix
    (``10.0.0.5/24``), which is ambiguous between the host and its network.
    """
    value = value.strip()
    if not value:
        raise ValueError("ip_address is empty")
    if "/" in value:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a network: {exc}") from None
        if network.num_addresses == 1:
            return str(network.network_address)
        return str(network)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None


def read_inventory_file(path: str) -> pl.DataFrame:
    """The file as a string-typed DataFrame (CSV or Parquet). Raises ``InventoryFileError``."""
    try:
        if str(path).lower().endswith(".parquet"):
            frame = pl.read_parquet(path).cast(pl.Utf8)
        else:
            frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InventoryFileError(f"cannot read {path}: {exc}") from exc
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InventoryFileError(f"{path}: missing column(s) {missing}; found {frame.columns}")
    for column in OPTIONAL_COLUMNS:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(column))
    return frame.select(list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS))


def validate_inventory(frame: pl.DataFrame, file: str = "",
                       first_seen: dict[str, tuple[str, int]] | None = None) -> tuple[pl.DataFrame, list[Rejection]]:
    """(accepted rows with canonical ``ip_address``, rejections) of one file's frame.

    A repeated address keeps its first row; ``first_seen`` (address -> (file, line)) carries what earlier
    files accepted, and is updated.
    """
    first_seen = {} if first_seen is None else first_seen
    accepted: list[dict] = []
    rejected: list[Rejection] = []
    for index, row in enumerate(frame.iter_rows(named=True)):
        line = index + 2
        raw = row["ip_address"]
        try:
            address = parse_address(raw or "")
        except ValueError as exc:
            rejected.append(Rejection(line, raw, str(exc), file))
            continue
        if address in first_seen:
            where, first_line = first_seen[address]
            place = f"line {first_line}" if where == file else f"{where} line {first_line}"
            rejected.append(Rejection(line, raw, f"duplicate of {place}", file))
            continue
        first_seen[address] = (file, line)
        cleaned = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in row.items()}
        cleaned["ip_address"] = address
        accepted.append(cleaned)
    schema = {c: pl.Utf8 for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
    return pl.DataFrame(accepted, schema=schema), rejected


def validate_inventory_files(paths: Sequence[Path]) -> tuple[pl.DataFrame, list[Rejection]]:
    """Every file read and validated in order; (all accepted rows, all rejections).

    Raises ``InventoryFileError`` when a file is unreadable or lacks ``ip_address``: the inventory is the
    files together, so loading the others would delete that file's systems.
    """
    first_seen: dict[str, tuple[str, int]] = {}
    frames: list[pl.DataFrame] = []
    rejected: list[Rejection] = []
    for path in paths:
        accepted, rejections = validate_inventory(read_inventory_file(str(path)), path.name, first_seen)
        frames.append(accepted)
        rejected += rejections
    if not frames:
        schema = {c: pl.Utf8 for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
        return pl.DataFrame(schema=schema), rejected
    return pl.concat(frames), rejected
