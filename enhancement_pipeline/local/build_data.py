"""Build the data subsets the project ships in ``enhancement_pipeline/local/data/`` (a maintainer's step).

Reads the real public data in ``../shared/data/`` (see its READMEs) and writes only what the licences let
us redistribute, with attribution in ``local/data/ATTRIBUTION.md``:

- ``ms_support_articles.jsonl.gz``: Microsoft support articles (CC BY 4.0), the fields the demo and the KB use,
  symptoms, cause and resolution without docs-site boilerplate (``doc_cleanup``);
- ``gnome_help_kb.jsonl.gz``: GNOME Help and System Administration Guide (CC BY-SA 3.0), unchanged;
- ``tldr_kb.jsonl.gz``: tldr-pages, windows and linux platforms (CC BY 4.0);
- ``system_inventory.csv``: a generated inventory (no public real one exists), built so that the real IP
  addresses in the held-out Microsoft articles belong to plausible systems.

The Endava and Mendeley tickets have no clear licence and are never copied here.

Run: ``python -m enhancement_pipeline.local.build_data [--shared ../shared/data]``. The output is committed;
the demo and tests never need ``../shared/data``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import ipaddress
import json
import random
from pathlib import Path

from enhancement_pipeline.local.doc_cleanup import clean_article_markdown
from enhancement_pipeline.settings import PACKAGED_DATA_DIR, PROJECT_ROOT

MS_FIELDS = ("id", "product", "title", "h1", "summary", "sap_category", "symptoms", "cause", "resolution",
             "url_guess", "original_kb")

# Real systems named by the IPs in held-out articles' symptoms (IIS logs, SMTP logs, SIP headers, audit JSON).
_ANCHORS = [
    ("10.10.10.1", "FAB-EXHYB01", "Exchange 2016 hybrid server (EWS/MRS proxy)", "Fabrikam Legal", "London DC rack A4"),
    ("10.10.10.12", "FAB-ADM-WS12", "Admin workstation (migration batches)", "Fabrikam Legal", "London office 2F"),
    ("10.152.152.166", "NW-CAS02", "Exchange client access / availability proxy", "Northwind Logistics",
     "Rotterdam DC"),
    ("192.168.0.12", "CD-EXCH01", "Exchange 2016 mailbox server", "Contoso Dental Group", "Leeds server room"),
    ("192.168.0.1", "CD-FW01", "Perimeter firewall / default gateway", "Contoso Dental Group", "Leeds server room"),
    ("192.168.0.53", "CD-MTR-BOARDROOM", "Microsoft Teams Rooms console", "Contoso Dental Group", "Leeds boardroom"),
    ("192.168.1.190", "TS-SFB-FE01", "Skype for Business 2019 front end", "Tailspin Clinics", "Bristol DC"),
    ("192.168.1.1", "TS-SBC01", "Session border controller / gateway", "Tailspin Clinics", "Bristol DC"),
]
_NETWORKS = [
    ("10.10.10.0/24", "Fabrikam Legal", "Server VLAN 10", "London DC"),
    ("10.152.152.0/24", "Northwind Logistics", "Messaging VLAN", "Rotterdam DC"),
    ("192.168.0.0/24", "Contoso Dental Group", "Head office LAN", "Leeds"),
    ("192.168.1.0/24", "Tailspin Clinics", "Core LAN", "Bristol"),
    ("172.16.20.0/22", "Woodgrove Accountants", "Office LAN", "Manchester"),
    ("2001:db8:4a10::/48", "Fabrikam Legal", "IPv6 server range", "London DC"),
]
_ROLES = [("DC", "Domain controller"), ("FS", "File server"), ("PRN", "Print server"), ("SQL", "SQL Server"),
          ("RDS", "Remote Desktop session host"), ("APP", "Line-of-business app server"), ("NAS", "Backup NAS"),
          ("SW", "Core switch"), ("AP", "Wireless access point"), ("WS", "Workstation")]
_PREFIX = {"Fabrikam Legal": "FAB", "Northwind Logistics": "NW", "Contoso Dental Group": "CD",
           "Tailspin Clinics": "TS", "Woodgrove Accountants": "WG"}


def _subset(source: Path, target: Path, fields: tuple[str, ...], keep=lambda row: True,
            clean: tuple[str, ...] = ()) -> int:
    """Copy the rows of a .jsonl.gz that ``keep`` accepts, with only ``fields`` (those in ``clean`` without
    documentation boilerplate, ``doc_cleanup``); returns the row count."""
    with gzip.open(source, "rt") as fh:
        rows = [{k: clean_article_markdown(row.get(k)) if k in clean else row.get(k) for k in fields}
                for row in map(json.loads, fh) if keep(row)]
    _write_jsonl(target, rows)
    return len(rows)


def build_ms(shared: Path, out: Path) -> int:
    return _subset(shared / "kb-ms-office-support" / "ms_office_support_kb.jsonl.gz",
                   out / "ms_support_articles.jsonl.gz", MS_FIELDS, clean=("symptoms", "cause", "resolution"))


def build_tldr(shared: Path, out: Path) -> int:
    return _subset(shared / "kb-tldr" / "tldr_kb.jsonl.gz", out / "tldr_kb.jsonl.gz",
                   ("id", "platform", "title", "summary", "url", "page_url", "text"),
                   keep=lambda page: page["platform"] in ("windows", "linux"))


def build_gnome(shared: Path, out: Path) -> int:
    # Index pages (page_type "guide") carry no how-to text.
    return _subset(shared / "kb-gnome-help" / "gnome_help_kb.jsonl.gz", out / "gnome_help_kb.jsonl.gz",
                   ("id", "title", "summary", "url", "text"), keep=lambda page: page.get("page_type") != "guide")


def build_inventory(out: Path, seed: int = 20261122) -> int:
    """A plausible MSP inventory: the anchor hosts, their networks, and generated hosts per client."""
    rng = random.Random(seed)
    rows = [{"ip_address": ip, "hostname": h, "role": r, "client": c, "location": loc} for ip, h, r, c, loc in _ANCHORS]
    taken = {r["ip_address"] for r in rows}
    for network, client, role, location in _NETWORKS:
        rows.append({"ip_address": network, "hostname": "", "role": role, "client": client, "location": location})
        net = ipaddress.ip_network(network)
        if net.version == 6:
            hosts = [net[i] for i in (0x10, 0x11, 0x20, 0x21)]
        else:
            hosts = [net[i] for i in rng.sample(range(2, min(net.num_addresses - 1, 1000)), 40)]
        for n, host in enumerate(hosts, start=1):
            if str(host) in taken:
                continue
            code, role_name = rng.choice(_ROLES)
            rows.append({"ip_address": str(host), "hostname": f"{_PREFIX[client]}-{code}{n:02d}",
                         "role": role_name, "client": client, "location": location})
            taken.add(str(host))
    with (out / "system_inventory.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["ip_address", "hostname", "role", "client", "location"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as fh:  # mtime=0: byte-identical rebuilds
        for row in rows:
            fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    if not args.shared.is_dir():
        raise SystemExit(f"{args.shared} not found: point --shared at the shared/data folder "
                         "(the shipped files in local/data/ are enough to run everything)")
    PACKAGED_DATA_DIR.mkdir(parents=True, exist_ok=True)
    print("ms articles", build_ms(args.shared, PACKAGED_DATA_DIR))
    print("tldr pages", build_tldr(args.shared, PACKAGED_DATA_DIR))
    print("gnome pages", build_gnome(args.shared, PACKAGED_DATA_DIR))
    print("inventory rows", build_inventory(PACKAGED_DATA_DIR))


if __name__ == "__main__":
    main()
