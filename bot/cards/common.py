"""Block Kit limits, escaping, truncation and the small formatters every card shares.

Call data reaches a card only through `esc` (mrkdwn) or `plain` (plain_text): both strip
control characters and cut to a limit, and `esc` also escapes `&`, `<` and `>` so a caller
cannot smuggle a mention, a broadcast or a link into a finance channel. Every `<…>` token
in a card is therefore built here, by `mention`, `channel_ref`, `date_token` and `link`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from bot.domain import Intent

Block = dict[str, Any]

# Slack's hard limits (Block Kit reference).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 3000
MAX_MODAL_TITLE = 24
MAX_MODAL_BUTTON = 24
MAX_OPTION_TEXT = 75
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
MAX_INPUT_LABEL = 2000
MAX_BLOCK_ID = 255
# Slack truncates longer message text; notifications show far less.
MAX_FALLBACK_TEXT = 4000

ELLIPSIS = "…"

INTENT_LABELS: dict[Intent, str] = {
    Intent.REFUND_REQUEST: "Refund request",
    Intent.CHARGE_DISPUTE: "Charge dispute",
    Intent.INVOICE_RESEND: "Invoice resend",
    Intent.RECEIPT_TO_VERIFIED_EMAIL: "Receipt to verified email",
    Intent.SUBSCRIPTION_RENEWAL_FAILED: "Subscription renewal failed",
    Intent.BILLING_DETAILS_CORRECTION: "Billing details correction",
    Intent.VIP_PAYMENT_BLOCKER: "VIP payment blocker",
    Intent.COLLECTIONS_NOTE: "Collections note",
    Intent.TICKER_EVENTS_LOOKUP: "Ticker events lookup",
    Intent.FILING_FILES_REQUEST: "Filing files request",
    Intent.UNKNOWN: "Unclassified call",
}

# ISO 4217 minor units where they are not 2; an unknown or missing currency gets 2.
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND"),
        0,
    ),
    **dict.fromkeys(("VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")
_NOT_CODE = re.compile(r"[^A-Za-z0-9]")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{3,20}")
_SLACK_USERGROUP = re.compile(r"S[A-Z0-9]{3,20}")
_SLACK_CHANNEL = re.compile(r"[CG][A-Z0-9]{3,20}")
# Characters that would end or split a `<url|label>` token; percent-encoding keeps the URL.
_URL_UNSAFE = {"<": "%3C", ">": "%3E", "|": "%7C", " ": "%20", '"': "%22"}
MAX_URL_LENGTH = 1000


def clean(text: str) -> str:
    """Drop control characters (keeping newlines and tabs)."""
    return _CONTROL_CHARS.sub("", text)


def one_line(text: str) -> str:
    """Collapse every run of whitespace, newlines included, to one space."""
    return _WHITESPACE.sub(" ", clean(text)).strip()


def escape(text: str) -> str:
    """Escape the three characters Slack treats as markup in mrkdwn and message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Cut plain text to at most `limit` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + ELLIPSIS


def truncate_mrkdwn(text: str, limit: int) -> str:
    """Cut escaped mrkdwn to `limit` characters without splitting an entity or a `<…>` token.

    Every `&` in escaped text opens an entity and every `<` opens a token built here, so
    an unterminated one near the cut is dropped whole rather than left half-written.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    lt = cut.rfind("<")
    if lt != -1 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return cut.rstrip() + ELLIPSIS


def esc(text: str, limit: int, *, multiline: bool = False) -> str:
    """Call data made safe for mrkdwn: cleaned, escaped and cut to `limit`."""
    tidy = clean(text).strip() if multiline else one_line(text)
    return truncate_mrkdwn(escape(tidy), limit)


def plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object; Slack shows it literally, so it is cleaned and cut, not escaped."""
    return {"type": "plain_text", "text": truncate(one_line(text), limit) or ELLIPSIS}


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """A mrkdwn text object from already escaped text, cut to `limit` as a last guard."""
    return {"type": "mrkdwn", "text": truncate_mrkdwn(text, limit)}


def header(text: str) -> Block:
    """A header block."""
    return {"type": "header", "text": plain(text, MAX_HEADER_TEXT)}


def section(text: str) -> Block:
    """A section block of escaped mrkdwn."""
    return {"type": "section", "text": mrkdwn(text)}


def field_sections(fields: list[str]) -> list[Block]:
    """Sections of two-column fields, at most ten fields each."""
    return [
        {
            "type": "section",
            "fields": [mrkdwn(f, MAX_FIELD_TEXT) for f in fields[start : start + MAX_FIELDS]],
        }
        for start in range(0, len(fields), MAX_FIELDS)
    ]


def context(parts: list[str]) -> Block:
    """A context block of escaped mrkdwn elements, at most ten."""
    return {
        "type": "context",
        "elements": [mrkdwn(p, MAX_CONTEXT_TEXT) for p in parts[:MAX_CONTEXT_ELEMENTS]],
    }


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A button element; `value` must already be short (a `CardRef`)."""
    if len(value) > MAX_BUTTON_VALUE:
        raise ValueError(f"button value is {len(value)} characters, over {MAX_BUTTON_VALUE}")
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": plain(text, MAX_BUTTON_TEXT),
        "value": value,
    }
    if style is not None:
        element["style"] = style
    if confirm is not None:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, *, confirm: str, deny: str = "Cancel") -> dict[str, Any]:
    """A confirm object; `text` is plain text."""
    return {
        "title": plain(title, MAX_CONFIRM_TITLE),
        "text": plain(text, MAX_CONFIRM_TEXT),
        "confirm": plain(confirm, MAX_CONFIRM_BUTTON),
        "deny": plain(deny, MAX_CONFIRM_BUTTON),
    }


def mention(who: str | None) -> str:
    """A user or user-group mention when `who` looks like a Slack id, else escaped text."""
    if not who:
        return "nobody"
    who = who.strip()
    if _SLACK_USER.fullmatch(who):
        return f"<@{who}>"
    if _SLACK_USERGROUP.fullmatch(who):
        return f"<!subteam^{who}>"
    return esc(who, 200)


def channel_ref(channel: str | None) -> str:
    """A channel link when `channel` looks like a Slack id, else escaped text."""
    if not channel:
        return "another channel"
    channel = channel.strip()
    if _SLACK_CHANNEL.fullmatch(channel):
        return f"<#{channel}>"
    return esc(channel, 200)


def _utc(moment: datetime) -> datetime:
    # Stored deadlines are timezone-aware; a naive one is taken as UTC rather than local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def date_token(moment: datetime, *, with_time: bool = True) -> str:
    """Slack's date token: each reader sees it in their own time zone; the fallback is UTC."""
    moment = _utc(moment)
    if with_time:
        fmt, fallback = "{date_short_pretty} {time}", moment.strftime("%Y-%m-%d %H:%M UTC")
    else:
        fmt, fallback = "{date_short_pretty}", moment.strftime("%Y-%m-%d")
    return f"<!date^{int(moment.timestamp())}^{fmt}|{fallback}>"


def span(delta: timedelta) -> str:
    """A rough length of time: `45 min`, `5 h`, `3 d`."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 90:
        return f"{max(minutes, 1)} min"
    if minutes < 48 * 60:
        return f"{round(minutes / 60)} h"
    return f"{round(minutes / 1440)} d"


def relative(moment: datetime, now: datetime) -> str:
    """`in 5 h` or `overdue by 2 d`, measured from `now`."""
    delta = _utc(moment) - _utc(now)
    return f"in {span(delta)}" if delta >= timedelta(0) else f"overdue by {span(delta)}"


def duration(seconds: int) -> str:
    """A call length: `3m 12s`, `1h 02m`."""
    seconds = max(seconds, 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def format_amount(amount: Decimal, currency: str | None) -> str:
    """`4,500.00 INR`: thousands separators and the currency's minor units.

    The currency is reduced to letters and digits, so the result is safe in mrkdwn as is.
    """
    code = _NOT_CODE.sub("", currency).upper()[:10] if currency else ""
    if not amount.is_finite():
        number = str(amount)
    else:
        places = _MINOR_UNITS.get(code, 2)
        exponent = amount.as_tuple().exponent
        # Keep precision the caller gave beyond the minor units rather than rounding money.
        if isinstance(exponent, int) and -exponent > places:
            number = f"{amount:,f}"
        else:
            number = f"{amount:,.{places}f}"
    return f"{number} {code}" if code else number


def short_call_id(call_id: str) -> str:
    """The first characters of a call id, enough to recognise it in a notification."""
    return truncate(one_line(call_id), 10)


def link(url: str | None, label: str) -> str | None:
    """`<url|label>` for an http(s) URL, or None when there is no usable URL.

    `label` is ours, not call data. Characters that would break the token are
    percent-encoded and `&` is escaped, as Slack expects inside links.
    """
    if not url:
        return None
    url = one_line(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if len(url) > MAX_URL_LENGTH:
        return None
    safe = url.replace("&", "&amp;")
    for char, code in _URL_UNSAFE.items():
        safe = safe.replace(char, code)
    return f"<{safe}|{label}>"
