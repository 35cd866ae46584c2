"""IP extraction on real ticket text and on the forms the standards allow."""

from __future__ import annotations

import pytest

from enhancement_pipeline.inventory.ip_addresses import extract_ips
from enhancement_pipeline.local.datasets import IP_TICKET_ARTICLES, demo_split
from enhancement_pipeline.servicedesk.payloads import html_to_text


@pytest.mark.parametrize(("text", "expected"), [
    ("ping 10.0.0.5 fails", ["10.0.0.5"]),
    ("server 10.10.10.1, then 10.10.10.1 again", ["10.10.10.1"]),
    ("build 10.2.3.4.5 is out", []),                       # a version string, not an address
    ("host 256.1.1.1 or 1.2.3.999", []),                   # octets over 255
    ("Version=8.0.0.0, Culture=neutral", []),
    ('"AppVersion":"4.13.132.0","IPv4Address":"192.168.0.53"', ["192.168.0.53"]),
    ("User-Agent: RTCC/7.0.0.0 from 192.168.1.1", ["192.168.1.1"]),
    ("fe80::1%eth0 and 2001:db8::1", ["fe80::1", "2001:db8::1"]),
    ("mapped ::ffff:192.168.0.12 is v4", ["192.168.0.12"]),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", ["2001:db8::1"]),
    ("at 10:30:45 the MAC 00:1A:2B:3C:4D:5E changed", []),
    ("bind 0.0.0.0 and ::", []),
    ("[192.168.0.12] and (10.1.1.1).", ["192.168.0.12", "10.1.1.1"]),
])
def test_extracts_whole_valid_addresses(text, expected):
    assert extract_ips(text) == expected


def test_real_ip_tickets_name_their_systems():
    _, new = demo_split()
    by_id = {t.article_id: t for t in new}
    found = {a: extract_ips(html_to_text(by_id[a].description_html)) for a in IP_TICKET_ARTICLES}
    assert found[IP_TICKET_ARTICLES[0]] == ["10.10.10.1", "10.10.10.12"]
    assert "192.168.0.12" in found[IP_TICKET_ARTICLES[2]]
    assert all(found.values())
