"""What ``system_inventory`` knows about a list of IP addresses (one query)."""

from __future__ import annotations

import psycopg

from enhancement_pipeline.models import SystemInfo

# DISTINCT ON + masklen DESC: the most specific record wins (the host's own row over its subnet's).
_LOOKUP = """
SELECT DISTINCT ON (q.ip) host(q.ip), abbrev(i.ip_address), i.hostname, i.role, i.client, i.location
FROM unnest(%s::inet[]) AS q(ip)
JOIN system_inventory AS i ON i.tenant_id = %s AND i.ip_address >>= q.ip
ORDER BY q.ip, masklen(i.ip_address) DESC
"""


def lookup_systems(conn: psycopg.Connection, tenant_id: str, ips: list[str]) -> list[SystemInfo]:
    """Inventory records for ``ips`` (canonical strings), in the order given; unknown IPs are left out."""
    if not ips:
        return []
    rows = conn.execute(_LOOKUP, (ips, tenant_id)).fetchall()
    by_ip = {r[0]: SystemInfo(ip_address=r[0], matched=r[1], hostname=r[2], role=r[3], client=r[4], location=r[5])
             for r in rows}
    return [by_ip[ip] for ip in ips if ip in by_ip]
