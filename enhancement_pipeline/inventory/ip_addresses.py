"""IP addresses in ticket text. Pure functions.

The standard library's ``ipaddress`` owns the grammar (octets <= 255, no leading zeros, every IPv6 form:
``::`` compression, zone ids, IPv4-mapped and other dotted-quad tails), but it parses one string that is
exactly an address; it cannot find addresses in prose. So patterns find candidate tokens and ``ipaddress``
decides each one. The patterns only make sure a candidate is a whole token: ``10.2.3.4.5`` (a version
string) holds no address, nor does a certificate fingerprint ``aa:bb:…:ff`` with eight-group runs inside.
"""

from __future__ import annotations

import ipaddress
import re

_V4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w]|\.\d)")
# A candidate ends in a group, a dotted quad or "::", never a lone ":", so "fe80::1: timeout" (a log line)
# ends at the 1. Up to 8 "x:" groups: "::" may stand for one group at either end ("::2:3:4:5:6:7:8").
# The zone id is bare (fe80::1%eth0) or RFC 6874's URL-encoded "%25" (http://[fe80::1%25eth0]/); either
# way it is dropped, so "%25eth0" versus zone "25eth0" needs no decision. After the token: no word
# character, no ":" that continues it, and "." only as punctuation (a sentence-final period).
_V6 = re.compile(
    r"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){1,8}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3}|:))(?:%[\w.\-]+)?"
    r"(?![\w]|:[\w:]|\.\w)"
)
# "Version=8.0.0.0", "AppVersion":"4.13.132.0", "build 15.0.0.0", "RTCC/7.0.0.0" (a User-Agent product token):
# dotted quads that are versions, not hosts.
_VERSION_BEFORE = re.compile(r"(?i)(?:(?:version|\bbuild|\bver)\W{0,4}|[a-z]/)$")


def is_ip_address(token: str) -> bool:
    """True when ``token`` is exactly one IPv4 or IPv6 address (``ipaddress``'s grammar: no leading zeros)."""
    try:
        ipaddress.ip_address(token)
    except ValueError:
        return False
    return True


def extract_ips(text: str) -> list[str]:
    """Distinct IP addresses in ``text`` in order of first appearance, in canonical form.

    IPv4 as a dotted quad, IPv6 compressed lower-case (RFC 5952). IPv4-mapped IPv6 (``::ffff:10.0.0.5``) is
    reported as its IPv4 address; a zone id (``fe80::1%eth0``) is dropped, since inventory records do not
    carry one. Unspecified addresses (``0.0.0.0``, ``::``) and dotted quads announced as versions are
    skipped. The dotted tail of an IPv6 address (``64:ff9b::192.0.2.1``) is part of it, not an IPv4
    address of its own.
    """
    found: list[tuple[int, str]] = []
    v6_spans: list[tuple[int, int]] = []
    for match in _V6.finditer(text):
        try:
            address = ipaddress.IPv6Address(match.group(1))
        except ValueError:
            continue
        v6_spans.append(match.span())
        mapped = address.ipv4_mapped
        found.append((match.start(), str(mapped) if mapped else address.compressed))
    for match in _V4.finditer(text):
        if any(start <= match.start() < end for start, end in v6_spans):
            continue
        if _VERSION_BEFORE.search(text[max(0, match.start() - 16):match.start()]):
            continue
        try:
            found.append((match.start(), str(ipaddress.IPv4Address(match.group(1)))))
        except ValueError:
            continue
    seen: dict[str, None] = {}
    for _, address in sorted(found):
        if ipaddress.ip_address(address).is_unspecified:
            continue
        seen.setdefault(address, None)
    return list(seen)
