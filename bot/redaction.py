"""Masking of payment and tax identifiers before text reaches storage, logs, Slack or a response.

Every mask keeps at most the last four characters (`[card •••• 4242]`), so finance can still match a
request against what the caller read out without the secret itself travelling any further.

`redact_text` runs its detectors in a fixed order, strongest evidence first:

1. IBANs (country length and mod-97),
2. card numbers (13 to 19 digits passing Luhn, in any grouping),
3. SSN, ITIN and EIN shapes (`123-45-6789`, `12-3456789`),
4. numbers that are sensitive only because of the keyword before them (account, routing, SSN, CVV).

Each pass leaves alone the masks written before it, so a later pass cannot re-read a masked number,
and the passes repeat until nothing more is found, so redacting a redacted text changes nothing.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Final

__all__ = [
    "RedactingFilter",
    "Redaction",
    "redact_exception_message",
    "redact_json",
    "redact_text",
]

CARD: Final = "card"
IBAN: Final = "iban"
BANK_ACCOUNT: Final = "bank_account"
ROUTING_NUMBER: Final = "routing_number"
SSN: Final = "ssn"
EIN: Final = "ein"
ITIN: Final = "itin"
CVV: Final = "cvv"
# Not a kind of its own: a "tax id" is an EIN or an ITIN depending on its digits.
_TAX_ID: Final = "tax_id"

_LABELS: Final = {
    CARD: "card",
    IBAN: "IBAN",
    BANK_ACCOUNT: "bank account",
    ROUTING_NUMBER: "routing",
    SSN: "SSN",
    EIN: "EIN",
    ITIN: "ITIN",
}
_BULLETS: Final = "\u2022\u2022\u2022\u2022"

# ISO 13616 registry: the full IBAN length per country code.
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# Matched against a key's words, lower-cased and joined by "_" ("customerCardNumber" becomes
# "customer_card_number"); the leftmost match that runs to the end names what the value is.
_SECRET_KEY: Final = re.compile(
    r"(?:^|_)(?:"
    r"(?P<card>primary_account_number|(?:credit|debit)_card(?:_number)?|card_(?:number|no|num)"
    r"|cc_(?:number|no|num)|pan)"
    r"|(?P<cvv>(?:card_)?(?:cvv|cvc)(?:_2|_code)?|csc|(?:card_)?security_code"
    r"|card_verification_(?:code|value))"
    r"|(?P<iban>iban(?:_number)?)"
    r"|(?P<ssn>ssn|social_security_(?:number|no))"
    r"|(?P<ein>f?ein|employer_identification_number)"
    r"|(?P<itin>itin)"
    r"|(?P<tax_id>tax_id(?:_number)?|tax_identification_number|taxpayer_id|tin)"
    r"|(?P<bank_account>(?:bank_)?account_(?:number|no|num)|acct_(?:number|no|num)"
    r"|bank_account)"
    r"|(?P<routing_number>(?:aba_)?routing_(?:number|no|num)|aba(?:_number)?|sort_code"
    r"|transit_number)"
    r")$"
)
# Words between a keyword and a number that say the number is something else.
_UNRELATED_WORD: Final = re.compile(
    r"invoice|inv|order|ord|ticket|case|claim|reference|ref|receipt|quote|po|transaction|txn"
    r"|confirmation|tracking|subscription|plan|call|phone|tel|mobile|cell|ext|extension|zip"
    r"|postcode|amount|total|balance|paid|payment|refund|fee|date|dated|due|rs|inr|usd|eur|gbp"
    r"|dollars|rupees|euros|pounds|percent",
    re.IGNORECASE,
)
# The first word of every alternative in _KEYWORD, lower-cased.
_KEYWORD_FIRST_WORDS: Final = (
    "bank", "account", "acct", "a/c", "routing", "aba", "sort", "transit", "ssn", "social", "itin",
    "individual", "tax", "tin", "ein", "fein", "employer", "cvv", "cvc", "csc", "security", "card",
)  # fmt: skip
# Luhn doubles every second digit from the right and adds the digits of the product.
_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)

_ANY_DIGIT: Final = re.compile(r"[0-9]")
_MASK: Final = re.compile(
    r"\[(?:card|IBAN|bank account|routing|SSN|EIN|ITIN) \u2022{4}(?: [0-9A-Z]{4})?\]|\[CVV\]"
)
_IBAN_CANDIDATE: Final = re.compile(
    r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}"
    r"(?:[0-9A-Za-z]{11,30}|(?: [0-9A-Za-z]{4}){1,7}(?: [0-9A-Za-z]{1,3})?)"
    r"(?![0-9A-Za-z])"
)
_ALNUM_BLOCK: Final = re.compile(r"[0-9A-Za-z]+")
# No lookbehind needed: the greedy match always ends before a digit, so finditer never starts one
# inside a run, and a leading character class lets the regex engine skip ahead quickly.
_DIGIT_CHAIN: Final = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_DIGIT_GROUP: Final = re.compile(r"[0-9]+")
_DATE: Final = re.compile(
    r"(?<![0-9])(?:(?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])-(?:19|20)[0-9]{2})(?![0-9])"
)
_SEC_ACCESSION: Final = re.compile(r"[0-9]{10}-[0-9]{2}-[0-9]{6}")
# The lookbehinds sit after the first digit so the pattern opens with a character class, which the
# engine can scan for quickly.
_ID_SHAPE: Final = re.compile(
    r"[0-9](?<![0-9]{2})(?<![0-9]-[0-9])"
    r"(?:(?P<ssn>[0-9]{2}-[0-9]{2}-[0-9]{4})|(?P<ein>[0-9]-[0-9]{7}))"
    r"(?![0-9])(?!-[0-9])"
)
_SSN_SHAPE: Final = re.compile(r"[0-9]{3}-[0-9]{2}-[0-9]{4}")
_CODE_PREFIX: Final = re.compile(r"[A-Za-z]+-\Z")
_KEYWORD: Final = re.compile(
    r"\b(?:"
    r"(?P<bank_account>bank\s+account(?:\s+(?:number|no|num))?|account\s+(?:number|no|num)"
    r"|acct|a/c)"
    r"|(?P<routing_number>routing(?:\s+(?:number|no|num))?|aba|sort\s+code"
    r"|transit\s+(?:number|no|num))"
    r"|(?P<ssn>ssn|social\s+security(?:\s+(?:number|no|num))?)"
    r"|(?P<itin>itin|individual\s+taxpayer\s+identification(?:\s+number)?)"
    r"|(?P<tax_id>tax\s+id(?:entification)?(?:\s+number)?|tin)"
    r"|(?P<ein>ein|fein|employer\s+identification(?:\s+number)?)"
    r"|(?P<cvv>cvv2?|cvc2?|csc|security\s+code|card\s+verification\s+(?:value|code|number))"
    r")\b",
    re.IGNORECASE,
)
# Up to three words (two for a CVV) may sit between a keyword and its number ("account number is:
# 1234 5678").
_SEP: Final = r"""[\s:;#=,.?!()\[\]'"/-]{1,3}"""
_GAP_WORD: Final = re.compile(r"[A-Za-z][A-Za-z'.]{0,14}")
_NUMBER_AFTER_KEYWORD: Final = re.compile(
    rf"(?P<gap>(?:{_SEP}{_GAP_WORD.pattern}){{0,3}}?){_SEP}"
    r"(?P<number>[0-9]{1,20}(?:[ -][0-9]{2,20}){0,6})(?![0-9]|[.,][0-9]|\s?%)"
)
_CVV_AFTER_KEYWORD: Final = re.compile(
    rf"(?P<gap>(?:{_SEP}{_GAP_WORD.pattern}){{0,2}}?){_SEP}"
    r"(?P<number>[0-9]{3,4})(?![0-9]|[.,][0-9]|\s?%|[ -][0-9])"
)
_NON_DIGIT: Final = re.compile(r"[^0-9]")
_NON_ALNUM: Final = re.compile(r"[^0-9A-Za-z]")
_KEY_WORD: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


@dataclass(frozen=True)
class Redaction:
    """Text with its secrets masked, and the kinds of secret that were masked."""

    text: str
    kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    kind: str
    tail: str


def redact_text(text: str) -> Redaction:
    """Mask card numbers, IBANs, bank, routing and tax identifiers and CVVs in free text.

    `kinds` names what this call masked; masks already present in `text` are left as they are and
    not counted again.
    """
    found: set[str] = set()
    # A mask can open a word boundary that was not there ("CVC#000CVC#000" becomes
    # "CVC#[CVV]CVC#000", and now the second keyword stands alone), so repeat until a round finds
    # nothing. Every mask holds fewer digits than it replaced, so this ends; in practice one extra
    # round follows a round that found something.
    changed = bool(_ANY_DIGIT.search(text))
    while changed:
        changed = False
        for detect in (_find_ibans, _find_cards, _find_id_shapes, _find_keyword_numbers):
            masks = _mask_spans(text)
            hits = [hit for hit in detect(text, masks) if not _overlaps(hit.start, hit.end, masks)]
            if hits:
                text = _apply(text, hits)
                found.update(hit.kind for hit in hits)
                changed = True
    return Redaction(text, frozenset(found))


def redact_json(value: object) -> tuple[object, frozenset[str]]:
    """Redact every string in a JSON-like value; mask whole values under secret-named keys."""
    found: set[str] = set()
    return _redact_value(value, None, found), frozenset(found)


def redact_exception_message(exc: BaseException) -> str:
    """`str(exc)` with its secrets masked."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break the error path that reports it
        return f"<unprintable {type(exc).__name__}>"
    return redact_text(message).text


class RedactingFilter(logging.Filter):
    """Masks secrets in the rendered message, exception text and stack of every record.

    Attach it to handlers rather than loggers: a logger's filters do not see records propagated up
    from its children. The record is rewritten in place, so later handlers see the masked text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (args already applied) and its traceback text; keep it."""
        record.msg = redact_text(_render(record)).text
        record.args = ()
        if record.exc_info and not record.exc_text:
            # Formatter.format reuses a cached exc_text, so caching the masked text is enough.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text).text
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info).text
        return True


def _render(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # logging reports bad format args itself; the filter must not raise instead
        return f"{record.msg} {record.args!r}"


def _mask(kind: str, tail: str) -> str:
    if kind == CVV:
        return "[CVV]"
    if not tail:
        return f"[{_LABELS[kind]} {_BULLETS}]"
    return f"[{_LABELS[kind]} {_BULLETS} {tail}]"


def _mask_spans(text: str) -> list[tuple[int, int]]:
    if "\u2022" not in text and "[CVV]" not in text:
        return []
    return [match.span() for match in _MASK.finditer(text)]


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < span_end and span_start < end for span_start, span_end in spans)


def _apply(text: str, hits: list[_Hit]) -> str:
    pieces: list[str] = []
    position = 0
    for hit in sorted(hits, key=lambda hit: hit.start):
        pieces.append(text[position : hit.start])
        pieces.append(_mask(hit.kind, hit.tail))
        position = hit.end
    pieces.append(text[position:])
    return "".join(pieces)


def _iban_valid(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _is_itin(digits: str) -> bool:
    if len(digits) != 9 or digits[0] != "9":
        return False
    middle = int(digits[3:5])
    return 50 <= middle <= 65 or 70 <= middle <= 88 or 90 <= middle <= 92 or 94 <= middle <= 99


def _tax_kind(digits: str) -> str:
    return ITIN if _is_itin(digits) else EIN


def _find_ibans(text: str, masks: list[tuple[int, int]]) -> list[_Hit]:
    hits: list[_Hit] = []
    for match in _IBAN_CANDIDATE.finditer(text):
        expected = _IBAN_LENGTHS.get(match.group()[:2].upper())
        if expected is None:
            continue
        # The grouped form may have swallowed a short word after the IBAN; cut at the right length.
        compact = ""
        for block in _ALNUM_BLOCK.finditer(text, match.start(), match.end()):
            compact += block.group().upper()
            if len(compact) >= expected:
                if len(compact) == expected and _iban_valid(compact):
                    hits.append(_Hit(match.start(), block.end(), IBAN, compact[-4:]))
                break
    return hits


def _find_cards(text: str, masks: list[tuple[int, int]]) -> list[_Hit]:
    hits: list[_Hit] = []
    for chain in _DIGIT_CHAIN.finditer(text):
        chain_text = chain.group()
        digit_count = len(chain_text) - chain_text.count(" ") - chain_text.count("-")
        if digit_count < 13 or _SEC_ACCESSION.fullmatch(chain_text):
            continue
        after_plus = chain.start() > 0 and text[chain.start() - 1] == "+"
        if after_plus and digit_count <= 15:
            continue  # an E.164 phone number has at most 15 digits
        groups = list(_DIGIT_GROUP.finditer(text, chain.start(), chain.end()))
        if after_plus:
            groups = groups[1:]  # the phone number's leading group is never part of a card
        dates = []
        if "-" in chain_text:
            dates = [date.span() for date in _DATE.finditer(text, chain.start(), chain.end())]
        # Cards are looked for between dates only: "2026-09-01 2026-09-30" is two dates.
        run: list[re.Match[str]] = []
        for group in groups:
            if dates and _overlaps(group.start(), group.end(), dates):
                hits.extend(_cards_in_run(run))
                run = []
            else:
                run.append(group)
        hits.extend(_cards_in_run(run))
    return hits


def _cards_in_run(groups: list[re.Match[str]]) -> list[_Hit]:
    """Leftmost-longest runs of whole groups that read as a card number."""
    digits = "".join(group.group() for group in groups)
    offsets = [0]
    for group in groups:
        offsets.append(offsets[-1] + len(group.group()))
    # Prefix sums give each candidate's Luhn sum in constant time, so a long chain of short groups
    # (digits read out one at a time) stays cheap. even_plain[i] sums the digits before i with those
    # at odd positions doubled; odd_plain doubles those at even positions instead.
    even_plain, odd_plain = [0], [0]
    for position, char in enumerate(digits):
        value, doubled = ord(char) - 48, _LUHN_DOUBLED[ord(char) - 48]
        if position % 2:
            value, doubled = doubled, value
        even_plain.append(even_plain[-1] + value)
        odd_plain.append(odd_plain[-1] + doubled)
    hits: list[_Hit] = []
    start = 0
    while start < len(groups):
        found = None
        low = offsets[start]
        # No card network issues numbers starting with 0; zero-padded ids do.
        if digits[low] != "0":
            end = bisect_right(offsets, low + 19) - 2
            while end >= start and offsets[end + 1] - low >= 13:
                high = offsets[end + 1]
                # The rightmost digit is never doubled: pick the sums whose plain parity is its own.
                sums = even_plain if (high - 1) % 2 == 0 else odd_plain
                if (sums[high] - sums[low]) % 10 == 0:
                    found = end
                    first_char, last_char = groups[start].start(), groups[end].end()
                    hits.append(_Hit(first_char, last_char, CARD, digits[high - 4 : high]))
                    break
                end -= 1
        start = start + 1 if found is None else found + 1
    return hits


def _find_id_shapes(text: str, masks: list[tuple[int, int]]) -> list[_Hit]:
    hits: list[_Hit] = []
    for match in _ID_SHAPE.finditer(text):
        prefix = _CODE_PREFIX.search(text, max(0, match.start() - 16), match.start())
        if prefix:
            # "INV-12-3456789" is a document code; "SSN-123-45-6789" is caught by its keyword.
            continue
        digits = match.group().replace("-", "")
        kind = EIN if match.lastgroup == "ein" else ITIN if _is_itin(digits) else SSN
        hits.append(_Hit(match.start(), match.end(), kind, digits[-4:]))
    return hits


def _find_keyword_numbers(text: str, masks: list[tuple[int, int]]) -> list[_Hit]:
    by_start: dict[int, _Hit] = {}
    for keyword in _keywords(text):
        if keyword.lastgroup is None:
            continue
        hit = _number_after(text, keyword.end(), keyword.lastgroup)
        # Reading across a mask ("cvv [CVV] 000") would find a number the first pass passed over.
        if hit is not None and not _overlaps(keyword.start(), hit.end, masks):
            # Gap words hold no digits, so a later keyword for the same number is the nearer one.
            by_start[hit.start] = hit
    return list(by_start.values())


def _keywords(text: str) -> list[re.Match[str]]:
    """Keyword matches in order, found by plain substring search first.

    Trying the case-insensitive alternation at every position of a 5 KB transcript costs about
    0.45 ms; finding the first words with str.find and matching only there costs under 0.1 ms.
    """
    lowered = text.lower()
    if len(lowered) != len(text):  # some characters lower-case to two; positions would drift
        return list(_KEYWORD.finditer(text))
    starts: set[int] = set()
    for word in _KEYWORD_FIRST_WORDS:
        position = lowered.find(word)
        while position != -1:
            starts.add(position)
            position = lowered.find(word, position + 1)
    matches = (_KEYWORD.match(text, position) for position in sorted(starts))
    return [match for match in matches if match is not None]


def _number_after(text: str, position: int, kind: str) -> _Hit | None:
    tail_pattern = _CVV_AFTER_KEYWORD if kind == CVV else _NUMBER_AFTER_KEYWORD
    match = tail_pattern.match(text, position)
    if match is None:
        return None
    gap_words = _GAP_WORD.findall(match.group("gap"))
    if any(_UNRELATED_WORD.fullmatch(word.strip("'.")) for word in gap_words):
        return None
    number = match.group("number")
    if _DATE.fullmatch(number):
        return None
    digits = _NON_DIGIT.sub("", number)
    start, end = match.span("number")
    if kind == CVV:
        return _Hit(start, end, CVV, "")
    if kind == BANK_ACCOUNT:
        return _Hit(start, end, kind, digits[-4:]) if 5 <= len(digits) <= 20 else None
    if kind == ROUTING_NUMBER:
        return _Hit(start, end, kind, digits[-4:]) if 6 <= len(digits) <= 9 else None
    if len(digits) != 9:
        return None
    return _Hit(start, end, _tax_kind(digits) if kind == _TAX_ID else kind, digits[-4:])


def _secret_kind(key: object) -> str | None:
    if not isinstance(key, str):
        return None
    match = _SECRET_KEY.search("_".join(_KEY_WORD.findall(key)).lower())
    return match.lastgroup if match else None


def _redact_value(value: object, secret: str | None, found: set[str]) -> object:
    if isinstance(value, dict):
        return {
            key: _redact_value(item, secret or _secret_kind(key), found)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_value(item, secret, found) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(item, secret, found) for item in value)
    if secret is not None:
        return _mask_whole(value, secret, found)
    if isinstance(value, str):
        redaction = redact_text(value)
        found.update(redaction.kinds)
        return redaction.text
    return value


def _mask_whole(value: object, kind: str, found: set[str]) -> object:
    if value is None or isinstance(value, bool):
        return value
    # str() of a float ends in ".0" or uses e-notation, either of which changes the last four.
    raw = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if not raw.strip() or _MASK.fullmatch(raw.strip()):
        return value
    characters = _NON_ALNUM.sub("", raw).upper() if kind == IBAN else _NON_DIGIT.sub("", raw)
    if kind == _TAX_ID:
        kind = _tax_kind(characters)
        if kind == EIN and _SSN_SHAPE.fullmatch(raw.strip()):
            kind = SSN
    found.add(kind)
    # A short value would be shown whole by its last four, so show nothing of it.
    return _mask(kind, characters[-4:] if len(characters) > 4 else "")
