"""Reminder messages: follow-up deadlines, promised payment dates and SLA nudges.

Pure functions of a `RequestView`, a `ReminderInfo` and `now`. A reminder about a deadline or a
promise carries Snooze (1 hour, 4 hours, next business morning) and Done, both carrying a
`ReminderRef`; once snoozed or done the message is rendered again with a line saying so and no
controls. An SLA nudge carries no controls: the way to stop nudges is to decide the request on
its card, and a button that silenced them would also silence the escalation the SLA promises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.cards.approval import approval_title
from bot.cards.common import (
    MAX_FALLBACK_TEXT,
    Block,
    button,
    context,
    date_token,
    esc,
    escape,
    link,
    mention,
    plain,
    relative,
    section,
    short_call_id,
    span,
    truncate_mrkdwn,
)
from bot.cards.state import amount_text, code_span
from bot.domain import ReminderKind, RequestView
from bot.reminder_ref import Audience, ReminderRef, SnoozeChoice
from bot.slack_ids import SlackId

__all__ = ["ReminderInfo", "State", "reminder_message"]

NEXT_STEP_CHARS = 500
State = Literal["open", "snoozed", "done"]


@dataclass(frozen=True)
class ReminderInfo:
    """One firing of a reminder, and what people did with it."""

    id: str
    kind: ReminderKind
    due_at: datetime
    deadline: datetime | None = None  # what the reminder is about (None for a nudge)
    round: int | None = None  # which nudge this is
    nudges: int = 2  # nudges before escalation
    state: State = "open"
    by: str | None = None  # who snoozed it or marked it done
    until: datetime | None = None  # when a snoozed reminder comes back


def reminder_message(
    view: RequestView,
    reminder: ReminderInfo,
    *,
    audience: Audience,
    mentions: list[str],
    now: datetime,
    card_link: str | None = None,
) -> tuple[list[Block], str]:
    """Blocks and fallback text for one reminder message.

    `mentions` are the Slack user or user-group ids (or plain names) the message addresses;
    `card_link` is the approval card's permalink, shown when the message is not in its thread.
    """
    headline = _headline(view, reminder, now)
    who = " ".join(mention(m) for m in dict.fromkeys(mentions) if m)
    ask = _ask(view, reminder)
    lines = [headline, f"{who}: {ask}" if who else ask[:1].upper() + ask[1:]]
    step = view.captured.promised_next_step
    if step and reminder.kind is not ReminderKind.SLA_NUDGE:
        lines.append(f"*Next step:* {esc(step, NEXT_STEP_CHARS)}")
    blocks: list[Block] = [section("\n".join(lines))]
    about = [f"{esc(approval_title(view), 200)} · Call {code_span(view.call_id)}"]
    card = link(card_link, "Open the card") if audience == "owner" else None
    if card:
        about.append(card)
    blocks.append(context(about))
    blocks += _controls(reminder, audience)
    return blocks, _text(view, reminder, who)


def _headline(view: RequestView, reminder: ReminderInfo, now: datetime) -> str:
    deadline = reminder.deadline
    match reminder.kind:
        case ReminderKind.DEADLINE_BEFORE:
            if deadline is None:
                return ":alarm_clock: *Follow-up coming up*"
            return (
                f":alarm_clock: *Follow-up due {date_token(deadline)}* ({relative(deadline, now)})"
            )
        case ReminderKind.DEADLINE_AT:
            when = f" {date_token(deadline)}" if deadline is not None else ""
            return f":rotating_light: *Follow-up deadline reached*{when}"
        case ReminderKind.PROMISE_DATE:
            when = f": {date_token(deadline, with_time=False)}" if deadline is not None else ""
            return f":calendar: *Promised payment date{when}*"
        case ReminderKind.SLA_NUDGE:
            waiting = span(now - view.created_at)
            return f":hourglass_flowing_sand: *Still waiting for a decision* ({waiting} so far)"
    return "*Reminder*"  # pragma: no cover - every kind is matched above


def _ask(view: RequestView, reminder: ReminderInfo) -> str:
    match reminder.kind:
        case ReminderKind.PROMISE_DATE:
            who = esc(view.captured.customer_name, 100) if view.captured.customer_name else None
            amount = amount_text(view)
            promised = f"{who or 'the customer'} promised to pay" + (f" {amount}" if amount else "")
            return f"{promised} by that date. Check whether the payment arrived."
        case ReminderKind.SLA_NUDGE:
            n = reminder.round or 1
            step = (
                "the last reminder before it goes to the escalation group"
                if n >= reminder.nudges
                else f"reminder {n} of {reminder.nudges} before it goes to the escalation group"
            )
            return f"please approve, reject or escalate this request ({step})."
        case ReminderKind.DEADLINE_BEFORE:
            return "the follow-up promised on the call is coming up."
    return "the follow-up promised on the call is due now."


def _controls(reminder: ReminderInfo, audience: Audience) -> list[Block]:
    if reminder.state == "snoozed":
        until = f" until {date_token(reminder.until)}" if reminder.until else ""
        return [context([f":zzz: Snoozed by {mention(reminder.by)}{until}"])]
    if reminder.state == "done":
        return [context([f":white_check_mark: Done · marked by {mention(reminder.by)}"])]
    if reminder.kind is ReminderKind.SLA_NUDGE:
        return []
    ref = ReminderRef(
        reminder_id=reminder.id, due=int(reminder.due_at.timestamp()), to=audience
    ).encode()
    snooze: dict[str, Any] = {
        "type": "static_select",
        "action_id": SlackId.REMINDER_SNOOZE,
        "placeholder": plain("Snooze", 150),
        "options": [
            {"text": plain(choice.label, 75), "value": choice.value} for choice in SnoozeChoice
        ],
    }
    done = button("Done", SlackId.REMINDER_DONE, ref, style="primary")
    # The select carries no value of its own, so the block id carries the reference.
    return [{"type": "actions", "block_id": ref, "elements": [snooze, done]}]


def _text(view: RequestView, reminder: ReminderInfo, who: str) -> str:
    label = {
        ReminderKind.DEADLINE_BEFORE: "Follow-up coming up",
        ReminderKind.DEADLINE_AT: "Follow-up deadline reached",
        ReminderKind.PROMISE_DATE: "Promised payment date",
        ReminderKind.SLA_NUDGE: "Still waiting for a decision",
    }[reminder.kind]
    parts = [label, escape(approval_title(view)), escape(short_call_id(view.call_id))]
    text = " · ".join(parts)
    # A mention in the fallback text is what makes the notification name the person.
    return truncate_mrkdwn(f"{who} {text}" if who else text, MAX_FALLBACK_TEXT)
