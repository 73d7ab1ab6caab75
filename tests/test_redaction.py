"""Redaction: what must never survive, what must be left alone, and the JSON and logging paths."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.redaction import (
    RedactingFilter,
    Redaction,
    redact_exception_message,
    redact_json,
    redact_text,
)

BULLETS = "\u2022" * 4
LABELS = {
    "card": "card",
    "iban": "IBAN",
    "bank_account": "bank account",
    "routing_number": "routing",
    "ssn": "SSN",
    "ein": "EIN",
    "itin": "ITIN",
}
ITIN_MIDDLES = [*range(50, 66), *range(70, 89), *range(90, 93), *range(94, 100)]


def luhn_check_digit(body: str) -> str:
    """The digit that makes `body + digit` pass Luhn."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:  # doubled once the check digit is appended on the right
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str(-total % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 check digits for a country code and its basic bank account number."""
    number = int("".join(str(int(char, 36)) for char in bban + country + "00"))
    return f"{98 - number % 97:02d}"


def digit_runs(text: str) -> list[str]:
    """Runs of digits once spaces and dashes are ignored, as a reader would piece them together."""
    return re.findall(r"[0-9]+", re.sub(r"[ -]", "", text))


def mask(kind: str, tail: str) -> str:
    return f"[{LABELS[kind]} {BULLETS} {tail}]"


# --- strategies -------------------------------------------------------------------------------

words = st.from_regex(r"[A-Za-z]{1,12}[,.;:!?]?", fullmatch=True)
sentences = st.lists(words, max_size=6).map(" ".join)


@st.composite
def grouped(draw: st.DrawFn, digits: str) -> str:
    """`digits` cut anywhere, each cut a single space or dash."""
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=len(digits) - 1)))
    pieces = [
        digits[start:end] for start, end in zip([0, *cuts], [*cuts, len(digits)], strict=True)
    ]
    out = pieces[0]
    for piece in pieces[1:]:
        out += draw(st.sampled_from(" -")) + piece
    return out


@st.composite
def card_numbers(draw: st.DrawFn, length: int | None = None) -> str:
    """A Luhn-valid card number; issuers never start one with 0."""
    size = length if length is not None else draw(st.integers(13, 19))
    body = draw(st.sampled_from("123456789")) + draw(
        st.text("0123456789", min_size=size - 2, max_size=size - 2)
    )
    return body + luhn_check_digit(body)


@st.composite
def ibans(draw: st.DrawFn) -> str:
    """A valid IBAN in the compact form, for a few real country layouts."""
    digits = st.text("0123456789", min_size=1, max_size=1)
    letters = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=1)
    alnum = st.one_of(digits, letters)
    layouts = {
        "DE": [digits] * 18,
        "GB": [letters] * 4 + [digits] * 14,
        "FR": [digits] * 10 + [alnum] * 11 + [digits] * 2,
        "NL": [letters] * 4 + [digits] * 10,
        "ES": [digits] * 20,
    }
    country = draw(st.sampled_from(sorted(layouts)))
    bban = "".join(draw(part) for part in layouts[country])
    return country + iban_check_digits(country, bban) + bban


@st.composite
def tax_ids(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """(words before the number, the number as written, kind, its nine digits)."""
    kind = draw(st.sampled_from(["ssn", "ein", "itin"]))
    if kind == "ssn":
        area = draw(st.integers(1, 899).filter(lambda area: area != 666))
        digits = f"{area:03d}{draw(st.integers(1, 99)):02d}{draw(st.integers(1, 9999)):04d}"
    elif kind == "itin":
        middle = draw(st.sampled_from(ITIN_MIDDLES))
        digits = f"9{draw(st.integers(0, 99)):02d}{middle}{draw(st.integers(0, 9999)):04d}"
    else:
        digits = f"{draw(st.integers(1, 99)):02d}{draw(st.integers(0, 9_999_999)):07d}"
    dashed = (
        f"{digits[:2]}-{digits[2:]}"
        if kind == "ein"
        else f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"
    )
    keyword = {
        "ssn": ["SSN", "social security number", "Social Security no."],
        "ein": ["EIN", "employer identification number"],
        "itin": ["ITIN", "tax id"],
    }[kind]
    if draw(st.booleans()):
        return "", dashed, kind, digits
    lead = draw(st.sampled_from(keyword)) + draw(st.sampled_from([" ", ": ", " is "]))
    spaced = f"{digits[:3]} {digits[3:5]} {digits[5:]}"
    return lead, draw(st.sampled_from([digits, dashed, spaced])), kind, digits


@st.composite
def amounts(draw: st.DrawFn) -> str:
    whole = draw(st.integers(0, 10**12))
    cents = draw(st.integers(0, 99))
    style = draw(st.sampled_from(["us", "eu", "plain", "in"]))
    if style == "us":
        number = f"{whole:,}.{cents:02d}"
    elif style == "eu":
        number = f"{whole:,}".replace(",", ".") + f",{cents:02d}"
    elif style == "in":
        number = f"{whole:,}"
    else:
        number = str(whole)
    template = draw(st.sampled_from(["${}", "Rs {}", "{} EUR", "{} USD", "€{}", "{}"]))
    return template.format(number)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
    ).replace(tzinfo=UTC)
    style = draw(st.sampled_from(["iso_date", "us", "iso_ms", "iso_offset", "clock"]))
    return {
        "iso_date": moment.strftime("%Y-%m-%d"),
        "us": moment.strftime("%m/%d/%Y"),
        "iso_ms": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "iso_offset": moment.isoformat(),
        "clock": moment.strftime("%H:%M:%S"),
    }[style]


@st.composite
def e164_numbers(draw: st.DrawFn) -> str:
    """A phone number in E.164 form (at most 15 digits after the plus), maybe spaced."""
    country = str(draw(st.integers(1, 999)))
    subscriber = draw(
        st.text("0123456789", min_size=max(1, 8 - len(country)), max_size=15 - len(country))
    )
    if draw(st.booleans()):
        return f"+{country}{subscriber}"
    return f"+{country} {subscriber[:3]} {subscriber[3:6]} {subscriber[6:]}".rstrip()


def leaves_alone(text: str) -> None:
    assert redact_text(text) == Redaction(text, frozenset())


# --- cards -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(13, 20))
@settings(max_examples=40)
@given(data=st.data())
def test_card_numbers_of_every_length_and_grouping_never_survive(
    length: int, data: st.DataObject
) -> None:
    card = data.draw(card_numbers(length))
    written = data.draw(st.one_of(st.just(card), grouped(card)))
    prefix = data.draw(st.sampled_from(["", "card:", "#", "(", "card no. ", "number "]))
    suffix = data.draw(st.sampled_from(["", ",", ".", ")", "!"]))
    before, after = data.draw(sentences), data.draw(sentences)

    result = redact_text(f"{before} {prefix}{written}{suffix} {after}")

    assert result == Redaction(
        f"{before} {prefix}{mask('card', card[-4:])}{suffix} {after}", frozenset({"card"})
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card:4242424242424242,", f"card:{mask('card', '4242')},"),
        ("pay with 4242-4242-4242-4242 today", f"pay with {mask('card', '4242')} today"),
        ("amex 3782 822463 10005", f"amex {mask('card', '0005')}"),
        (
            "digits 4 2 4 2 4 2 4 2 4 2 4 2 4 2 4 2 read out",
            f"digits {mask('card', '4242')} read out",
        ),
        ("4111111111111111 exp 12/27", f"{mask('card', '1111')} exp 12/27"),
    ],
)
def test_card_examples(text: str, expected: str) -> None:
    assert redact_text(text) == Redaction(expected, frozenset({"card"}))


def test_a_card_followed_by_its_expiry_digits_is_still_found() -> None:
    result = redact_text("card 4242 4242 4242 4242 12 27")
    assert result.text == f"card {mask('card', '4242')} 12 27"


@pytest.mark.parametrize(
    "text",
    [
        "42424242424242424242",  # 20 digits: too long for a card
        "4242424242424241",  # fails Luhn
        "0001326801-19-000037",  # SEC accession number
        f"ref 000012345678901{luhn_check_digit('000012345678901')}",  # zero-padded id
    ],
)
def test_digit_runs_that_are_not_cards(text: str) -> None:
    leaves_alone(text)


def test_a_phone_number_after_a_plus_is_never_a_card() -> None:
    digits = "4915112345678" + luhn_check_digit("4915112345678")
    assert redact_text(f"call {digits}").kinds == {"card"}  # the same digits without the plus
    leaves_alone(f"call +{digits}")
    leaves_alone(f"call +49 1511 2345 678{digits[-1]}")


# --- IBANs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "ES9121000418450200051332",
    ],
)
def test_published_example_ibans_are_masked_and_the_generator_agrees(iban: str) -> None:
    assert iban_check_digits(iban[:2], iban[4:]) == iban[2:4]
    spaced = " ".join(iban[index : index + 4] for index in range(0, len(iban), 4))
    for written in (iban, spaced, spaced.lower()):
        assert redact_text(f"IBAN: {written} thanks") == Redaction(
            f"IBAN: {mask('iban', iban[-4:])} thanks", frozenset({"iban"})
        )


@settings(max_examples=150)
@given(
    iban=ibans(),
    spaced=st.booleans(),
    lower=st.booleans(),
    before=sentences,
    after=sentences,
)
def test_valid_ibans_never_survive(
    iban: str, spaced: bool, lower: bool, before: str, after: str
) -> None:
    written = (
        " ".join(iban[index : index + 4] for index in range(0, len(iban), 4)) if spaced else iban
    )
    written = written.lower() if lower else written

    result = redact_text(f"{before} {written} {after}")

    assert result == Redaction(f"{before} {mask('iban', iban[-4:])} {after}", frozenset({"iban"}))


def test_an_iban_with_a_wrong_check_digit_is_not_masked_as_an_iban() -> None:
    assert "iban" not in redact_text("DE88 3704 0044 0532 0130 00").kinds


@pytest.mark.parametrize(
    ("country", "bban"),
    [
        ("GB", "WEST123456789012"),  # a GB IBAN has 18 characters after the check digits, not 16
        ("GB", "WEST12345678901234X"),  # nor 19
        ("US", "WEST1234567"),  # no IBANs in the United States
    ],
)
def test_mod_97_alone_does_not_make_an_iban(country: str, bban: str) -> None:
    leaves_alone(f"ref {country}{iban_check_digits(country, bban)}{bban} ok")


# --- SSN, EIN, ITIN ----------------------------------------------------------------------------


@settings(max_examples=150)
@given(tax_id=tax_ids(), before=sentences, after=sentences)
def test_ssn_ein_and_itin_shapes_never_survive(
    tax_id: tuple[str, str, str, str], before: str, after: str
) -> None:
    lead, written, kind, digits = tax_id

    result = redact_text(f"{before} {lead}{written} {after}")

    assert result == Redaction(
        f"{before} {lead}{mask(kind, digits[-4:])} {after}", frozenset({kind})
    )


def test_a_document_code_shaped_like_an_ein_is_left_alone() -> None:
    leaves_alone("see INV-12-3456789")
    assert redact_text("SSN-123-45-6789").text == f"SSN-{mask('ssn', '6789')}"
    assert redact_text("TIN-12-3456789").text == f"TIN-{mask('ein', '6789')}"


# --- keyword numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        (
            "account number 123456789",
            f"account number {mask('bank_account', '6789')}",
            "bank_account",
        ),
        ("acct: 000123456789", f"acct: {mask('bank_account', '6789')}", "bank_account"),
        (
            "my a/c no. is 4402 1178 93",
            f"my a/c no. is {mask('bank_account', '7893')}",
            "bank_account",
        ),
        ("acct 12345678 2 items", f"acct {mask('bank_account', '5678')} 2 items", "bank_account"),
        ("Bank Account 31926819", f"Bank Account {mask('bank_account', '6819')}", "bank_account"),
        (
            "Agent: your account number?\nUser: it's 1234 5678 9012",
            f"Agent: your account number?\nUser: it's {mask('bank_account', '9012')}",
            "bank_account",
        ),
        (
            "routing number 021000021",
            f"routing number {mask('routing_number', '0021')}",
            "routing_number",
        ),
        ("ABA # 021000021", f"ABA # {mask('routing_number', '0021')}", "routing_number"),
        ("sort code 12-34-56", f"sort code {mask('routing_number', '3456')}", "routing_number"),
        (
            "transit number 12345-678",
            f"transit number {mask('routing_number', '5678')}",
            "routing_number",
        ),
        (
            "social security number 123456789",
            f"social security number {mask('ssn', '6789')}",
            "ssn",
        ),
        ("tax id 912701234", f"tax id {mask('itin', '1234')}", "itin"),
        ("tax id 123456789", f"tax id {mask('ein', '6789')}", "ein"),
        ("FEIN: 123456789", f"FEIN: {mask('ein', '6789')}", "ein"),
        (
            "individual taxpayer identification number 912701234",
            f"individual taxpayer identification number {mask('itin', '1234')}",
            "itin",
        ),
    ],
)
def test_numbers_next_to_their_keyword(text: str, expected: str, kind: str) -> None:
    assert redact_text(text) == Redaction(expected, frozenset({kind}))


def test_a_keyword_does_not_reach_past_a_masked_number() -> None:
    assert redact_text("cvv 123, expiry 2027") == Redaction(
        "cvv [CVV], expiry 2027", frozenset({"cvv"})
    )


def test_the_nearest_keyword_names_the_number() -> None:
    result = redact_text("account number and routing number 021000021")
    assert result == Redaction(
        f"account number and routing number {mask('routing_number', '0021')}",
        frozenset({"routing_number"}),
    )


@pytest.mark.parametrize(
    "text",
    [
        "cvv 123",
        "CVC: 1234",
        "CSC 555",
        "the security code is 987",
        "CVV2 was 456",
        "card verification code 321",
    ],
)
def test_cvv_keeps_no_digits(text: str) -> None:
    result = redact_text(text)
    assert result.kinds == {"cvv"}
    assert "[CVV]" in result.text
    assert not re.search(r"[0-9]{3}", result.text)


@pytest.mark.parametrize(
    "text",
    [
        "account number for invoice 11823344",
        "acct order 12345678 shipped",
        "account ticket 44556677",
        "account number ending in 6789",
        "routing the refund of 4500 to finance",
        "routing $45,000 to the parent account",
        "acct balance Rs 450000",
        "acct opened 2026-09-14",
        "cvv field left blank, order 123",
    ],
)
def test_numbers_near_a_keyword_that_belong_to_something_else(text: str) -> None:
    leaves_alone(text)


# --- things to leave alone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "INV-77",
        "invoice 1182",
        "INV-2026-000123",
        "4,500",
        "$1,234.56",
        "Rs 4,500",
        "1.234,50 EUR",
        "2026-09-14",
        "09/14/2026",
        "2026-09-14T09:12:03.417Z",
        "+1 415 555 0123",
        "+14155550123",
        "14155550123",
        "918035550142",
        "(415) 555-0123",
        "call_q7Lm2xR9tB4k",
        "AAPL, BRK.B and MSFT",
        "0001326801-19-000037",
        "order 123456789",
        "12.5% discount",
        "statement 2026-09-01 2026-09-30",
        "refund 4,500 on invoice INV-2026-000123, call me on +91 80 3555 0142 by 2026-09-14",
        "",
    ],
)
def test_ordinary_finance_text_is_left_alone(text: str) -> None:
    leaves_alone(text)


@settings(max_examples=100)
@given(
    parts=st.lists(
        st.one_of(amounts(), timestamps(), e164_numbers(), words), min_size=1, max_size=8
    ),
    joiner=st.sampled_from([", ", "; ", " and ", " to ", " or call "]),
)
def test_generated_amounts_dates_and_phone_numbers_are_left_alone(
    parts: list[str], joiner: str
) -> None:
    # Bare numbers separated only by single spaces would read as a grouped card, so the generated
    # values sit between words, as they do in a transcript.
    leaves_alone(joiner.join(parts))


@settings(max_examples=50)
@given(dates=st.lists(timestamps(), min_size=2, max_size=4))
def test_dates_next_to_each_other_are_left_alone(dates: list[str]) -> None:
    leaves_alone("between " + " ".join(dates))


# --- idempotence -------------------------------------------------------------------------------

secret_fragments = st.one_of(
    card_numbers().flatmap(lambda card: st.one_of(st.just(card), grouped(card))),
    ibans(),
    tax_ids().map(lambda tax_id: tax_id[0] + tax_id[1]),
    st.builds("acct {}".format, st.integers(10**5, 10**12)),
    st.builds("routing number {}".format, st.integers(10**8, 10**9 - 1)),
    st.builds("cvv {}".format, st.integers(100, 9999)),
)
noise_fragments = st.one_of(
    amounts(), timestamps(), e164_numbers(), words, st.text("0123456789 -+/:.,", max_size=20)
)


@settings(max_examples=200)
@given(parts=st.lists(st.one_of(secret_fragments, noise_fragments), min_size=1, max_size=10))
@example(parts=["cvv 100", ":000"])  # a second pass once read "cvv [CVV] :000" as a new CVV
@example(parts=["CVC#000CVC#000"])  # the first mask opens a word boundary for the second keyword
def test_redacting_twice_changes_nothing(parts: list[str]) -> None:
    once = redact_text(" ".join(parts))
    assert redact_text(once.text) == Redaction(once.text, frozenset())


# --- JSON --------------------------------------------------------------------------------------


@st.composite
def nested(draw: st.DrawFn, leaf: object) -> object:
    """`leaf` buried a few levels deep in dicts and lists under ordinary keys."""
    value = leaf
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            key = draw(st.sampled_from(["notes", "summary", "transcript", "items", "detail"]))
            value = {key: value, "status": "completed"}
        else:
            value = [draw(words), value]
    return value


@settings(max_examples=100)
@given(data=st.data())
def test_redact_json_masks_secrets_anywhere_in_the_structure(data: st.DataObject) -> None:
    secrets = data.draw(
        st.lists(
            st.one_of(
                card_numbers().map(lambda card: (card, "card", card[-4:])),
                ibans().map(lambda iban: (iban, "iban", iban[-4:])),
                tax_ids().map(lambda t: (t[0] + t[1], t[2], t[3][-4:])),
            ),
            min_size=1,
            max_size=4,
        )
    )
    leaves = [
        f"{data.draw(sentences)} {written} {data.draw(sentences)}" for written, _, _ in secrets
    ]
    payload = {
        "call": {"id": "call_q7Lm2xR9tB4k", "parts": [data.draw(nested(leaf)) for leaf in leaves]}
    }

    redacted, kinds = redact_json(payload)

    dumped = json.dumps(redacted, ensure_ascii=False)
    assert kinds == {kind for _, kind, _ in secrets}
    assert all(len(run) <= 4 for run in digit_runs(dumped))
    for _, kind, tail in secrets:
        assert mask(kind, tail) in dumped
    assert '"call_q7Lm2xR9tB4k"' in dumped


SECRET_KEYS = [
    ("card_number", "card"),
    ("cardNumber", "card"),
    ("CC-Number", "card"),
    ("pan", "card"),
    ("iban", "iban"),
    ("ssn", "ssn"),
    ("ein", "ein"),
    ("itin", "itin"),
    ("account_number", "bank_account"),
    ("routing_number", "routing_number"),
    ("customer_bank_account_number", "bank_account"),
]


@pytest.mark.parametrize(("key", "kind"), SECRET_KEYS)
@settings(max_examples=25)
@given(
    value=st.one_of(
        st.integers(0, 10**20),
        st.text("0123456789 -", min_size=1, max_size=24).filter(lambda text: text.strip(" -")),
    )
)
def test_values_under_secret_keys_are_masked_whole(key: str, kind: str, value: int | str) -> None:
    digits = re.sub(r"[^0-9]", "", str(value))

    redacted, kinds = redact_json({"payload": [{key: value, "amount": "4,500"}]})

    assert redacted == {
        "payload": [
            {
                key: mask(kind, digits[-4:]) if len(digits) > 4 else f"[{LABELS[kind]} {BULLETS}]",
                "amount": "4,500",
            }
        ]
    }
    assert kinds == {kind}


@pytest.mark.parametrize("key", ["cvv", "cvc", "CVV2", "security_code"])
def test_cvv_values_under_their_key_keep_no_digits(key: str) -> None:
    assert redact_json({key: 123}) == ({key: "[CVV]"}, frozenset({"cvv"}))
    assert redact_json({key: "0987"}) == ({key: "[CVV]"}, frozenset({"cvv"}))


def test_tax_id_key_names_the_kind_by_its_digits() -> None:
    redacted, kinds = redact_json({"tax_id": "912-70-1234", "payer": {"taxId": "12-3456789"}})
    assert redacted == {"tax_id": mask("itin", "1234"), "payer": {"taxId": mask("ein", "6789")}}
    assert kinds == {"itin", "ein"}


def test_captured_fields_that_only_look_sensitive_are_kept() -> None:
    analysis = {
        "account_id": "ACC-12345678",
        "invoice_number": "INV-2026-000123",
        "payment_id": "pi_3Nq8Lm2xR9tB4k",
        "customer_phone": "+14155550123",
        "amount": "4,500",
        "due_date": "2026-09-14",
        "filing_id": "0001326801-19-000037",
        "card_number": None,
        "vip": True,
        "intent_confidence": 0.82,
    }
    assert redact_json(analysis) == (analysis, frozenset())


def test_redact_json_keeps_keys_and_already_masked_values() -> None:
    once, _ = redact_json({"card_number": "4242424242424242", "notes": ["cvv 123"]})
    assert once == {"card_number": mask("card", "4242"), "notes": ["cvv [CVV]"]}
    assert redact_json(once) == (once, frozenset())


@pytest.mark.parametrize("value", [Decimal("123456789"), 123456789.0])
def test_loosely_typed_numbers_under_a_secret_key_keep_their_real_last_four(value: object) -> None:
    assert redact_json({"account_number": value}) == (
        {"account_number": mask("bank_account", "6789")},
        frozenset({"bank_account"}),
    )


# --- logging and exceptions --------------------------------------------------------------------


@contextmanager
def captured_logger(name: str) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A real logger whose only handler carries the filter and writes to a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"countersign.tests.redaction.{name}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


@settings(max_examples=50)
@given(card=card_numbers(), split=st.booleans())
def test_log_lines_built_with_percent_args_carry_no_card(card: str, split: bool) -> None:
    written = f"{card[:8]} {card[8:]}" if split else card

    with captured_logger("args") as (logger, stream):
        logger.info("charging %s for %s on %s", written, "$1,234.56", "INV-77")

    assert stream.getvalue() == f"INFO charging {mask('card', card[-4:])} for $1,234.56 on INV-77\n"


def test_log_line_with_mapping_args_is_masked() -> None:
    with captured_logger("mapping") as (logger, stream):
        logger.warning("refund to %(iban)s", {"iban": "DE89 3704 0044 0532 0130 00"})

    assert stream.getvalue() == f"WARNING refund to {mask('iban', '3000')}\n"


def test_logged_traceback_carries_no_card() -> None:
    with captured_logger("exc") as (logger, stream):
        try:
            raise ValueError("card 4242 4242 4242 4242 was declined")
        except ValueError:
            logger.exception("payment failed for account number %s", "31926819")

    output = stream.getvalue()
    assert "4242 4242 4242 4242" not in output
    assert "31926819" not in output
    assert f"ValueError: card {mask('card', '4242')} was declined" in output
    assert f"account number {mask('bank_account', '6819')}" in output
    assert "Traceback" in output


def test_a_log_call_with_wrong_args_still_logs_masked_and_does_not_raise() -> None:
    with captured_logger("bad") as (logger, stream):
        logger.info("%s and %s", "4242424242424242")

    output = stream.getvalue()
    assert "4242424242424242" not in output
    assert mask("card", "4242") in output


def test_exception_messages_are_masked() -> None:
    error = RuntimeError("could not refund IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789")
    assert redact_exception_message(error) == (
        f"could not refund IBAN {mask('iban', '5432')}, SSN {mask('ssn', '6789')}"
    )


def test_an_exception_that_cannot_be_printed_still_gives_a_message() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert redact_exception_message(Unprintable()) == "<unprintable Unprintable>"
