"""Validation of the data team's inventory files (polars), pure: rows in, accepted rows and rejections out."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import polars as pl

REQUIRED_COLUMNS = ("ip_address",)
OPTIONAL_COLUMNS = ("hostname", "role", "client", "location")


class InventoryFileError(ValueError):
    """The file as a whole is unusable (unreadable, or a required column is missing)."""


@dataclass(frozen=True)
class Rejection:
    """A row that was not loaded: ``line`` is the 1-based line in the file (header = line 1)."""

    line: int
    ip_address: str | None
    reason: str


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
        if str(path).endswith(".parquet"):
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


def validate_inventory(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Rejection]]:
    """(accepted rows with canonical ``ip_address``, rejections). A repeated address keeps its first row."""
    accepted: list[dict] = []
    rejected: list[Rejection] = []
    first_line: dict[str, int] = {}
    for index, row in enumerate(frame.iter_rows(named=True)):
        line = index + 2
        raw = row["ip_address"]
        try:
            address = parse_address(raw or "")
        except ValueError as exc:
            rejected.append(Rejection(line, raw, str(exc)))
            continue
        if address in first_line:
            rejected.append(Rejection(line, raw, f"duplicate of line {first_line[address]}"))
            continue
        first_line[address] = line
        cleaned = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in row.items()}
        cleaned["ip_address"] = address
        accepted.append(cleaned)
    schema = {c: pl.Utf8 for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
    return pl.DataFrame(accepted, schema=schema), rejected
