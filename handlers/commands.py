"""The lookup surfaces: `/dialnexa`, the "Look up a DialNexa call" shortcut, the Show button.

The slash command is answered in the body of its ack, so the answer is on screen as soon as the
HTTP response is (no second request). Slack waits 3 seconds for that response; a lookup that has
not finished after `ACK_BUDGET` is acked with a holding line and answered through the command's
`response_url` instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards.lookup import LOOKUP_BLOCK_ID, Message, lookup_modal, result_modal
from bot.services import SlackServices
from bot.slack_ids import SlackId
from bot.workspace import url_of_domain
from handlers.common import Replier, user_message
from handlers.payloads import BlockActions, ViewSubmission

log = logging.getLogger("countersign.slack")

ACK_BUDGET = 2.0  # seconds; Slack stops waiting for the response at 3
HOLDING = "Looking that up…"


class SlashCommand(BaseModel):
    """The form fields of a slash command the listener reads."""

    model_config = ConfigDict(extra="ignore")

    command: str
    text: str = ""
    user_id: str
    channel_id: str | None = None
    team_domain: str | None = None
    response_url: str | None = None


def _domain(body: dict[str, Any]) -> str | None:
    team = body.get("team")
    return team.get("domain") if isinstance(team, dict) else None


def register(app: AsyncApp, services: SlackServices) -> None:
    """Attach the slash command, the lookup shortcut, its modal and the Show button."""
    lookup = services.lookup

    @app.command(SlackId.DIALNEXA)
    async def dialnexa(ack: Any, body: dict[str, Any], respond: Any) -> None:
        command = SlashCommand.model_validate(body)
        task = asyncio.ensure_future(
            lookup.answer(
                user_id=command.user_id,
                text=command.text,
                base_url=url_of_domain(command.team_domain),
            )
        )
        try:
            # Shielded: running out of budget must not cancel the lookup, only move its answer.
            message = await asyncio.wait_for(asyncio.shield(task), ACK_BUDGET)
        except TimeoutError:
            await ack(response_type="ephemeral", text=HOLDING)

            async def answer_later() -> None:
                await respond(**_ephemeral(await _settled(task)))

            services.background.spawn(answer_later(), name=f"lookup:{command.user_id}")
            return
        except Exception as exc:
            await ack(response_type="ephemeral", text=user_message(exc))
            return
        await ack(**_ephemeral(message))

    @app.shortcut(SlackId.LOOKUP_CALL)
    async def lookup_call(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()  # the trigger id expires in 3 seconds
        user = str((body.get("user") or {}).get("id") or "")

        async def work() -> None:
            await client.views_open(trigger_id=body.get("trigger_id"), view=lookup_modal())

        Replier(client, user, None, services.background).later(work)

    @app.view(SlackId.LOOKUP_QUERY)
    async def lookup_query(ack: Any, body: dict[str, Any]) -> None:
        payload = ViewSubmission.model_validate(body)
        text = payload.view.text(LOOKUP_BLOCK_ID, SlackId.LOOKUP_INPUT)
        try:
            message = await lookup.answer(
                user_id=payload.user.id, text=text, base_url=url_of_domain(_domain(body))
            )
        except Exception as exc:
            await ack(response_action="errors", errors={LOOKUP_BLOCK_ID: user_message(exc)[:150]})
            return
        await ack(response_action="update", view=result_modal(message))

    @app.action(SlackId.LOOKUP_SHOW)
    async def show(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        payload = BlockActions.model_validate(body)
        replier = Replier(client, payload.user.id, payload.channel_id, services.background)

        async def work() -> None:
            message = await lookup.show(
                user_id=payload.user.id,
                request_id=payload.ref().request_id,
                base_url=url_of_domain(_domain(body)),
            )
            container = body.get("container") or {}
            if container.get("type") == "view":
                # Clicked inside the shortcut's modal: show the call in the same modal.
                await client.views_update(
                    view_id=container.get("view_id"), view=result_modal(message)
                )
            else:
                await respond(replace_original=False, **_ephemeral(message))

        replier.later(work)


def _ephemeral(message: Message) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": message.text, "blocks": message.blocks}


async def _settled(task: asyncio.Future[Message]) -> Message:
    try:
        return await task
    except Exception as exc:
        text = user_message(exc)
        return Message(text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
