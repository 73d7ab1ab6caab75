"""The `reminder` outbox route: posts one reminder message, rendered from the database at send time.

The scheduler queued the row when the reminder fell due; by the time the outbox gets to it (at
once, or after Slack came back) things may have moved on, so the route looks again just before
posting and drops the message when:

- the reminder is no longer the one that was queued (snoozed to a new time, marked done from
  its other message, or cancelled by a late analysis);
- it is an SLA nudge and the request is no longer pending (a decided request is never nudged).

Where it goes: `thread` is the thread of the request's card in the request's channel (or the
channel itself when no card exists and none is on its way); `owner` is a direct message to the
captured `finance_owner`. While the card's first post still waits in the outbox, the reminder
waits too, so it never arrives before the card it belongs under.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.cards.reminders import ReminderInfo, reminder_message
from bot.clock import Clock
from bot.domain import ReminderKind, RequestStatus, RequestView
from bot.outbox import Finish, Permanent, Retry, Route
from bot.policy_schema import Policy
from bot.reminder_ref import Audience
from bot.reminder_rules import NUDGES, deadline_of, owner_user
from bot.reminder_tick import REMINDER_KIND
from bot.slack_out import ChannelLimiter, slack_call
from storage.db import Database
from storage.outbox import OutboxTask
from storage.reminders import SENT, load
from storage.requests import card_copies, load_view
from storage.tables import outbox

__all__ = ["CARD_WAIT_SECONDS", "ReminderPublisher", "mentions_for", "round_of"]

log = logging.getLogger(__name__)

CARD_WAIT_SECONDS = 30.0  # how long a reminder waits before looking again for its card


def mentions_for(view: RequestView, kind: ReminderKind, policy: Policy) -> list[str]:
    """Who a reminder in the card's thread addresses."""
    routing = policy.for_intent(view.intent)
    approvers = ([routing.approvers.usergroup] if routing.approvers.usergroup else []) + list(
        routing.approvers.users
    )
    owner = (view.captured.finance_owner or "").strip()
    if kind is ReminderKind.SLA_NUDGE:
        return approvers
    if kind is ReminderKind.PROMISE_DATE:
        return [*approvers, owner] if owner else approvers
    return [owner] if owner else approvers


class ReminderPublisher:
    """The outbox route that posts reminder messages to Slack."""

    def __init__(
        self,
        *,
        db: Database,
        client: AsyncWebClient,
        policy: Policy,
        clock: Clock,
        limiter: ChannelLimiter | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.policy = policy
        self.clock = clock
        self.limiter = limiter or ChannelLimiter()

    def routes(self) -> dict[str, Route]:
        """The outbox route this publisher serves."""
        return {REMINDER_KIND: Route(self.post)}

    async def post(self, task: OutboxTask) -> Finish | None:
        """Post one reminder message, unless it no longer applies."""
        payload = task.payload
        audience: Audience = "owner" if payload.get("audience") == "owner" else "thread"
        due = datetime.fromisoformat(str(payload["due_at"]))
        async with self.db.read() as conn:
            row = await load(conn, str(payload["reminder_id"]))
            if row is None or row.status != SENT or row.due_at != due:
                return None  # snoozed, done or cancelled since it was queued
            view = await load_view(conn, row.request_id)
            kind = ReminderKind(row.kind)
            if kind is ReminderKind.SLA_NUDGE and view.status is not RequestStatus.PENDING:
                return None  # decided while the nudge waited for Slack
            where = await self._where(conn, view, audience)
        if where is None:
            return None
        channel, thread_ts = where
        info = ReminderInfo(
            id=row.id,
            kind=kind,
            due_at=row.due_at,
            deadline=deadline_of(kind, view.intent, view.captured),
            round=round_of(payload),
            nudges=NUDGES,
        )
        mentions = mentions_for(view, kind, self.policy) if audience == "thread" else []
        card_link = await self._card_link(view) if audience == "owner" else None
        blocks, text = reminder_message(
            view, info, audience=audience, mentions=mentions, now=self.clock(), card_link=card_link
        )
        await self.limiter.wait(channel)
        await slack_call(
            lambda: self.client.chat_postMessage(
                channel=channel,
                blocks=blocks,
                text=text,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        return None

    async def _where(
        self, conn: AsyncConnection, view: RequestView, audience: Audience
    ) -> tuple[str, str | None] | None:
        """(channel, thread ts) for the message, or None when there is nobody to send it to."""
        if audience == "owner":
            owner = owner_user(view.captured)
            return (owner, None) if owner else None
        copies = await card_copies(conn, view.request_id)
        # The copy in the request's current channel (a re-routed card), else the first one.
        here = [(channel, ts) for _, channel, ts in copies if channel == view.channel]
        if here:
            return here[-1]
        primary = [(channel, ts) for role, channel, ts in copies if role == "primary"]
        if primary:
            return primary[0]
        waiting = await conn.execute(
            select(outbox.c.id).where(
                outbox.c.idempotency_key == f"post_card:{view.request_id}",
                outbox.c.status == "pending",
            )
        )
        if waiting.first() is not None:
            raise Retry("the card is not posted yet", after=CARD_WAIT_SECONDS)
        if not view.channel:
            raise Permanent(f"no channel for the reminders of {view.request_id}")
        return view.channel, None

    async def _card_link(self, view: RequestView) -> str | None:
        async with self.db.read() as conn:
            copies = await card_copies(conn, view.request_id)
        primary = next(((c, t) for r, c, t in copies if r == "primary"), None)
        if primary is None:
            return None
        try:
            found = await self.client.chat_getPermalink(channel=primary[0], message_ts=primary[1])
        except SlackApiError:
            return None  # the reminder is still worth sending without the link
        return str(found["permalink"])


def round_of(payload: dict[str, Any]) -> int | None:
    """Which nudge a payload is about, when it says."""
    value = payload.get("round")
    return value if isinstance(value, int) else None
