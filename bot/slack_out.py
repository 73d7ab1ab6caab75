"""Everything Countersign posts to Slack, as outbox handlers: cards, card updates, alerts.

Cards are always rendered from the database at send time, so a card that waited in the outbox
shows the request as it is now, and every copy is rebuilt from the same state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.cards import alert_message, approval_card, approval_text
from bot.clock import Clock
from bot.outbox import Finish, Permanent, Retry, Route
from bot.policy import Policy
from storage.db import Database, Tx
from storage.outbox import OutboxTask
from storage.queries import enqueue, insert_ignore
from storage.requests import load_card
from storage.tables import card_messages, requests

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that no retry can fix: configuration or content problems a person must look at.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "invalid_blocks",
        "msg_too_long",
        "no_text",
        "cant_update_message",
        "user_not_found",
    }
)
SLACK_KINDS = ("post_card", "update_card", "alert", "thread_post", "reminder")


class ChannelLimiter:
    """About one message a second per channel, as Slack asks of chat.postMessage."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}

    async def wait(self, channel: str) -> None:
        """Return when a message may be sent to `channel`."""
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            gap = self._last.get(channel, float("-inf")) + self.interval - time.monotonic()
            if gap > 0:
                await asyncio.sleep(gap)
            self._last[channel] = time.monotonic()


async def slack_call(call: Callable[[], Awaitable[T]]) -> T:
    """Run one Slack Web API call, turning its failures into outbox outcomes."""
    try:
        return await call()
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "unknown_error")
        if exc.response.status_code == 429 or error == "ratelimited":
            after = exc.response.headers.get("Retry-After") or exc.response.headers.get(
                "retry-after"
            )
            raise Retry(f"Slack rate limit ({error})", after=float(after or 1)) from None
        if error in PERMANENT_ERRORS:
            raise Permanent(f"Slack refused: {error}") from None
        raise Retry(f"Slack error: {error} (HTTP {exc.response.status_code})") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Retry(f"Slack unreachable: {type(exc).__name__}") from None


class SlackPublisher:
    """Outbox handlers for everything that goes to Slack."""

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
        """The outbox routes this publisher serves."""
        return {
            "post_card": Route(self.post_card),
            "update_card": Route(self.update_card),
            "alert": Route(self.alert),
        }

    async def _post(
        self, channel: str, blocks: list[dict[str, Any]], text: str, **extra: Any
    ) -> str:
        await self.limiter.wait(channel)
        response = await slack_call(
            lambda: self.client.chat_postMessage(
                channel=channel,
                blocks=blocks,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
                **extra,
            )
        )
        return str(response["ts"])

    async def post_card(self, task: OutboxTask) -> Finish | None:
        """Post a request's card once per role (primary, escalation, routed)."""
        request_id = str(task.payload["request_id"])
        role = str(task.payload.get("role", "primary"))
        view, copies = await self.db.run_read(lambda conn: load_card(conn, request_id))
        if any(r == role for r, _, _ in copies):
            return None  # already posted; a second post would show the card twice
        channel = view.escalation_channel if role == "escalation" else view.channel
        if not channel:
            raise Permanent(f"no channel for the {role} card of {request_id}")
        blocks = approval_card(view, now=self.clock())
        ts = await self._post(channel, blocks, approval_text(view))
        version = view.version

        async def finish(tx: Tx) -> None:
            await insert_ignore(
                tx.conn,
                card_messages,
                {
                    "request_id": request_id,
                    "role": role,
                    "channel": channel,
                    "ts": ts,
                    "posted_at": self.clock(),
                },
                key=("request_id", "role"),
            )
            await _refresh_if_changed(tx, request_id, version, self.clock)

        return finish

    async def update_card(self, task: OutboxTask) -> Finish | None:
        """Rebuild every posted copy of a request's card from the database."""
        request_id = str(task.payload["request_id"])
        view, copies = await self.db.run_read(lambda conn: load_card(conn, request_id))
        blocks = approval_card(view, now=self.clock())
        text = approval_text(view)
        for _, channel, ts in copies:
            await slack_call(
                partial(self.client.chat_update, channel=channel, ts=ts, blocks=blocks, text=text)
            )
        return None

    async def alert(self, task: OutboxTask) -> Finish | None:
        """Tell the finance alerts channel (and the owner) why a request needs attention."""
        request_id = str(task.payload["request_id"])
        reasons = [str(r) for r in task.payload.get("reasons", [])]
        view, copies = await self.db.run_read(lambda conn: load_card(conn, request_id))
        card_link = None
        primary = next(((c, t) for r, c, t in copies if r == "primary"), None)
        if primary is not None:
            try:
                link = await self.client.chat_getPermalink(
                    channel=primary[0], message_ts=primary[1]
                )
                card_link = str(link["permalink"])
            except SlackApiError:
                card_link = None  # the alert is still worth sending without the link
        blocks, text = alert_message(
            view, reasons=reasons, owner=view.captured.finance_owner, card_link=card_link
        )
        await self._post(self.policy.alerts_channel, blocks, text)
        return None


async def _refresh_if_changed(tx: Tx, request_id: str, posted_version: int, clock: Clock) -> None:
    """If the request changed while its card was being posted, queue a refresh of the card."""
    current = (
        await tx.conn.execute(select(requests.c.version).where(requests.c.id == request_id))
    ).scalar_one()
    if current != posted_version:
        await enqueue(
            tx.conn,
            kind="update_card",
            # Its own key: the change's own update may already have run, finding no card yet.
            key=f"update_card:{request_id}:{current}:after-post:{posted_version}",
            payload={"request_id": request_id},
            now=clock(),
        )
