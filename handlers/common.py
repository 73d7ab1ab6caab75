"""The one error path of every Slack listener.

Known errors become a clear ephemeral message (or a modal error); anything else is logged
with a correlation id that the user is shown, so support can find the log line.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import Background
from bot.clicks import Answer, Click
from bot.decisions import Outcome
from bot.errors import CountersignError
from bot.redaction import redact_exception_message
from handlers.payloads import BlockActions

log = logging.getLogger("countersign.slack")


def user_message(exc: BaseException) -> str:
    """What the user is told about `exc`; unknown errors get a reference to the log line."""
    if isinstance(exc, CountersignError):
        return exc.user_message
    ref = secrets.token_hex(4)
    log.error(
        "unexpected error [ref %s]: %s",
        ref,
        redact_exception_message(exc),
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return f"Something went wrong on our side (ref {ref}). Nothing was changed; please try again."


@dataclass(frozen=True)
class Replier:
    """Answers one user privately where they clicked, now or after the ack."""

    client: AsyncWebClient
    user_id: str
    channel_id: str | None
    background: Background

    def later(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Run `work` after the response to Slack; its error, if any, is told to the user."""
        self.background.spawn(answering(self, work), name=f"after-ack:{self.user_id}")

    def say_later(self, text: str) -> None:
        """`say` after the response to Slack."""
        self.background.spawn(self.say(text), name=f"say:{self.user_id}")

    async def say(self, text: str) -> None:
        """An ephemeral message to the user; logged, never raised, if Slack refuses it."""
        if not self.channel_id:
            log.info("no channel to answer %s in: %s", self.user_id, text)
            return
        try:
            await self.client.chat_postEphemeral(
                channel=self.channel_id, user=self.user_id, text=text
            )
        except SlackApiError as exc:
            log.warning(
                "could not answer %s ephemerally: %s", self.user_id, exc.response.get("error")
            )


def parse_click(
    body: dict[str, Any], client: AsyncWebClient, background: Background
) -> tuple[BlockActions, Replier]:
    """A button or select payload, and the way to answer its clicker privately."""
    payload = BlockActions.model_validate(body)
    return payload, Replier(client, payload.user.id, payload.channel_id, background)


def click_answer(client: AsyncWebClient, background: Background) -> Answer:
    """How a decided click is answered: its notice or its error, privately to the clicker."""

    async def answer(click: Click, outcome: Outcome | Exception) -> None:
        text = told(outcome)
        if text:
            await Replier(client, click.user_id, click.channel_id, background).say(text)

    return answer


def told(result: Any) -> str | None:
    """What a clicker is told privately about their click: its error, or its notice if any."""
    if isinstance(result, Exception):
        return user_message(result)
    notice = getattr(result, "notice", None)
    return str(notice) if notice else None


async def answering(replier: Replier, work: Callable[[], Awaitable[Any]]) -> None:
    """Run a listener's work; report any error to the user who clicked."""
    try:
        await work()
    except Exception as exc:
        await replier.say(user_message(exc))


async def decide_then_ack(
    ack: Callable[..., Awaitable[Any]],
    replier: Replier,
    decide: Callable[[], Awaitable[Any]],
) -> Any:
    """Commit first (the decision, or the stored click), then ack: an acked click is durable.

    What the clicker is told privately goes out after the response.
    """
    try:
        outcome = await decide()
    except Exception as exc:
        outcome = exc
    await ack()
    text = told(outcome)
    if text:
        replier.say_later(text)
    return None if isinstance(outcome, Exception) else outcome
