"""IP addresses in ticket text. Pure functions.

Candidates are found by pattern and then decided by the standard library's ``ipaddress``, which owns the
grammar (octets <= 255, every IPv6 form: ``::`` compression, zone ids, IPv4-mapped). The patterns only make
sure a candidate is a whole token: ``10.2.3.4.5`` (a version string) is not an address.
"""

from __future__ import annotations

import ipaddress
import re

_V4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w]|\.\d)")
_V6 = re.compile(
    r"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?:%[\w.\-]+)?)(?![\w:.])"
)
# "Version=8.0.0.0", "AppVersion":"4.13.132.0", "build 15.0.0.0", "RTCC/7.0.0.0" (a User-Agent product token):
# dotted quads that are versions, not hosts.
_VERSION_BEFORE = re.compile(r"(?i)(?:(?:version|\bbuild|\bver)\W{0,4}|[a-z]/)$")


def extract_ips(text: str) -> list[str]:
    """Distinct IP addresses in ``text`` in order of first appearance, in canonical form.

    IPv4-mapped IPv6 (``::ffff:10.0.0.5``) is reported as its IPv4 address; a zone id (``fe80::1%eth0``) is
    dropped, since inventory records do not carry one. Unspecified addresses (``0.0.0.0``, ``::``) and
    dotted quads announced as versions are skipped.
    """
    found: list[tuple[int, str]] = []
    for match in _V4.finditer(text):
        if _VERSION_BEFORE.search(text[max(0, match.start() - 16):match.start()]):
            continue
        try:
            found.append((match.start(), str(ipaddress.IPv4Address(match.group(1)))))
        except ValueError:
            continue
    for match in _V6.finditer(text):
        candidate = match.group(1).split("%", 1)[0]
        if candidate.count(":") < 2:
            continue
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        mapped = address.ipv4_mapped
        found.append((match.start(), str(mapped) if mapped else address.compressed))
    seen: dict[str, None] = {}
    for _, address in sorted(found):
        if ipaddress.ip_address(address).is_unspecified:
            continue
        seen.setdefault(address, None)
    return list(seen)
