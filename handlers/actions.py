"""Block actions: Approve, Reject, Escalate, Retry write, and the triage intent select."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import approval_title, reason_modal
from bot.clicks import APPROVE
from bot.domain import Intent
from bot.services import SlackServices
from bot.slack_ids import SlackId
from handlers.common import decide_then_ack, parse_click


def register(app: AsyncApp, services: SlackServices) -> None:
    """Attach the card's button listeners."""
    decisions = services.decisions

    @app.action(SlackId.APPROVE)
    async def approve(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        payload, replier = parse_click(body, client, services.background)

        async def store() -> None:
            # Stored, then answered; the decision follows at once (bot/clicks.py).
            ref = payload.ref()
            await services.clicks.receive(
                action=APPROVE,
                request_id=ref.request_id,
                user_id=payload.user.id,
                version=ref.version,
                channel_id=payload.channel_id,
            )

        await decide_then_ack(ack, replier, store)

    async def open_reason(
        kind: str, ack: Any, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()  # the modal needs the trigger id, which expires in 3 seconds
        payload, replier = parse_click(body, client, services.background)

        async def work() -> None:
            ref = payload.ref()
            await decisions.authorize(
                request_id=ref.request_id, user_id=payload.user.id, action=kind
            )
            view = await services.view(ref.request_id)
            await client.views_open(
                trigger_id=payload.trigger_id,
                view=reason_modal(kind, ref, summary=approval_title(view)),  # type: ignore[arg-type]
            )

        replier.later(work)

    @app.action(SlackId.REJECT)
    async def reject(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await open_reason("reject", ack, body, client)

    @app.action(SlackId.ESCALATE)
    async def escalate(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await open_reason("escalate", ack, body, client)

    @app.action(SlackId.RETRY_WRITE)
    async def retry_write(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        payload, replier = parse_click(body, client, services.background)

        async def decide() -> Any:
            ref = payload.ref()
            return await decisions.retry_write(request_id=ref.request_id, user_id=payload.user.id)

        if await decide_then_ack(ack, replier, decide):
            services.kick()

    @app.action(SlackId.SET_INTENT)
    async def set_intent(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        payload, replier = parse_click(body, client, services.background)

        async def decide() -> Any:
            ref = payload.ref()
            option = payload.action.selected_option
            intent = Intent(option.value if option else "")
            return await decisions.set_intent(
                request_id=ref.request_id, user_id=payload.user.id, intent=intent
            )

        if await decide_then_ack(ack, replier, decide):
            services.kick()
