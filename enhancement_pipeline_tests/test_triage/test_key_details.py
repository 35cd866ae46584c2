"""Key details of a ticket (issue 14, item 6): examples from real help-desk wording, then hypothesis
properties: every generated code, id, address and number embedded in prose is found once, in canonical
form, and plain prose yields none."""

from __future__ import annotations

import phonenumbers
from hypothesis import given
from hypothesis import strategies as st

from enhancement_pipeline.triage.key_details import key_details

_WORDS = st.sampled_from("the user says outlook crashes when opening a shared mailbox since monday please help "
                         "printer offline again after update restart did not fix it".split())
_PROSE = st.lists(_WORDS, max_size=12).map(" ".join)


def test_a_real_ticket_names_its_details_once_each_in_canonical_form():
    text = ("Outlook 2016 on LAPTOP-7H3K2L fails with 0X80070005 since KB 5034441 was installed. Event ID 4625 "
            "keeps appearing on DC02. https://portal.contoso.com/login answers HTTP 503, then 502 Bad Gateway. "
            "Mail to Bob.Smith@Contoso.com bounced: 550 5.7.1 relay denied. VPN error 809 via 192.168.10.1. "
            "Call me at +44 20 7946 0958. See cve-2024-21413 and version 16.0.17328; the file is report.pdf "
            "on fs01.contoso.local.")
    d = key_details(text)
    assert d.error_codes == ["0x80070005", "event 4625", "HTTP 503", "HTTP 502", "5.7.1", "error 809"]
    assert d.hostnames == ["LAPTOP-7H3K2L", "DC02", "fs01.contoso.local"]  # not report.pdf, not contoso.com
    assert d.emails == ["bob.smith@contoso.com"] and d.phone_numbers == ["+442079460958"]
    assert d.ip_addresses == ["192.168.10.1"] and d.urls == ["https://portal.contoso.com/login"]
    assert d.kb_ids == ["KB5034441", "CVE-2024-21413"]
    assert d.versions == ["Outlook 2016", "version 16.0.17328"]


def test_lookalikes_are_not_details():
    d = key_details("Windows 10 build 5.1.2 installed fine, SHA-256 and UTF-8 are standards, USB30 a port, "
                    "setup.exe a file, step 3 of 4, and 10.2.3.4.5 is a version string.")
    assert d.error_codes == [] and d.hostnames == [] and d.ip_addresses == [] and d.emails == []
    assert d.versions == ["Windows 10", "version 5.1.2"]


@given(before=_PROSE, code=st.integers(0, 2**32 - 1), upper=st.booleans(), after=_PROSE)
def test_any_hresult_in_prose_is_found_once_lower_case(before, code, upper, after):
    written = f"0x{code:08X}" if upper else f"0x{code:08x}"
    d = key_details(f"{before} error {written} {after} ({written})")
    assert [c for c in d.error_codes if c.startswith("0x")] == [f"0x{code:08x}"]


@given(before=_PROSE, number=st.integers(100000, 9999999), space=st.booleans(), year=st.integers(1999, 2030),
       cve=st.integers(1000, 9999999), after=_PROSE)
def test_kb_and_cve_ids_are_found_in_canonical_form(before, number, space, year, cve, after):
    d = key_details(f"{before} kb{' ' if space else ''}{number} {after} Cve-{year}-{cve:04d}.")
    assert d.kb_ids == [f"KB{number}", f"CVE-{year}-{cve:04d}"]
    assert d.hostnames == []


@given(local=st.from_regex(r"[a-z][a-z0-9._-]{0,10}[a-z0-9]", fullmatch=True),
       domain=st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z]", fullmatch=True),
       tld=st.sampled_from(["com", "org", "co.uk", "de", "local"]), before=_PROSE, after=_PROSE)
def test_an_address_is_an_email_and_its_domain_is_not_a_host(local, domain, tld, before, after):
    address = f"{local}@{domain}.{tld}"
    d = key_details(f"{before} {address.upper()} {after}")
    assert d.emails == [address]
    assert d.hostnames == []


@given(region=st.sampled_from(["US", "GB", "DE", "FR", "NL", "AU", "IN"]), before=_PROSE, after=_PROSE)
def test_a_valid_phone_number_of_any_region_is_found_as_e164(region, before, after):
    number = phonenumbers.example_number(region)
    written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    d = key_details(f"{before} call {written} {after}")
    assert d.phone_numbers == [phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)]


@given(text=_PROSE)
def test_plain_prose_names_nothing(text):
    assert key_details(text).empty
