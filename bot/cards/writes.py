"""Messages posted in a card's thread about its decision write (DESIGN §8).

The results of an approved Polygon.io action (a ticker's events as a dated list, a filing's files
with sizes and source links, or "not found"), and the alert for a write that failed for good,
which carries a Retry button for the intent's approvers. Lists are bounded to Slack's limits and
say how much was left out. Pure functions: they return blocks and fallback text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.cards.common import (
    MAX_BLOCKS,
    MAX_FALLBACK_TEXT,
    MAX_SECTION_TEXT,
    Block,
    button,
    context,
    esc,
    escape,
    link,
    mention,
    section,
    truncate_mrkdwn,
)
from bot.cards.state import code_span
from bot.domain import POLYGON_INTENTS, RequestView
from bot.slack_ids import CardRef, SlackId

if TYPE_CHECKING:  # the connectors import these builders; only their types come back here
    from bot.connectors.polygon import FilingFiles, TickerEvents

__all__ = [
    "MAX_LISTED",
    "filing_files_message",
    "not_found_message",
    "ticker_events_message",
    "write_failed_message",
]

MAX_LISTED = 100  # lines of a list; more would bury the thread
NAME_CHARS = 200
REASON_CHARS = 1000
# Room left for the heading, the "left out" line and the footer.
_LIST_BLOCKS = MAX_BLOCKS - 4


def ticker_events_message(found: TickerEvents) -> tuple[list[Block], str]:
    """A ticker's events, newest first as Polygon.io lists them, one dated line each."""
    title = f"*Ticker events for {code_span(found.asked)}*"
    if found.name:
        title += f" · {esc(found.name, NAME_CHARS)}"
    ids = [
        f"CIK {code_span(found.cik)}" if found.cik else "",
        f"FIGI {code_span(found.composite_figi)}" if found.composite_figi else "",
    ]
    heading = "\n".join(part for part in (title, " · ".join(i for i in ids if i)) if part)
    lines = [_event_line(e.date, e.type, e.ticker) for e in found.events]
    if not lines:
        heading += "\nPolygon.io lists no events for this ticker."
    count = len(found.events)
    text = f"Ticker events for {escape(found.asked)}: {count} event{'s' if count != 1 else ''}"
    return _listing(heading, lines, _footer(found.request_id)), _fallback(text)


def filing_files_message(listing: FilingFiles) -> tuple[list[Block], str]:
    """A filing's files: name (linked to its source), type or description, and size."""
    count = listing.count
    files = f"{count:,} file{'s' if count != 1 else ''}"
    heading = (
        f"*Files of filing {code_span(listing.filing_id)}*: {files},"
        f" {human_size(listing.total_bytes)}"
    )
    if not listing.complete:
        heading += (
            f"\n:warning: Listed the first {listing.pages} pages only; Polygon.io has more files"
            " that were not listed."
        )
    if not listing.files:
        heading += "\nPolygon.io lists no files for this filing."
    lines = [_file_line(item) for item in listing.files]
    unkept = count - len(listing.files)  # counted while paging, but not kept to be shown
    text = f"Files of filing {escape(listing.filing_id)}: {count:,}"
    blocks = _listing(heading, lines, "From Polygon.io", also_left_out=unkept)
    return blocks, _fallback(text)


def not_found_message(kind: str, ident: str) -> tuple[list[Block], str]:
    """Polygon.io answered 404: the approved lookup ran and found nothing."""
    line = f":grey_question: Polygon.io has no {esc(kind, 20)} {code_span(ident)} (not found)."
    return [section(line)], _fallback(f"Polygon.io has no {escape(kind)} {escape(ident)}")


def write_failed_message(view: RequestView, reason: str) -> tuple[list[Block], str]:
    """The alert for a write that will not be tried again on its own, with a Retry button."""
    target = "Polygon.io action" if view.intent in POLYGON_INTENTS else "outcome record"
    lines = [
        f":x: *The {target} for this decision failed.*",
        esc(reason, REASON_CHARS) or "No reason was recorded.",
        "Retry sends it again under the same idempotency key, so it takes effect at most once."
        " Approvers of this request can retry.",
    ]
    owner = view.captured.finance_owner
    if owner:
        lines.append(f"{mention(owner)}, this decision is not written yet.")
    value = CardRef(request_id=view.request_id, version=view.version).encode()
    retry = button("Retry write", SlackId.RETRY_WRITE, value, style="primary")
    blocks: list[Block] = [
        section("\n".join(lines)),
        {"type": "actions", "block_id": value, "elements": [retry]},
    ]
    text = f"The {target} for call {escape(view.call_id)} failed: {esc(reason, 300)}"
    if owner:
        text = f"{mention(owner)} {text}"
    return blocks, _fallback(text)


def human_size(size: int) -> str:
    """`12.6 KB`, `1.8 MB`: sizes in binary units, one decimal."""
    value = float(max(size, 0))
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _event_line(date: str, kind: str, ticker: str | None) -> str:
    when = code_span(date) if date else "`undated`"
    line = f"• {when} {esc(kind.replace('_', ' '), 60)}"
    return f"{line} → {code_span(ticker)}" if ticker else line


def _file_line(item: Any) -> str:
    name = esc(item.filename, NAME_CHARS)
    shown = link(item.source_url, name) or name
    about = item.type or item.description
    parts = [shown]
    if about:
        parts.append(esc(about, 60))
    if item.size_bytes is not None:
        parts.append(human_size(item.size_bytes))
    return "• " + " · ".join(parts)


def _listing(heading: str, lines: list[str], footer: str, *, also_left_out: int = 0) -> list[Block]:
    """Heading, the lines packed into sections within Slack's limits, and what was left out."""
    blocks: list[Block] = [section(heading)]
    chunk: list[str] = []
    size = 0
    shown = 0
    for line in lines[:MAX_LISTED]:
        line = truncate_mrkdwn(line, MAX_SECTION_TEXT)
        if chunk and size + len(line) + 1 > MAX_SECTION_TEXT:
            if len(blocks) >= _LIST_BLOCKS:
                break
            blocks.append(section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
        shown += 1
    if chunk:
        blocks.append(section("\n".join(chunk)))
    left_out = len(lines) - shown + also_left_out
    if left_out > 0:
        blocks.append(section(f"…and {left_out:,} more not shown here."))
    blocks.append(context([footer]))
    return blocks


def _footer(request_id: str | None) -> str:
    return f"From Polygon.io · request {code_span(request_id)}" if request_id else "From Polygon.io"


def _fallback(text: str) -> str:
    return truncate_mrkdwn(text, MAX_FALLBACK_TEXT)
