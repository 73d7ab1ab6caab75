"""Lookup answers: the ephemeral messages of `/dialnexa` and the lookup shortcut's modals.

Pure builders, like the card's: summaries, views and `now` in, Block Kit out. What they show is
already redacted in storage; a sensitive request's summary is held back as on its card, and no
lookup ever shows transcript text. Links to cards are built from the workspace URL and the
stored channel and message ts (`base_url` None: the channel is named instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from bot.cards.approval import approval_text, approval_title
from bot.cards.common import (
    INTENT_LABELS,
    MAX_BLOCKS,
    MAX_INPUT_LABEL,
    MAX_MODAL_BUTTON,
    MAX_MODAL_TITLE,
    Block,
    channel_ref,
    context,
    date_token,
    duration,
    esc,
    field_sections,
    format_amount,
    header,
    link,
    plain,
    relative,
    section,
    span,
)
from bot.cards.state import (
    STATUS_LABELS,
    SUPPRESSED_NOTICE,
    code_span,
    facts,
    history_line,
    is_sensitive,
    link_items,
    status_lines,
)
from bot.domain import RequestStatus, RequestView
from bot.slack_ids import CardRef, SlackId
from bot.summary import CardCopy, ReminderLine, RequestSummary, message_link

LOOKUP_BLOCK_ID = "lookup"
SUMMARY_CHARS = 1200
HISTORY_LINES = 10
QUERY_CHARS = 80

HELP = (
    "*Look up a DialNexa call*\n"
    "• `/dialnexa call_q7Lm2xR9tB4k`: by call id\n"
    "• `/dialnexa +1 415 555 0123`: by phone, with or without + and spaces\n"
    "• `/dialnexa priya@example.com`: by email, in any case\n"
    "• `/dialnexa INV-2041`: by invoice number, exactly as written\n"
    "• `/dialnexa pending`: the requests waiting for your decision, oldest first"
)

_REMINDER_LABELS = {
    "deadline_before": "Ahead of the follow-up deadline",
    "deadline_at": "At the follow-up deadline",
    "sla_nudge": "Nudge to the approvers",
    "promise_date": "Promise date",
}
_COPY_LABELS = {"primary": "Card", "escalation": "Escalation copy", "routed": "Routed copy"}


class Message(NamedTuple):
    """An ephemeral answer: fallback text and blocks."""

    text: str
    blocks: list[Block]


def help_message() -> Message:
    """What `/dialnexa` can look up."""
    return Message("How to look up a DialNexa call", [section(HELP)])


def notice(text: str) -> Message:
    """A one-paragraph answer (a refusal, bad input); `text` is ours, already mrkdwn."""
    return Message(text, [section(text)])


def bad_input(problem: str) -> Message:
    """Input that cannot be looked up, with what to type instead."""
    return Message(problem, [section(f":grey_question: {problem}"), context([_help_hint()])])


def no_match(query: str, kinds: Sequence[str], *, hint: str | None = None) -> Message:
    """Nothing found: what was searched, and how to search otherwise (`hint` is ours)."""
    shown = code_span(query[:QUERY_CHARS])
    searched = f" (searched by {', '.join(kinds)})" if kinds else ""
    advice = hint or "Check the spelling, or look it up by another of its details."
    return Message(
        f"No call matches {query[:QUERY_CHARS]}",
        [section(f":mag: No call matches {shown}{searched}. {advice}"), context([_help_hint()])],
    )


def match_list(
    query: str,
    matches: Sequence[RequestSummary],
    *,
    more: bool,
    base_url: str | None,
) -> Message:
    """Several matches, newest first, each with a Show button."""
    shown = code_span(query[:QUERY_CHARS])
    if more:
        title = f"*More than {len(matches)} calls match {shown}*; the {len(matches)} most recent:"
    else:
        title = f"*{len(matches)} calls match {shown}*, most recent first:"
    blocks: list[Block] = [section(title)]
    for match in matches[: MAX_BLOCKS - 2]:
        block = section(summary_line(match, base_url))
        ref = CardRef(request_id=match.request_id, version=match.version).encode()
        block["accessory"] = {
            "type": "button",
            "action_id": SlackId.LOOKUP_SHOW,
            "text": plain("Show", 75),
            "value": ref,
        }
        blocks.append(block)
    return Message(f"{len(matches)} calls match {query[:QUERY_CHARS]}", blocks)


def call_detail(
    view: RequestView,
    *,
    reminders: Sequence[ReminderLine],
    cards: Sequence[CardCopy],
    base_url: str | None,
    now: datetime,
) -> Message:
    """One call: what was asked, what was captured, decisions, write, notes, reminders, links."""
    received = f"received {date_token(view.created_at)}"
    state = f"*{STATUS_LABELS[view.status].capitalize()}* · {INTENT_LABELS[view.intent]}"
    blocks: list[Block] = [header(approval_title(view)), section(f"{state} · {received}")]
    if is_sensitive(view):
        blocks.append(section(f":lock: {SUPPRESSED_NOTICE}. The summary stays out of Slack."))
    elif view.summary and view.summary.strip():
        summary = esc(view.summary, SUMMARY_CHARS, multiline=True)
        blocks.append(section(f"*What the caller asked*\n{summary}"))
    blocks += field_sections(facts(view, now))
    lines = status_lines(view)
    if view.status is not RequestStatus.NOTED and view.history:
        # Noted requests list their history in the status lines already.
        entries = view.history[-HISTORY_LINES:]
        earlier = len(view.history) - len(entries)
        lines.append("*History*" + (f" ({earlier} earlier not shown)" if earlier else ""))
        lines += [history_line(entry) for entry in entries]
    if lines:
        blocks.append(section("\n".join(lines)))
    if reminders:
        blocks.append(section("*Reminders*\n" + "\n".join(_reminder(r, now) for r in reminders)))
    links = link_items(view) + [_card_link(copy, base_url) for copy in cards]
    if links:
        blocks.append(section(":link: " + " · ".join(links)))
    footer = [f"Call {code_span(view.call_id)}", f"request {code_span(view.request_id)}"]
    if view.agent_id:
        footer.append(f"agent {code_span(view.agent_id)}")
    if view.duration_seconds is not None:
        footer.append(duration(view.duration_seconds))
    blocks.append(context([" · ".join(footer)]))
    return Message(approval_text(view), blocks)


class PendingItem(NamedTuple):
    """A request waiting for a decision, with the moment its SLA runs out."""

    request: RequestSummary
    due_at: datetime


def pending_list(
    items: Sequence[PendingItem],
    *,
    total: int,
    capped: bool,
    incomplete: bool,
    base_url: str | None,
    now: datetime,
) -> Message:
    """`/dialnexa pending`: what the caller may decide, oldest first, with SLA state and links."""
    if not items:
        text = ":white_check_mark: Nothing is waiting for your decision."
        blocks = [section(text)]
    else:
        count = f"{total}+" if capped else str(total)
        noun = "request" if total == 1 and not capped else "requests"
        text = f"{count} {noun} waiting for your decision"
        blocks = [section(f"*{text}*, oldest first:")]
        blocks += [section(pending_line(item, base_url, now)) for item in items]
        more = total - len(items)
        if more > 0 or capped:
            blocks.append(context([f"and {more}{'+' if capped else ''} more"]))
    if incomplete:
        blocks.append(
            context(["Some user groups could not be checked with Slack; the list may be short."])
        )
    return Message(text, blocks[:MAX_BLOCKS])


def pending_line(item: PendingItem, base_url: str | None, now: datetime) -> str:
    """A waiting request and where its SLA stands."""
    return summary_line(item.request, base_url) + "\n" + sla_state(item.due_at, now)


def sla_state(due_at: datetime, now: datetime) -> str:
    """`SLA due in 3 h`, or `past its SLA by 2 h` once breached."""
    if due_at <= now:
        return f":rotating_light: Past its SLA by {span(now - due_at)}"
    return f":hourglass_flowing_sand: SLA due {relative(due_at, now)}"


def summary_title(summary: RequestSummary) -> str:
    """`Refund request · 120.00 USD`: the intent's label and amount (safe for a link label)."""
    label = INTENT_LABELS[summary.intent]
    if summary.amount is None:
        return label
    return f"{label} · {format_amount(summary.amount, summary.currency)}"


def summary_line(summary: RequestSummary, base_url: str | None) -> str:
    """`*Refund request · 120.00 USD* · Priya · pending · received <date>` and the call id."""
    title = summary_title(summary)
    copy = summary.card()
    url = message_link(base_url, copy) if copy is not None and base_url else None
    parts = [link(url, title) or f"*{esc(title, 150)}*"]
    if summary.customer_name:
        parts.append(esc(summary.customer_name, 80))
    parts.append(STATUS_LABELS[summary.status])
    parts.append(f"received {date_token(summary.created_at)}")
    where = f" · card in {channel_ref(copy.channel)}" if copy is not None and url is None else ""
    return " · ".join(parts) + f"\nCall {code_span(summary.call_id)}{where}"


def lookup_modal() -> dict[str, Any]:
    """The shortcut's modal: one field for a call id, phone, email or invoice number."""
    return {
        "type": "modal",
        "callback_id": SlackId.LOOKUP_QUERY,
        "title": plain("Look up a call", MAX_MODAL_TITLE),
        "submit": plain("Look up", MAX_MODAL_BUTTON),
        "close": plain("Cancel", MAX_MODAL_BUTTON),
        "blocks": [
            {
                "type": "input",
                "block_id": LOOKUP_BLOCK_ID,
                "label": plain("Call id, phone, email or invoice number", MAX_INPUT_LABEL),
                "element": {
                    "type": "plain_text_input",
                    "action_id": SlackId.LOOKUP_INPUT,
                    "max_length": 200,
                    "placeholder": plain("+1 415 555 0123", 150),
                },
            },
            context(["Type `pending` for the requests waiting for your decision."]),
        ],
    }


def result_modal(message: Message) -> dict[str, Any]:
    """A lookup answer shown in the shortcut's modal instead of a message."""
    return {
        "type": "modal",
        "callback_id": SlackId.LOOKUP_QUERY,
        "title": plain("Call lookup", MAX_MODAL_TITLE),
        "close": plain("Done", MAX_MODAL_BUTTON),
        "blocks": message.blocks[:MAX_BLOCKS],
    }


def _help_hint() -> str:
    return "Try `/dialnexa help` for examples, or `/dialnexa pending` for your queue."


def _reminder(reminder: ReminderLine, now: datetime) -> str:
    label = _REMINDER_LABELS.get(reminder.kind, reminder.kind.replace("_", " ").capitalize())
    when = f"{date_token(reminder.due_at)} ({relative(reminder.due_at, now)})"
    return f"• {esc(label, 60)} · {when}"


def _card_link(copy: CardCopy, base_url: str | None) -> str:
    label = _COPY_LABELS.get(copy.role, "Card")
    url = message_link(base_url, copy) if base_url else None
    return link(url, label) or f"{label} in {channel_ref(copy.channel)}"
