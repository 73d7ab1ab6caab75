"""Snooze and Done on a reminder message: what people do with reminders in Slack.

Both are compare-and-set changes on the reminder row (`storage.reminders`): a message can only
change the firing it was posted for (`ReminderRef.due`), and only while it is `sent`. Snooze
makes the row pending again at the chosen time, so the scheduler fires it again (under a new
outbox key); Done closes it, and Done on a follow-up deadline reminder also cancels the other
pending reminder of that deadline: the follow-up is done. Each is audited. An SLA nudge has no
Snooze or Done: deciding the request is what stops nudges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.authz import BadInput
from bot.cards.common import Block, date_token, mention
from bot.cards.reminders import ReminderInfo, State, reminder_message
from bot.clock import Clock
from bot.domain import ReminderKind, RequestView
from bot.errors import AlreadyDecided, NotFound
from bot.policy_schema import Policy, QuietHours
from bot.quiet_hours import next_working_start
from bot.reminder_out import mentions_for, round_of
from bot.reminder_ref import Audience, ReminderRef, SnoozeChoice
from bot.reminder_rules import NUDGES, deadline_of
from storage.db import Database
from storage.reminders import (
    CANCELLED,
    DONE,
    PENDING,
    SENT,
    ReminderRow,
    cancel_pending,
    load,
    mark_done,
    reschedule,
)
from storage.requests import load_view

__all__ = ["ReminderOutcome", "ReminderService", "info_of", "snooze_until"]

_DEADLINE_KINDS = (ReminderKind.DEADLINE_BEFORE.value, ReminderKind.DEADLINE_AT.value)
FIRED_AGAIN = "This reminder came back since; use its newest message."


@dataclass(frozen=True)
class ReminderOutcome:
    """A reminder after a click, and a sentence for the clicker alone."""

    view: RequestView
    info: ReminderInfo
    notice: str


def snooze_until(choice: SnoozeChoice, now: datetime, hours: QuietHours) -> datetime:
    """When a reminder snoozed at `now` comes back."""
    if choice is SnoozeChoice.HOUR:
        return now + timedelta(hours=1)
    if choice is SnoozeChoice.FOUR_HOURS:
        return now + timedelta(hours=4)
    return next_working_start(now, hours)


def info_of(row: ReminderRow, view: RequestView) -> ReminderInfo:
    """A reminder row as the message builder takes it (to render a message again)."""
    kind = ReminderKind(row.kind)
    state: State = "open"
    by = None
    if row.status == DONE:
        state, by = "done", row.payload.get("done_by")
    elif row.status == PENDING and "snoozed_by" in row.payload:
        state, by = "snoozed", row.payload.get("snoozed_by")
    return ReminderInfo(
        id=row.id,
        kind=kind,
        due_at=row.due_at,
        deadline=deadline_of(kind, view.intent, view.captured),
        round=round_of(row.payload),
        nudges=NUDGES,
        state=state,
        by=str(by) if by else None,
        until=row.due_at if state == "snoozed" else None,
    )


class ReminderService:
    """The rules and transactions behind a reminder message's controls."""

    def __init__(self, *, db: Database, policy: Policy, clock: Clock) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock

    async def snooze(
        self, *, ref: ReminderRef, user_id: str, choice: SnoozeChoice
    ) -> ReminderOutcome:
        """Bring the reminder back later: in 1 hour, in 4 hours, or the next business morning."""
        now = self.clock()
        async with self.db.transaction() as tx:
            row = await self._open(tx.conn, ref)
            until = snooze_until(choice, now, self.policy.quiet_hours)
            note = {"snoozed_by": user_id, "snoozed_at": now.isoformat()}
            if not await reschedule(tx.conn, row, due_at=until, note=note):
                raise AlreadyDecided(FIRED_AGAIN)  # pragma: no cover - the row is locked or serial
            tx.audit.add(
                at=now,
                actor=user_id,
                action="reminder.snoozed",
                subject=row.request_id,
                details={
                    "reminder_id": row.id,
                    "kind": row.kind,
                    "choice": choice.value,
                    "until": until.isoformat(),
                },
            )
        return await self._outcome(row.id, f"Snoozed until {date_token(until)}.")

    async def done(self, *, ref: ReminderRef, user_id: str) -> ReminderOutcome:
        """Close the reminder; for a follow-up deadline, its other pending reminder goes too."""
        now = self.clock()
        async with self.db.transaction() as tx:
            row = await self._open(tx.conn, ref)
            note = {"done_by": user_id, "done_at": now.isoformat()}
            if not await mark_done(tx.conn, row, note=note):
                raise AlreadyDecided(FIRED_AGAIN)  # pragma: no cover - the row is locked or serial
            cancelled = 0
            if row.kind in _DEADLINE_KINDS:
                cancelled = await cancel_pending(
                    tx.conn, request_id=row.request_id, kinds=_DEADLINE_KINDS
                )
            tx.audit.add(
                at=now,
                actor=user_id,
                action="reminder.done",
                subject=row.request_id,
                details={"reminder_id": row.id, "kind": row.kind, "cancelled": cancelled},
            )
        notice = "Marked done."
        if cancelled:
            notice += " The reminder at the deadline is cancelled too."
        return await self._outcome(row.id, notice)

    def render(self, outcome: ReminderOutcome, *, audience: Audience) -> tuple[list[Block], str]:
        """The message as it should look now, for the listener to put in place of the old one."""
        mentions = (
            mentions_for(outcome.view, outcome.info.kind, self.policy)
            if audience == "thread"
            else []
        )
        return reminder_message(
            outcome.view, outcome.info, audience=audience, mentions=mentions, now=self.clock()
        )

    async def _open(self, conn: AsyncConnection, ref: ReminderRef) -> ReminderRow:
        """The reminder the message is about, or the reason it can no longer be changed."""
        row = await load(conn, ref.reminder_id, lock=True)
        if row is None:
            raise NotFound("This reminder no longer exists.")
        if row.kind == ReminderKind.SLA_NUDGE.value:
            raise BadInput("A nudge stops when the request is decided on its card.")
        if row.status == SENT and int(row.due_at.timestamp()) == ref.due:
            return row
        raise AlreadyDecided(_closed(row, ref))

    async def _outcome(self, reminder_id: str, notice: str) -> ReminderOutcome:
        async with self.db.read() as conn:
            row = await load(conn, reminder_id)
            assert row is not None
            view = await load_view(conn, row.request_id)
        return ReminderOutcome(view=view, info=info_of(row, view), notice=notice)


def _closed(row: ReminderRow, ref: ReminderRef) -> str:
    """Why a click on this message changes nothing."""
    if row.status == DONE:
        return f"Already marked done by {mention(str(row.payload.get('done_by') or ''))}."
    if row.status == PENDING and "snoozed_by" in row.payload:
        who = mention(str(row.payload.get("snoozed_by") or ""))
        return f"Already snoozed by {who} until {date_token(row.due_at)}."
    if row.status == CANCELLED:
        return "This reminder was cancelled: its request or deadline changed."
    if int(row.due_at.timestamp()) != ref.due:
        return FIRED_AGAIN
    return "This reminder cannot be changed now."
