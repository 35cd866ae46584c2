"""Redaction before the LLM: what is found, what is kept, what comes back in the posted note."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enhancement_pipeline.enhancement.redaction import PLACEHOLDER, Redactor

TICKET = """Hi Fox,

Outlook on 10.20.30.40 keeps asking for a password since the update to 16.0.4266.1001 (ticket 123640000000000017).
Reach me at dana.scully@contoso.example or +1 415 555 2671, desk (212) 555-0143.
The old password is Welcome2024! and the service account uses pwd=Sup3rS3cret.
Connection string: Server=sql01;Database=crm;User Id=svc_crm;Password=P@ssw0rd!42;
Backup job: postgresql://backup:Tr0ub4dor@db.contoso.example:5432/crm
GitHub token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 and AWS key AKIAIOSFODNN7EXAMPLE.
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXBhcnQ
-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAuX3v
-----END RSA PRIVATE KEY-----
The password is expired, the token was revoked.

Regards,
Walter Skinner"""

CANARIES = {
    "PERSON": ["Fox", "Dana Scully", "Scully", "Walter Skinner"],
    "EMAIL": ["dana.scully@contoso.example"],
    "PHONE": ["+1 415 555 2671", "(212) 555-0143"],
    "SECRET": ["Welcome2024!", "Sup3rS3cret", "P@ssw0rd!42", "Tr0ub4dor", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
               "AKIAIOSFODNN7EXAMPLE", "eyJhbGciOiJIUzI1NiJ9", "MIIEowIBAAKCAQEAuX3v"],
}


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(people=["Dana Scully", "Fox Mulder"], keep=["123640000000000017"])


def test_every_kind_of_personal_data_and_secret_is_replaced(redactor):
    text = redactor.redact(TICKET + "\nDana Scully, again.")
    for kind, values in CANARIES.items():
        for value in values:
            assert value not in text, f"{kind} {value!r} survived"
    assert redactor.counts["EMAIL"] == 1 and redactor.counts["PHONE"] == 2
    assert redactor.counts["SECRET"] >= 8


def test_what_the_technician_needs_stays(redactor):
    text = redactor.redact(TICKET)
    for kept in ("10.20.30.40", "16.0.4266.1001", "123640000000000017", "db.contoso.example:5432",
                 "User Id=svc_crm", "The password is expired, the token was revoked.", "Outlook"):
        assert kept in text


def test_placeholders_are_stable_and_restored_except_secrets(redactor):
    first = redactor.redact("Mail dana.scully@contoso.example, password: Hunter2x!")
    second = redactor.redact("Again dana.scully@contoso.example")
    email = PLACEHOLDER.search(second).group(0)
    secret = re.search(r"\[SECRET_\d+\]", first).group(0)
    assert email in first and email.startswith("[EMAIL_")
    note = f"Reply to {email}; the password was {secret}; see [EMAIL_9]."
    restored = redactor.restore(note)
    assert "dana.scully@contoso.example" in restored
    assert "Hunter2x!" not in restored and "[secret withheld]" in restored
    assert "[unknown]" in restored  # a placeholder this redactor never handed out


def test_a_tenant_may_hide_addresses_and_hostnames_too():
    r = Redactor(keep_ip_addresses=False, keep_hostnames=False, hosts=["CD-EXCH01"])
    text = r.redact("CD-EXCH01 (192.168.0.12) relays for mail.contoso.example; 2001:db8::7 too")
    for value in ("CD-EXCH01", "192.168.0.12", "mail.contoso.example", "2001:db8::7"):
        assert value not in text
    assert r.restore(text) == "CD-EXCH01 (192.168.0.12) relays for mail.contoso.example; 2001:db8::7 too"


def test_scrub_removes_values_for_searches(redactor):
    assert redactor.scrub("Outlook crash, call +1 415 555 2671 - Dana Scully") == "Outlook crash, call -"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_redact_then_restore_gives_back_everything_but_secrets(text):
    r = Redactor(people=["Dana Scully"])
    restored = r.restore(r.redact(text))
    if not r.counts.get("SECRET") and not PLACEHOLDER.search(text):
        assert restored == text


def test_names_in_any_case_cued_names_everywhere_and_non_english_secrets():
    r = Redactor(people=["Dana Scully"])
    text = r.redact("DANA SCULLY and dana wrote from jürgen.müller@contoso.de. Passwort: Geheim123! "
                    "https://acct.blob.core.windows.net/c?sv=2022&sig=AbCdEf0123456789abcdef%2B%3D&se=1\n"
                    "Walter will call back.\nRegards,\nWalter Skinner")
    for value in ("DANA", "dana", "jürgen.müller@contoso.de", "Geheim123!", "AbCdEf0123456789", "Walter"):
        assert value not in text, value
    assert r.counts["PERSON"] == 4  # Dana Scully, Dana (one person whatever the case), Walter Skinner, Walter


def test_words_that_only_start_like_a_keyword_stay():
    r = Redactor()
    text = "Azure AD pass-through authentication, the password-reset portal and token-based sign-in"
    assert r.redact(text) == text
