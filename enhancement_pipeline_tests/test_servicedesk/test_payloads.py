"""Parsing SDP payloads: lenient where the meaning is unambiguous, a named error where it is not, and text cleaned
and bounded at the edge (``to_ticket``). Pure: no services."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enhancement_pipeline.servicedesk.payloads import (
    MAX_DESCRIPTION_CHARS,
    MAX_SUBJECT_CHARS,
    PayloadError,
    clean_text,
    description_text,
    parse_request,
    to_ticket,
)
from enhancement_pipeline.servicedesk.polling import raw_request_id, raw_text

MILLIS = 1712345678000


def record(**fields) -> dict:
    base = {"id": "123640000000000001", "display_id": "1", "subject": "Printer down",
            "description": "<p>Floor 2</p>", "status": {"id": "1", "name": "Open"},
            "requester": {"id": "2", "name": "Ada Lovelace"},
            "created_time": {"display_value": "Apr 05, 2024 07:34 PM", "value": str(MILLIS)}}
    return {**base, **fields}


def ticket(**fields):
    return to_ticket("acme", parse_request(record(**fields)))


@pytest.mark.parametrize("created", [MILLIS, str(MILLIS), float(MILLIS), {"value": MILLIS},
                                     {"display_value": "x", "value": f" {MILLIS} "}])
def test_a_datetime_sent_as_a_number_is_its_epoch_millis(created):
    request = parse_request(record(created_time=created))
    assert request.created_millis == MILLIS
    assert to_ticket("acme", request).created_at.year == 2024


@pytest.mark.parametrize("created", [{"display_value": "yesterday"}, {"value": "yesterday"}, "yesterday",
                                     True, [MILLIS], 1.5])
def test_a_datetime_that_cannot_be_read_is_a_named_error(created):
    with pytest.raises(PayloadError, match=r"request '123640000000000001': invalid fields: created_time"):
        parse_request(record(created_time=created))


def test_numbers_and_nulls_where_text_belongs():
    assert ticket(subject=4711).subject == "4711"
    assert ticket(subject=3.5).subject == "3.5"
    assert ticket(subject=None).subject == ""
    assert ticket(description=None).description == ""
    assert ticket(id=42, display_id=7).ticket_id == "42"


def test_a_lookup_sent_as_a_string_is_its_name():
    assert ticket(status="On Hold").status == "On Hold"
    assert ticket(status=None).status is None
    assert ticket(status="").status is None
    assert ticket(requester="Grace Hopper").requester == "Grace Hopper"
    assert ticket(requester=None).requester is None
    assert ticket(requester={"id": 5, "name": None}).requester is None
    assert ticket(technician=12).technician == "12"


@pytest.mark.parametrize("fields, named", [({"status": ["Open"]}, "status"), ({"subject": {"x": 1}}, "subject"),
                                           ({"id": None}, "id"), ({"requester": True}, "requester")])
def test_what_has_no_clear_meaning_is_an_error_naming_the_field_not_its_value(fields, named):
    with pytest.raises(PayloadError) as err:
        parse_request(record(**fields))
    assert named in str(err.value) and "Open" not in str(err.value)


def test_a_payload_that_is_not_an_object_is_a_payload_error():
    with pytest.raises(PayloadError, match="JSON object"):
        parse_request(["not", "a", "request"])


def test_control_characters_go_tabs_and_newlines_stay():
    t = ticket(subject="Disk\x00 full\x07\x1b[0m", description="a\x00b\tc\r\nd\re\x0c\x7f\x85f\ud800g")
    assert t.subject == "Disk full[0m"
    assert t.description == "ab\tc\nd\nefg"
    assert "\x00" not in t.subject + t.description


def test_html_only_emoji_and_right_to_left_text():
    assert ticket(description="<div><img src='x.png'><style>p {}</style></div>").description == ""
    t = ticket(subject="🔥 Server down 🔥", description="<p>שלום, השרת לא עונה</p><p>مرحبا 👋</p>")
    assert t.subject == "🔥 Server down 🔥"
    assert t.description == "שלום, השרת לא עונה\nمرحبا 👋"


def test_a_long_description_is_cut_and_says_so():
    html = "<p>" + "disk error on node-7; " * 250_000 + "</p>"  # 5.5 MB
    t = ticket(description=html)
    assert len(t.description) <= MAX_DESCRIPTION_CHARS and t.description_cut
    assert len(t.description) > MAX_DESCRIPTION_CHARS * 0.9
    assert t.description_chars == len(html)
    assert t.description.startswith("disk error on node-7;") and t.description.endswith("node-7;")  # at a word break
    short = ticket()
    assert not short.description_cut and short.description_chars == len("<p>Floor 2</p>")


def test_one_giant_line_is_cut_at_the_cap():
    t = ticket(description="x" * 500_000)
    assert t.description == "x" * MAX_DESCRIPTION_CHARS and t.description_cut


def test_a_long_subject_is_cut():
    t = ticket(subject="word " * 1_000)
    assert len(t.subject) <= MAX_SUBJECT_CHARS and t.subject.startswith("word word")


def test_text_before_a_huge_tag_is_not_lost():
    # A pasted screenshot as a data: URI is megabytes of one tag; the text around it is the description.
    html = "<p>before</p><img src='data:image/png;base64," + "A" * 3_000_000 + "'><p>after</p>"
    text, cut = description_text(html)
    assert text == "before\nafter" and not cut


def test_resolution_text_is_cleaned_and_cut():
    request = parse_request(record())
    t = to_ticket("acme", request, "step 1\x00\r\nstep 2 " + "z" * 30_000)
    assert t.resolution.startswith("step 1\nstep 2") and len(t.resolution) <= MAX_DESCRIPTION_CHARS


@given(st.text())
def test_clean_text_leaves_no_control_character_nor_surrogate(text):
    cleaned = clean_text(text)
    assert all(c in "\t\n" or not (ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0xd800 <= ord(c) <= 0xdfff)
               for c in cleaned)
    cleaned.encode("utf-8")  # PostgreSQL (and any UTF-8 wire) takes it


@given(st.text(max_size=300), st.text(max_size=300))
def test_any_text_makes_a_ticket(subject, description):
    t = ticket(subject=subject, description=description)
    assert "\x00" not in t.subject + t.description
    assert len(t.description) <= MAX_DESCRIPTION_CHARS


def test_raw_row_helpers():
    assert raw_request_id({"id": 7}) == "7" and raw_request_id({"id": " 8 "}) == "8"
    assert raw_request_id({"id": ""}) is None and raw_request_id({"id": {"x": 1}}) is None
    assert raw_request_id({}) is None and raw_request_id("row") is None
    assert raw_text({"status": "Closed"}, "status", "name") == "Closed"
    assert raw_text({"status": {"name": "Closed"}}, "status", "name") == "Closed"
    assert raw_text({"status": ["Closed"]}, "status", "name") is None
    assert raw_text({"display_id": 12}, "display_id") == "12"
