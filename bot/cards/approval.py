"""The approval card: one request rendered from database state (DESIGN §6 to §8).

While a person can still act the card carries buttons: Approve / Reject / Escalate, the
classify select in triage, or the notes buttons for a collections note. Once decided it
carries the decision line and the write status instead, and a button only when the write
is dead and can be retried. Every copy of a card is rebuilt from the same `RequestView`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.cards.common import (
    INTENT_LABELS,
    MAX_FALLBACK_TEXT,
    Block,
    button,
    confirm_dialog,
    context,
    date_token,
    duration,
    esc,
    escape,
    field_sections,
    header,
    plain,
    section,
    short_call_id,
    truncate_mrkdwn,
)
from bot.cards.state import (
    DECIDING_STATUSES,
    EMAIL_INTENTS,
    STATUS_LABELS,
    SUPPRESSED_NOTICE,
    amount_text,
    code_span,
    facts,
    is_sensitive,
    link_items,
    status_lines,
)
from bot.domain import Intent, RequestStatus, RequestView, RiskFlag, WriteStatus
from bot.slack_ids import CardRef, SlackId

# Approving these moves money, so Approve asks for confirmation and states the amount.
MONEY_INTENTS = frozenset(
    {
        Intent.REFUND_REQUEST,
        Intent.CHARGE_DISPUTE,
        Intent.SUBSCRIPTION_RENEWAL_FAILED,
        Intent.VIP_PAYMENT_BLOCKER,
    }
)

# Display budgets, well inside Slack's limits, so the card reads at a glance.
SUMMARY_CHARS = 1200
TURN_CHARS = 280
TRANSCRIPT_TURNS = 4
UNPARSED_NAMES = 10

_BADGES: dict[RiskFlag, str] = {
    RiskFlag.VIP: ":star: VIP",
    RiskFlag.HIGH_VALUE: ":moneybag: High value",
    RiskFlag.SENSITIVE: ":lock: Sensitive data suppressed",
    RiskFlag.UNVERIFIED_EMAIL: ":warning: Unverified email",
    RiskFlag.LOW_CONFIDENCE: ":grey_question: Low confidence",
    RiskFlag.UNPARSED_FIELDS: ":jigsaw: Unparsed fields",
    RiskFlag.DEADLINE_SOON: ":alarm_clock: Deadline soon",
}

_SPEAKERS = {"user": "Caller", "customer": "Caller", "caller": "Caller", "agent": "Agent"}


def approval_title(view: RequestView) -> str:
    """`Refund request · 4,500.00 INR`, raw text (plain_text or input to `esc`)."""
    amount = amount_text(view)
    label = INTENT_LABELS[view.intent]
    return f"{label} · {amount}" if amount else label


def approval_text(view: RequestView) -> str:
    """The message's fallback `text`, for notifications and screen readers; never empty."""
    parts = [
        escape(approval_title(view)),
        escape(short_call_id(view.call_id)),
        STATUS_LABELS[view.status],
    ]
    return truncate_mrkdwn(" · ".join(p for p in parts if p), MAX_FALLBACK_TEXT)


def approval_card(view: RequestView, *, now: datetime) -> list[Block]:
    """The card's blocks for `view` as of `now` (used only for relative deadlines)."""
    ref = CardRef(request_id=view.request_id, version=view.version)
    blocks: list[Block] = [header(approval_title(view))]
    blocks += _asked(view)
    blocks += _badges(view)
    blocks += field_sections(facts(view, now))
    blocks += _excerpt(view)
    blocks += _links(view)
    lines = status_lines(view)
    if lines:
        blocks.append(section("\n".join(lines)))
    blocks += _actions(view, ref)
    blocks.append(context([_footer(view)]))
    return blocks


def _asked(view: RequestView) -> list[Block]:
    if is_sensitive(view):
        # The summary is written from the transcript, so it is held back with it.
        return [
            section(
                f":lock: {SUPPRESSED_NOTICE}. The summary and transcript stay out of Slack;"
                " review the call through the links below."
            )
        ]
    if not view.summary or not view.summary.strip():
        return []
    return [section(f"*What the caller asked*\n{esc(view.summary, SUMMARY_CHARS, multiline=True)}")]


def _badges(view: RequestView) -> list[Block]:
    warn_email = RiskFlag.UNVERIFIED_EMAIL in view.flags and view.intent in EMAIL_INTENTS
    badges: list[str] = []
    for flag in dict.fromkeys(view.flags):
        if flag is RiskFlag.UNVERIFIED_EMAIL and warn_email:
            continue  # the warning line below says it in full
        badge = _BADGES[flag]
        if flag is RiskFlag.LOW_CONFIDENCE and view.captured.intent_confidence is not None:
            confidence = view.captured.intent_confidence
            badge += f" ({confidence:.2f})" if confidence.is_finite() else ""
        if flag is RiskFlag.UNPARSED_FIELDS and view.captured.unparsed:
            badge += ": " + _unparsed_names(view)
        badges.append(badge)
    if RiskFlag.UNPARSED_FIELDS not in view.flags and view.captured.unparsed:
        badges.append(f"{_BADGES[RiskFlag.UNPARSED_FIELDS]}: {_unparsed_names(view)}")
    lines = ["   ".join(badges)] if badges else []
    if warn_email:
        address = view.captured.customer_email
        where = esc(address, 254) if address else "The address the caller gave"
        lines.append(
            f":warning: *Unverified email:* {where} is not the verified address on file."
            " Approving sends the document there; confirm the caller's identity first."
        )
    return [section("\n".join(lines))] if lines else []


def _unparsed_names(view: RequestView) -> str:
    names = list(view.captured.unparsed)
    shown = ", ".join(esc(name, 40) for name in names[:UNPARSED_NAMES])
    more = len(names) - UNPARSED_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _excerpt(view: RequestView) -> list[Block]:
    if is_sensitive(view) or not view.transcript:
        return []
    lines = [
        f"*{_SPEAKERS.get(turn.role.strip().lower(), esc(turn.role.title(), 30))}:* "
        f"{esc(turn.content, TURN_CHARS)}"
        for turn in view.transcript[-TRANSCRIPT_TURNS:]
        if turn.content.strip()
    ]
    if not lines:
        return []
    return [section("*From the transcript*\n" + "\n".join(lines))]


def _links(view: RequestView) -> list[Block]:
    present = link_items(view)
    return [section(":link: " + " · ".join(present))] if present else []


def _actions(view: RequestView, ref: CardRef) -> list[Block]:
    value = ref.encode()
    elements: list[dict[str, Any]]
    if view.status in DECIDING_STATUSES:
        elements = [
            _intent_select()
            if view.status is RequestStatus.TRIAGE
            else button(
                "Approve", SlackId.APPROVE, value, style="primary", confirm=_money_confirm(view)
            ),
            button("Reject", SlackId.REJECT, value, style="danger"),
        ]
        if view.status is not RequestStatus.ESCALATED:
            elements.append(button("Escalate", SlackId.ESCALATE, value))
    elif view.status is RequestStatus.NOTED:
        elements = [
            button("Mark reviewed", SlackId.NOTES_MARK_REVIEWED, value, style="primary"),
            button("Needs follow-up", SlackId.NOTES_NEEDS_FOLLOW_UP, value),
            button("Add note", SlackId.NOTES_ADD_NOTE, value),
        ]
    elif view.write_status is WriteStatus.DEAD:
        elements = [button("Retry write", SlackId.RETRY_WRITE, value, style="primary")]
    else:
        return []
    # The select carries no value of its own, so the block id carries the reference.
    return [{"type": "actions", "block_id": value, "elements": elements}]


def _intent_select() -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": SlackId.SET_INTENT,
        "placeholder": plain("Classify this call", 150),
        "options": [
            {"text": plain(INTENT_LABELS[intent], 75), "value": intent.value}
            for intent in Intent
            if intent is not Intent.UNKNOWN
        ],
    }


def _money_confirm(view: RequestView) -> dict[str, Any] | None:
    amount = amount_text(view)
    if view.intent not in MONEY_INTENTS or amount is None:
        return None
    who = view.captured.customer_name or "this caller"
    label = INTENT_LABELS[view.intent].lower()
    return confirm_dialog(
        f"Approve {amount}?",
        f"You are approving a {label} of {amount} for {who}. The decision is final once confirmed.",
        confirm="Approve",
    )


def _footer(view: RequestView) -> str:
    parts = [f"Call {code_span(view.call_id)}"]
    if view.agent_id:
        parts.append(f"agent {code_span(view.agent_id)}")
    if view.duration_seconds is not None:
        parts.append(duration(view.duration_seconds))
    parts.append(f"received {date_token(view.created_at)}")
    return " · ".join(parts)
