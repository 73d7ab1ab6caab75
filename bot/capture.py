"""Turn a DialNexa `post_call_analysis` object into typed `Captured` fields.

Agents define their own analysis field names and DialNexa passes values through loosely typed
(`"4,500"`, `"true"`, `"95%"`). Capture matches keys tolerantly, maps agent names onto the
canonical ones, and coerces each value to its type. A value it cannot read is never dropped:
the typed field stays `None` and the original text lands in `Captured.unparsed`, which flags the
request for review. `capture` never raises on bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.domain import CANONICAL_FIELDS, Captured

__all__ = [
    "ISO_4217_CODES",
    "capture",
    "normalise_key",
    "parse_amount",
    "parse_bool",
    "parse_confidence",
    "parse_currency",
    "parse_datetime",
    "parse_email",
    "parse_url",
]

# Active ISO 4217 codes, including fund codes and the Caribbean guilder that replaces ANG.
_ISO_4217_TEXT = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XDR
XOF XPF XSU XUA YER ZAR ZMW ZWG
"""
ISO_4217_CODES: frozenset[str] = frozenset(_ISO_4217_TEXT.split())

# Tokens that name one currency for certain.
_CURRENCY_WORDS: Mapping[str, str] = {
    "€": "EUR",
    "£": "GBP",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "₱": "PHP",
    "₦": "NGN",
    "฿": "THB",
    "₫": "VND",
    "₴": "UAH",
    "us$": "USD",
    "a$": "AUD",
    "au$": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "nz$": "NZD",
    "hk$": "HKD",
    "s$": "SGD",
    "r$": "BRL",
    "rs": "INR",
    "rupee": "INR",
    "rupees": "INR",
    "indian rupees": "INR",
    "us dollar": "USD",
    "us dollars": "USD",
    "euro": "EUR",
    "euros": "EUR",
    "pound": "GBP",
    "pounds": "GBP",
    "pounds sterling": "GBP",
    "sterling": "GBP",
    "canadian dollars": "CAD",
    "australian dollars": "AUD",
    "singapore dollars": "SGD",
    "swiss francs": "CHF",
    "yuan": "CNY",
    "renminbi": "CNY",
    "rmb": "CNY",
    "dirham": "AED",
    "dirhams": "AED",
    "rand": "ZAR",
    "won": "KRW",
}

# Tokens shared by several currencies: they fill an absent currency with the most likely code,
# but never contradict an explicit `currency` field (a "$" amount in CAD is fine).
_AMBIGUOUS_CURRENCY_WORDS: Mapping[str, str] = {
    "$": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "¥": "JPY",
    "yen": "JPY",
}

_MISSING = frozenset({"", "null", "none", "n/a", "-"})
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})

_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
_MONTHS: Mapping[str, int] = {
    name: number
    for number, full in enumerate(_MONTH_NAMES.split(), start=1)
    for name in (full, full[:3])
} | {"sept": 9}

_END_OF_DAY = time(23, 59, 59, tzinfo=UTC)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_NUMBER_RUN = re.compile(r"\d(?:[\d.,' ]*\d)?")
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]+")
_EMAIL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}")
_ORDINAL = re.compile(r"(?<=\d)(st|nd|rd|th)\b")
_WEEKDAY = re.compile(r"^(mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?,?\s+")
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})[\s/.,-]+([a-z]+)\.?[\s/.,-]+(\d{4})")
_MONTH_DAY_YEAR = re.compile(r"([a-z]+)\.?[\s/.,-]+(\d{1,2})[\s/.,-]+(\d{4})")


def normalise_key(key: object) -> str:
    """Lower-case a field name; spaces, dashes, dots and camelCase humps become underscores."""
    text = _CAMEL.sub("_", str(key).strip())
    return _NON_WORD.sub("_", text.lower()).strip("_")


def capture(analysis: Mapping[str, Any] | None, *, field_map: Mapping[str, str]) -> Captured:
    """Coerce a post-call analysis object into `Captured`; never raises on bad input.

    An analysis that arrives as a JSON string is decoded; one that is not JSON at all is kept
    whole under `unparsed["post_call_analysis"]` so the request still goes to review.
    """
    if isinstance(analysis, str) and not _is_missing(analysis):
        try:
            analysis = json.loads(analysis)
        except ValueError:
            return Captured(unparsed={"post_call_analysis": analysis})
    if not isinstance(analysis, Mapping):
        return Captured()
    chosen, extra = _pick(analysis, _normalised_map(field_map))
    values, unparsed = _coerce(chosen)
    return Captured(**values, unparsed=unparsed, extra=extra)


def _pick(
    analysis: Mapping[Any, Any], targets: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Choose one raw value per canonical field; everything else becomes extra text."""
    chosen: dict[str, tuple[bool, str, Any]] = {}
    extra: dict[str, str] = {}
    for raw_key, value in analysis.items():
        if _is_missing(value):
            continue
        label = str(raw_key).strip()
        key = normalise_key(raw_key)
        name = targets.get(key, key)
        if name not in _CANONICAL:
            extra[label] = _as_text(value)
            continue
        exact = key == name
        previous = chosen.get(name)
        # The key spelled as the canonical name wins over a mapped alias; the loser stays visible.
        if previous is None or (exact and not previous[0]):
            chosen[name] = (exact, label, value)
            if previous is None:
                continue
            _, label, value = previous
        if _as_text(value) != _as_text(chosen[name][2]):
            extra[label] = _as_text(value)
    return {name: value for name, (_, _, value) in chosen.items()}, extra


def _coerce(chosen: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Type each chosen value; what cannot be typed is kept as text in `unparsed`."""
    values: dict[str, Any] = {}
    unparsed: dict[str, str] = {}
    embedded: tuple[str, bool] | None = None
    for name, value in chosen.items():
        if name in _AMOUNT_FIELDS:
            amount = _amount_with_currency(value)
            parsed: object = None if amount is None else amount[0]
            if name == "amount" and amount is not None:
                embedded = amount[1]
        else:
            parsed = _PARSERS.get(name, _parse_text)(value)
        if parsed is None:
            unparsed[name] = _as_text(value)
        else:
            values[name] = parsed

    if embedded is not None:
        code, ambiguous = embedded
        if "currency" not in values and "currency" not in unparsed:
            values["currency"] = code
        elif not ambiguous and values.get("currency") not in (None, code):
            # "€4,500" with currency INR: the amount cannot be trusted, so a person reads it.
            del values["amount"]
            unparsed["amount"] = _as_text(chosen["amount"])
    return values, unparsed


def parse_amount(value: object) -> Decimal | None:
    """Read a money amount such as "4,500", "$4,500.00", "1.234,56", "Rs 4,500" or 12.5."""
    result = _amount_with_currency(value)
    return None if result is None else result[0]


def parse_currency(value: object) -> str | None:
    """Read an ISO 4217 code, a symbol ($ € £ ¥ ₹) or a word ("rupees") as an ISO code."""
    if not isinstance(value, str):
        return None
    found = _currency_token(value)
    return None if found is None else found[0]


def parse_bool(value: object) -> bool | None:
    """Read true/false, yes/no, y/n, 1/0 and on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        number = _decimal(value)
        return None if number is None or number not in (0, 1) else bool(number)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def parse_datetime(value: object) -> datetime | None:
    """Read a deadline as aware UTC; a date without a time means the end of that day."""
    if isinstance(value, datetime):
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except (OverflowError, ValueError):
            return None
    if isinstance(value, date):
        return datetime.combine(value, _END_OF_DAY)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return datetime.combine(date.fromisoformat(text), _END_OF_DAY)
    except ValueError:
        pass
    try:
        return parse_datetime(datetime.fromisoformat(text))
    except ValueError:
        pass
    day = _named_month_date(text)
    return None if day is None else datetime.combine(day, _END_OF_DAY)


def parse_confidence(value: object) -> Decimal | None:
    """Read a confidence as a Decimal in [0, 1]; "95%" and 95 are percentages."""
    percent = False
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            percent, text = True, text[:-1].strip()
        number = _decimal(text.replace(",", ".") if text.count(",") == 1 else text)
    else:
        number = _decimal(value)
    if number is None or number < 0:
        return None
    if percent or number > 1:
        number = number / 100
    return number if number <= 1 else None


def parse_email(value: object) -> str | None:
    """Read an email address, trimmed and lower-cased; also accepts "Name <a@b.c>" and mailto:."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1 : -1].strip()
    text = text.removeprefix("mailto:")
    return text if _EMAIL.fullmatch(text) else None


def parse_url(value: object) -> str | None:
    """Accept only http(s) links with a host, so a card never renders anything else as a link."""
    text = _parse_text(value)
    if text is None or any(c.isspace() for c in text):
        return None
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#":
        return None
    return text


def _parse_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float | Decimal):
        return str(value).strip() or None
    return None


def _parse_ticker(value: object) -> str | None:
    text = _parse_text(value)
    return None if text is None else text.upper()


def _parse_currency_field(value: object) -> str | None:
    return parse_currency(value)


_PARSERS: Mapping[str, Callable[[object], object | None]] = {
    "currency": _parse_currency_field,
    "due_date": parse_datetime,
    "follow_up_deadline": parse_datetime,
    "suppress": parse_bool,
    "vip": parse_bool,
    "email_verified": parse_bool,
    "intent_confidence": parse_confidence,
    "customer_email": parse_email,
    "transcript_url": parse_url,
    "recording_url": parse_url,
    "crm_url": parse_url,
    "payment_platform_url": parse_url,
    "ticker": _parse_ticker,
}

_AMOUNT_FIELDS = frozenset({"amount", "approval_threshold"})
_CANONICAL = frozenset(CANONICAL_FIELDS)


def _normalised_map(field_map: Mapping[str, str]) -> dict[str, str]:
    return {normalise_key(source): normalise_key(target) for source, target in field_map.items()}


def _is_missing(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _MISSING
    return value is None or (isinstance(value, Mapping | list | tuple) and not value)


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            return str(value)
    return _parse_text(value) or str(value)


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str | int | float) else value
    except InvalidOperation:
        return None
    if not isinstance(number, Decimal) or not number.is_finite():
        return None
    return number


def _currency_token(text: str) -> tuple[str, bool] | None:
    """Return (ISO code, ambiguous) for a currency token, or None."""
    word = _SPACES.sub(" ", text.strip().lower()).rstrip(".").strip()
    if word in _CURRENCY_WORDS:
        return _CURRENCY_WORDS[word], False
    if word in _AMBIGUOUS_CURRENCY_WORDS:
        return _AMBIGUOUS_CURRENCY_WORDS[word], True
    code = word.upper()
    return (code, False) if code in ISO_4217_CODES else None


def _amount_with_currency(value: object) -> tuple[Decimal, tuple[str, bool] | None] | None:
    """Parse an amount and any currency written with it."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = _decimal(value)
        return None if number is None else (number, None)
    if not isinstance(value, str):
        return None
    text = _SPACES.sub(" ", value).strip()
    match = _NUMBER_RUN.search(text)
    if match is None:
        return None
    before, after = text[: match.start()].strip(), text[match.end() :].strip()
    after = after.removesuffix("/-").strip()  # "Rs 4,500/-" is how Indian amounts are written
    negative = False
    for sign in ("-", "+"):
        if before.startswith(sign) or before.endswith(sign):
            negative = sign == "-"
            before = (before[1:] if before.startswith(sign) else before[:-1]).strip()
            break
    if before and after:
        return None
    currency = None
    if before or after:
        currency = _currency_token(before or after)
        if currency is None:
            return None
    number = _parse_number(match.group())
    if number is None:
        return None
    return (-number if negative else number), currency


def _parse_number(text: str) -> Decimal | None:
    """Read digits with grouping and one decimal separator, refusing ambiguous forms."""
    separators = [c for c in text if not c.isdigit()]
    if not separators:
        return Decimal(text)
    kinds = set(separators)
    last = separators[-1]
    decimal_mark: str | None
    if len(kinds) > 1:
        if last not in ",." or separators.count(last) != 1:
            return None
        decimal_mark = last
    elif last in " '":
        decimal_mark = None
    elif _is_grouped(text, last):
        if last == "." and len(separators) == 1:
            return None  # "4.500": 4.5 or 4500? A person should read it.
        decimal_mark = None
    elif len(separators) == 1 and (last == "." or len(text) - text.index(last) <= 3):
        decimal_mark = last  # a lone comma is a decimal comma only before one or two digits
    else:
        return None
    whole, fraction = text.rsplit(decimal_mark, 1) if decimal_mark else (text, "")
    group_marks = {c for c in whole if not c.isdigit()}
    if len(group_marks) > 1 or (group_marks and not _is_grouped(whole, group_marks.pop())):
        return None
    digits = "".join(c for c in whole if c.isdigit())
    if decimal_mark == "," and not fraction.isdigit():
        return None
    return Decimal(f"{digits}.{fraction}" if fraction else digits)


def _is_grouped(text: str, mark: str) -> bool:
    """True for thousands grouping ("1,234,567") or Indian lakh grouping ("1,23,45,678")."""
    sep = re.escape(mark)
    if re.fullmatch(rf"[1-9]\d{{0,2}}(?:{sep}\d{{3}})+", text):
        return True
    return mark == "," and re.fullmatch(r"[1-9]\d?(?:,\d\d)+,\d{3}", text) is not None


def _named_month_date(text: str) -> date | None:
    """Read "20 Sep 2026", "September 20, 2026" and "Friday, 20th September 2026"."""
    cleaned = _WEEKDAY.sub("", _ORDINAL.sub("", _SPACES.sub(" ", text.strip().lower())))
    if match := _DAY_MONTH_YEAR.fullmatch(cleaned):
        day, month, year = match.group(1), match.group(2), match.group(3)
    elif match := _MONTH_DAY_YEAR.fullmatch(cleaned):
        month, day, year = match.group(1), match.group(2), match.group(3)
    else:
        return None
    if month not in _MONTHS:
        return None
    try:
        return date(int(year), _MONTHS[month], int(day))
    except ValueError:
        return None
