"""Capture: tolerant keys, loose values, and nothing lost when a value cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.capture import (
    ISO_4217_CODES,
    capture,
    normalise_key,
    parse_amount,
    parse_currency,
    parse_datetime,
)
from bot.domain import CANONICAL_FIELDS, Captured

NO_MAP: dict[str, str] = {}


def one(name: str, value: Any, **field_map: str) -> Captured:
    return capture({name: value}, field_map=field_map)


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("Intent", "intent"),
        ("Refund Amount", "refund_amount"),
        ("refund-amount", "refund_amount"),
        ("Refund.Amount", "refund_amount"),
        ("  Customer  Email ", "customer_email"),
        ("customerEmail", "customer_email"),
        ("IntentConfidence", "intent_confidence"),
        ("VIP", "vip"),
    ],
)
def test_keys_are_matched_tolerantly(key: str, expected: str) -> None:
    assert normalise_key(key) == expected


def test_the_documented_shapes_are_captured() -> None:
    first = capture(
        {
            "intent": "refund_request",
            "amount": "4,500",
            "currency": "INR",
            "invoice_number": "1182",
        },
        field_map=NO_MAP,
    )
    assert first.intent == "refund_request"
    assert first.amount == Decimal(4500)
    assert first.currency == "INR"
    assert first.invoice_number == "1182"
    assert first.unparsed == {}

    second = capture(
        {"Intent": "Invoice Resend", "invoice_number": "INV-77", "email_verified": "true"},
        field_map=NO_MAP,
    )
    assert second.intent == "Invoice Resend"
    assert second.email_verified is True


def test_field_map_puts_agent_names_onto_canonical_fields() -> None:
    captured = capture(
        {"Refund Amount": "$120.50", "Order No.": 1182, "Caller-Email": "A@B.Example"},
        field_map={
            "refund_amount": "amount",
            "order no": "invoice_number",
            "CallerEmail": "customer_email",
        },
    )
    assert captured.amount == Decimal("120.50")
    assert captured.currency == "USD"
    assert captured.invoice_number == "1182"
    assert captured.customer_email == "a@b.example"
    assert captured.extra == {}


def test_unknown_keys_are_kept_as_text_in_extra() -> None:
    captured = capture(
        {"Order Number": 1182, "priority": True, "tags": ["a", "b"], "notes": {"k": 1}},
        field_map=NO_MAP,
    )
    assert captured.extra == {
        "Order Number": "1182",
        "priority": "true",
        "tags": '["a","b"]',
        "notes": '{"k":1}',
    }


def test_the_canonical_name_wins_over_a_mapped_alias_and_the_other_value_stays_visible() -> None:
    captured = capture(
        {"refund_amount": "30", "amount": "25"}, field_map={"refund_amount": "amount"}
    )
    assert captured.amount == Decimal(25)
    assert captured.extra == {"refund_amount": "30"}


def test_the_same_value_under_two_names_is_not_repeated_in_extra() -> None:
    captured = capture(
        {"refund_amount": "30", "Amount": "30"}, field_map={"refund_amount": "amount"}
    )
    assert captured.amount == Decimal(30)
    assert captured.extra == {}


def test_a_mapped_alias_fills_a_missing_canonical_value() -> None:
    captured = capture(
        {"amount": "n/a", "refund_amount": "30"}, field_map={"refund_amount": "amount"}
    )
    assert captured.amount == Decimal(30)
    assert captured.unparsed == {}


def test_a_map_onto_an_unknown_field_keeps_the_value_as_extra() -> None:
    assert capture({"x": "1"}, field_map={"x": "nonsense"}).extra == {"x": "1"}


# --- absent values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [None, "", "  ", "null", "NULL", "None", "n/a", "N/A", "-", [], {}]
)
@pytest.mark.parametrize("name", ["amount", "due_date", "vip", "customer_email", "whatever"])
def test_missing_values_are_absent_not_unparsed(name: str, value: Any) -> None:
    captured = one(name, value)
    assert captured == Captured()


@pytest.mark.parametrize("analysis", [None, [], "not json", 42, "[1, 2]"])
def test_an_unusable_analysis_never_raises(analysis: Any) -> None:
    captured = capture(analysis, field_map=NO_MAP)
    assert captured.amount is None


def test_an_analysis_sent_as_a_json_string_is_read() -> None:
    analysis: Any = '{"amount": "12"}'  # some integrations send the object as a JSON string
    assert capture(analysis, field_map=NO_MAP).amount == Decimal(12)


# --- amounts and currencies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("4,500", "4500", None),
        ("$4,500.00", "4500.00", "USD"),
        ("4500", "4500", None),
        (4500, "4500", None),
        (12.5, "12.5", None),
        (0.1, "0.1", None),
        ("USD 1,234.56", "1234.56", "USD"),
        ("1.234,56", "1234.56", None),
        ("€1.234,56", "1234.56", "EUR"),
        ("1.234.567", "1234567", None),
        ("Rs 4,500", "4500", "INR"),
        ("Rs. 4,500/-", "4500", "INR"),
        ("₹4,500", "4500", "INR"),
        ("1,00,000.50", "100000.50", None),
        ("4500 rupees", "4500", "INR"),
        ("4 500,50", "4500.50", None),
        ("12,5", "12.5", None),
        ("£20", "20", "GBP"),
        ("¥3000", "3000", "JPY"),
        ("20 euros", "20", "EUR"),
        ("-$50", "-50", "USD"),
        ("0.125", "0.125", None),
    ],
)
def test_amounts_in_loose_formats(text: Any, amount: str, currency: str | None) -> None:
    captured = one("amount", text)
    assert captured.amount == Decimal(amount)
    assert captured.currency == currency
    assert captured.unparsed == {}


@pytest.mark.parametrize(
    "text", ["about 50", "4.500", "1,2345", "1,234,56", "50 or 60", "4.5k", "fifty", "12 XYZ", True]
)
def test_an_unreadable_or_ambiguous_amount_is_kept_as_text(text: Any) -> None:
    captured = one("amount", text)
    assert captured.amount is None
    assert captured.unparsed == {"amount": str(text).strip() if text is not True else "true"}


def test_an_explicit_currency_beats_an_ambiguous_symbol() -> None:
    captured = capture({"amount": "$50", "currency": "CAD"}, field_map=NO_MAP)
    assert (captured.amount, captured.currency) == (Decimal(50), "CAD")


def test_a_contradicting_currency_makes_the_amount_a_matter_for_review() -> None:
    captured = capture({"amount": "€50", "currency": "INR"}, field_map=NO_MAP)
    assert captured.amount is None
    assert captured.currency == "INR"
    assert captured.unparsed == {"amount": "€50"}


def test_approval_threshold_is_an_amount_too() -> None:
    assert one("approval_threshold", "5,000").approval_threshold == Decimal(5000)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("USD", "USD"),
        ("usd", "USD"),
        (" inr ", "INR"),
        ("$", "USD"),
        ("€", "EUR"),
        ("£", "GBP"),
        ("¥", "JPY"),
        ("₹", "INR"),
        ("rupees", "INR"),
        ("Rs.", "INR"),
        ("dollars", "USD"),
        ("Euro", "EUR"),
        ("pounds sterling", "GBP"),
    ],
)
def test_currency_codes_symbols_and_words(text: str, code: str) -> None:
    assert one("currency", text).currency == code


def test_an_unknown_currency_is_kept_as_text() -> None:
    captured = one("currency", "doubloons")
    assert captured.currency is None
    assert captured.unparsed == {"currency": "doubloons"}


def test_the_iso_list_is_a_full_set_of_codes() -> None:
    assert len(ISO_4217_CODES) > 150
    assert {"USD", "EUR", "INR", "JPY", "GBP", "CHF", "BRL", "ZAR", "AED"} <= ISO_4217_CODES
    assert all(len(code) == 3 and code.isalpha() and code.isupper() for code in ISO_4217_CODES)
    assert parse_currency("XYZ") is None


# --- booleans, dates, confidence, email, links ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("Y", True),
        ("1", True),
        (1, True),
        ("on", True),
        (False, False),
        ("false", False),
        ("no", False),
        ("0", False),
        (0, False),
        ("off", False),
    ],
)
def test_booleans(value: Any, expected: bool) -> None:
    assert one("email_verified", value).email_verified is expected


@pytest.mark.parametrize("value", ["maybe", "verified", 2])
def test_an_unreadable_boolean_is_kept_as_text(value: Any) -> None:
    captured = one("vip", value)
    assert captured.vip is None
    assert captured.unparsed == {"vip": str(value)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-09-20T10:00:00Z", datetime(2026, 9, 20, 10, tzinfo=UTC)),
        ("2026-09-20T15:30:00+05:30", datetime(2026, 9, 20, 10, tzinfo=UTC)),
        ("2026-09-20T10:00:00", datetime(2026, 9, 20, 10, tzinfo=UTC)),
        ("2026-09-20 10:00", datetime(2026, 9, 20, 10, tzinfo=UTC)),
        ("2026-09-20", datetime(2026, 9, 20, 23, 59, 59, tzinfo=UTC)),
        ("20 Sep 2026", datetime(2026, 9, 20, 23, 59, 59, tzinfo=UTC)),
        ("September 20, 2026", datetime(2026, 9, 20, 23, 59, 59, tzinfo=UTC)),
        ("Sept 20 2026", datetime(2026, 9, 20, 23, 59, 59, tzinfo=UTC)),
        ("Sunday, 20th September 2026", datetime(2026, 9, 20, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_deadlines_become_aware_utc(text: str, expected: datetime) -> None:
    for name in ("due_date", "follow_up_deadline"):
        value = getattr(one(name, text), name)
        assert value == expected
        assert value.utcoffset() is not None


def test_a_promise_by_a_date_is_not_broken_until_that_day_ends() -> None:
    deadline = one("follow_up_deadline", "2026-09-18").follow_up_deadline
    assert deadline is not None
    assert deadline > datetime(2026, 9, 18, 23, 0, tzinfo=UTC)
    assert deadline < datetime(2026, 9, 19, tzinfo=UTC)


@pytest.mark.parametrize("text", ["next Friday", "31 Feb 2026", "09/20/2026", 1758326400])
def test_an_unreadable_date_is_kept_as_text(text: Any) -> None:
    captured = one("due_date", text)
    assert captured.due_date is None
    assert captured.unparsed == {"due_date": str(text)}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.95", "0.95"), (0.95, "0.95"), ("95%", "0.95"), ("95", "0.95"), (1, "1"), (0, "0")],
)
def test_confidence_becomes_a_fraction(value: Any, expected: str) -> None:
    assert one("intent_confidence", value).intent_confidence == Decimal(expected)


@pytest.mark.parametrize("value", ["high", "150%", "-0.2", 250])
def test_an_impossible_confidence_is_kept_as_text(value: Any) -> None:
    captured = one("intent_confidence", value)
    assert captured.intent_confidence is None
    assert "intent_confidence" in captured.unparsed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Priya@Example.COM ", "priya@example.com"),
        ("Priya <priya@example.com>", "priya@example.com"),
        ("mailto:ana@example.org", "ana@example.org"),
    ],
)
def test_emails_are_trimmed_and_lower_cased(value: str, expected: str) -> None:
    assert one("customer_email", value).customer_email == expected


@pytest.mark.parametrize("value", ["priya at example dot com", "priya@", "@example.com"])
def test_something_that_is_not_an_email_is_kept_as_text(value: str) -> None:
    captured = one("customer_email", value)
    assert captured.customer_email is None
    assert captured.unparsed == {"customer_email": value}


def test_links_must_be_web_links() -> None:
    good = one("crm_url", " https://crm.example/accounts/42 ")
    assert good.crm_url == "https://crm.example/accounts/42"
    bad = one("recording_url", "javascript:alert(1)")
    assert bad.recording_url is None
    assert bad.unparsed == {"recording_url": "javascript:alert(1)"}


def test_strings_are_stripped_and_tickers_upper_cased() -> None:
    captured = capture(
        {"customer_name": "  Priya Raman ", "ticker": " meta ", "invoice_number": 1182.0},
        field_map=NO_MAP,
    )
    assert captured.customer_name == "Priya Raman"
    assert captured.ticker == "META"
    assert captured.invoice_number == "1182"


def test_a_nested_value_in_a_text_field_is_kept_as_text() -> None:
    captured = one("refund_reason", {"code": "damaged"})
    assert captured.refund_reason is None
    assert captured.unparsed == {"refund_reason": '{"code":"damaged"}'}


# --- properties -----------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2)


@given(money, st.sampled_from(["", "$", "USD ", "₹", "Rs "]))
def test_thousands_grouped_amounts_read_back_exactly(amount: Decimal, prefix: str) -> None:
    assert parse_amount(f"{prefix}{amount:,.2f}") == amount


@given(money, st.sampled_from(["", "€", "EUR "]))
def test_european_grouped_amounts_read_back_exactly(amount: Decimal, prefix: str) -> None:
    western = f"{amount:,.2f}"
    european = western.replace(",", "_").replace(".", ",").replace("_", ".")
    assert parse_amount(f"{prefix}{european}") == amount


@given(st.integers(min_value=0, max_value=10**12))
def test_plain_integers_read_back_in_every_form(amount: int) -> None:
    assert parse_amount(amount) == amount
    assert parse_amount(str(amount)) == amount
    assert parse_amount(f"{amount:,}") == amount


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e9))
def test_floats_become_the_decimal_they_print_as(amount: float) -> None:
    assert parse_amount(amount) == Decimal(str(amount))


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)))
def test_a_parsed_confidence_is_always_between_zero_and_one(value: Any) -> None:
    confidence = one("intent_confidence", value).intent_confidence
    assert confidence is None or Decimal(0) <= confidence <= 1


@given(st.datetimes(timezones=st.timezones()) | st.text(max_size=40))
def test_a_parsed_deadline_is_always_aware_utc(value: Any) -> None:
    parsed = parse_datetime(value)
    assert parsed is None or parsed.utcoffset() == UTC.utcoffset(None)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
keys = st.one_of(st.sampled_from(CANONICAL_FIELDS), st.text(max_size=20))


@given(st.dictionaries(keys, scalars, max_size=12), st.dictionaries(keys, keys, max_size=4))
def test_capture_never_raises_on_any_analysis(
    analysis: dict[str, Any], field_map: dict[str, str]
) -> None:
    captured = capture(analysis, field_map=field_map)
    for name in captured.unparsed:
        assert getattr(captured, name, None) is None
    assert all(isinstance(text, str) for text in captured.extra.values())


def _missing(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"", "null", "none", "n/a", "-"}
    return value is None or value == [] or value == {}


@given(keys, scalars)
def test_a_present_value_is_never_dropped(key: str, value: Any) -> None:
    captured = capture({key: value}, field_map=NO_MAP)
    typed = [name for name in CANONICAL_FIELDS if getattr(captured, name) is not None]
    kept = len(typed) + len(captured.unparsed) + len(captured.extra)
    assert kept == 0 if _missing(value) else kept >= 1
