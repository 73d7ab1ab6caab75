"""The finance alert: a short message in the alerts channel pointing at an approval card.

Raised for VIP blockers, high values, disputes, sensitive data and close deadlines
(DESIGN §6). It mentions the owner in the blocks and in the fallback text, so the
notification itself names the person who must act.
"""

from __future__ import annotations

from bot.cards.approval import approval_title
from bot.cards.common import (
    MAX_FALLBACK_TEXT,
    Block,
    channel_ref,
    context,
    esc,
    escape,
    field_sections,
    link,
    mention,
    section,
    short_call_id,
    truncate_mrkdwn,
)
from bot.cards.state import STATUS_LABELS, SUPPRESSED_NOTICE, code_span, facts, is_sensitive
from bot.domain import RequestView

MAX_REASONS = 10
REASON_CHARS = 300
SUMMARY_CHARS = 300


def alert_message(
    view: RequestView, *, reasons: list[str], owner: str | None, card_link: str | None
) -> tuple[list[Block], str]:
    """Blocks and fallback text for an alert about `view`.

    `reasons` are the policy's words for why finance is alerted; `owner` is a Slack user or
    user-group id (mentioned) or any other name (shown as text); `card_link` is the
    approval card's permalink, when known.
    """
    title = esc(approval_title(view), 200)
    lines = [f":rotating_light: *Finance alert: {title}*"]
    if owner:
        lines.append(f"{mention(owner)}, this needs your attention.")
    shown = [f"• {esc(reason, REASON_CHARS)}" for reason in reasons[:MAX_REASONS]]
    if len(reasons) > MAX_REASONS:
        shown.append(f"• and {len(reasons) - MAX_REASONS} more")
    lines += shown
    blocks: list[Block] = [section("\n".join(lines))]

    if is_sensitive(view):
        blocks.append(section(f":lock: {SUPPRESSED_NOTICE}."))
    elif view.summary and view.summary.strip():
        blocks.append(section(esc(view.summary, SUMMARY_CHARS)))
    blocks += field_sections(facts(view))

    card = link(card_link, "Open the approval card")
    if card:
        blocks.append(section(f":point_right: {card}"))
    elif view.channel:
        blocks.append(section(f":point_right: The approval card is in {channel_ref(view.channel)}"))
    blocks.append(context([f"Call {code_span(view.call_id)} · {STATUS_LABELS[view.status]}"]))
    return blocks, _alert_text(view, reasons, owner)


def _alert_text(view: RequestView, reasons: list[str], owner: str | None) -> str:
    parts = [
        f"Finance alert: {escape(approval_title(view))}",
        escape(short_call_id(view.call_id)),
    ]
    if reasons:
        parts.append("; ".join(esc(reason, REASON_CHARS) for reason in reasons[:MAX_REASONS]))
    text = " · ".join(parts)
    # A mention in the fallback text is what makes the notification name the owner.
    if owner:
        text = f"{mention(owner)} {text}"
    return truncate_mrkdwn(text, MAX_FALLBACK_TEXT)
